/* SPDX-License-Identifier: ISC */
/* job — the wire format of a job: parse, validate, entry points. */
#include "job.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(char **ret_err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **ret_err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(ret_err, fmt, ap) < 0)
		abort();
	va_end(ap);
	return -1;
}

bool job_id_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 1 || n > JOB_ID_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '.' || *s == '_' || *s == ':' || *s == '-'))
			return false;
	return true;
}

static bool ident_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (!first && c >= '0' && c <= '9');
}

bool dotted_name_valid(const char *s)
{
	bool start = true;

	if (!*s || strlen(s) > 256)
		return false;
	for (; *s; s++) {
		if (*s == '.') {
			if (start)
				return false;
			start = true;
			continue;
		}
		if (start && *s == '_')
			return false;
		if (!ident_char(*s, start))
			return false;
		start = false;
	}
	return !start;
}

static bool ident_valid(const char *s)
{
	if (!*s || strlen(s) > 256)
		return false;
	for (const char *p = s; *p; p++)
		if (!ident_char(*p, p == s))
			return false;
	return true;
}

static int depth_of(const json_t *v)
{
	int d = 0;
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x) {
			int c = depth_of(x);

			if (c > d)
				d = c;
			if (d > JOB_MAX_DEPTH)
				break;
		}
		return d + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			int c = depth_of(x);

			if (c > d)
				d = c;
			if (d > JOB_MAX_DEPTH)
				break;
		}
		return d + 1;
	}
	return 0;
}

static const char *const known_fields[] = {
	"job_id", "task_type", "module_path", "class_name", "method_name", "parameters",
	"idempotency_key", "priority", "timeout_seconds", "max_retries", "enqueued_at", "signature",
};

/* "%.*s" arguments quoting at most MAX bytes of S, cut on a character boundary:
 * a message cut inside a character is not UTF-8, and PostgreSQL refuses it. */
#define QUOTE(s, max) (int)utf8_prefix((s), (max)), (s)

static int get_string(json_t *doc, const char *name, bool required, const char **ret, char **ret_err)
{
	json_t *v = json_object_get(doc, name);

	*ret = NULL;
	if (!v || json_is_null(v)) {
		if (required)
			return fail(ret_err, "%s: required field is missing", name);
		return 0;
	}
	if (!json_is_string(v))
		return fail(ret_err, "%s: must be a string", name);
	*ret = json_string_value(v);
	return 0;
}

static int get_int(json_t *doc, const char *name, long min, long max, long *ret, char **ret_err)
{
	json_t *v = json_object_get(doc, name);

	*ret = -1;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return fail(ret_err, "%s: must be a whole number from %ld to %ld", name, min, max);
	*ret = (long)json_integer_value(v);
	return 0;
}

static int parse(const char *payload, size_t len, struct job *j, char **ret_err)
{
	json_error_t jerr;
	const char *key;
	json_t *v, *pv;

	j->timeout_seconds = j->max_retries = -1;
	if (len > JOB_MAX_BYTES)
		return fail(ret_err, "payload: %zu bytes is over the limit of %d", len, JOB_MAX_BYTES);
	j->doc = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j->doc) {
		/* jansson quotes the input near the error, bytes that are not UTF-8 too. */
		char *text = utf8_clean(jerr.text, strlen(jerr.text));

		fail(ret_err, "payload: invalid JSON at line %d column %d: %s", jerr.line, jerr.column, text);
		free(text);
		return -1;
	}
	if (!json_is_object(j->doc))
		return fail(ret_err, "payload: must be a JSON object");
	if (depth_of(j->doc) > JOB_MAX_DEPTH)
		return fail(ret_err, "payload: nested deeper than %d levels", JOB_MAX_DEPTH);
	json_object_foreach(j->doc, key, v) {
		bool known = false;

		for (size_t i = 0; i < ARRAY_SIZE(known_fields); i++)
			known |= !strcmp(key, known_fields[i]);
		if (!known)
			return fail(ret_err, "%.*s: unknown field", QUOTE(key, 64));
	}
	if (get_string(j->doc, "job_id", true, &j->job_id, ret_err) < 0)
		return -1;
	if (!job_id_valid(j->job_id))
		return fail(ret_err, "job_id: must be 1-%d characters of A-Z a-z 0-9 . _ : -", JOB_ID_MAX);
	if (get_string(j->doc, "task_type", true, &j->task_type, ret_err) < 0 ||
	    get_string(j->doc, "module_path", true, &j->module_path, ret_err) < 0 ||
	    get_string(j->doc, "class_name", false, &j->class_name, ret_err) < 0 ||
	    get_string(j->doc, "method_name", true, &j->method_name, ret_err) < 0 ||
	    get_string(j->doc, "idempotency_key", false, &j->idempotency_key, ret_err) < 0 ||
	    get_string(j->doc, "priority", false, &j->priority, ret_err) < 0 ||
	    get_string(j->doc, "signature", false, &j->signature, ret_err) < 0)
		return -1;
	if (!j->task_type || !ident_valid(j->task_type) || strlen(j->task_type) > 64)
		return fail(ret_err, "task_type: '%.*s' is not a valid task type name",
			    QUOTE(j->task_type ? j->task_type : "", 64));
	if (!dotted_name_valid(j->module_path))
		return fail(ret_err, "module_path: '%.*s' is not a dotted name of identifiers that do not start with '_'",
			    QUOTE(j->module_path, 256));
	if (j->class_name && !dotted_name_valid(j->class_name))
		return fail(ret_err, "class_name: '%.*s' is not a dotted name of identifiers that do not start with '_'",
			    QUOTE(j->class_name, 256));
	if (!dotted_name_valid(j->method_name))
		return fail(ret_err, "method_name: '%.*s' is not a dotted name of identifiers that do not start with '_'",
			    QUOTE(j->method_name, 256));
	if (j->idempotency_key && (!*j->idempotency_key || strlen(j->idempotency_key) > 256))
		return fail(ret_err, "idempotency_key: must be 1-256 characters");
	if (j->priority && strcmp(j->priority, "high") && strcmp(j->priority, "normal") && strcmp(j->priority, "low"))
		return fail(ret_err, "priority: must be high, normal or low");
	if (get_int(j->doc, "timeout_seconds", 1, 7 * 24 * 3600, &j->timeout_seconds, ret_err) < 0 ||
	    get_int(j->doc, "max_retries", 0, 100, &j->max_retries, ret_err) < 0)
		return -1;
	v = json_object_get(j->doc, "enqueued_at");
	if (v && !json_is_null(v) && !json_is_string(v))
		return fail(ret_err, "enqueued_at: must be a string");
	/* Missing or null means none; the payload itself stays as it came,
	 * since a signature covers exactly that. */
	v = json_object_get(j->doc, "parameters");
	if (v && !json_is_null(v) && !json_is_object(v))
		return fail(ret_err, "parameters: must be a JSON object");
	j->parameters = v && !json_is_null(v) ? json_incref(v) : json_object();
	json_object_foreach(j->parameters, key, pv) {
		if (!ident_valid(key))
			return fail(ret_err, "parameters.%.*s: not a valid Python keyword argument name", QUOTE(key, 64));
	}
	return 0;
}

int job_parse(const char *payload, size_t len, struct job *ret, char **ret_err)
{
	struct job j = { 0 };

	if (parse(payload, len, &j, ret_err) < 0) {
		job_free(&j);
		return -1;
	}
	*ret = j;
	return 0;
}

char *job_id_of(const char *payload, size_t len)
{
	json_t *doc = len <= JOB_MAX_BYTES ? json_loadb(payload, len, 0, NULL) : NULL;
	const char *id = json_string_value(json_object_get(doc, "job_id"));
	char *r = id && job_id_valid(id) ? xstrdup(id) : NULL;

	json_decref(doc);
	return r;
}

void job_free(struct job *j)
{
	json_decref(j->parameters);
	json_decref(j->doc);
	memset(j, 0, sizeof(*j));
}

/* The file the import system would load for MODULE under ROOT: the package's
 * __init__.py before a module of the same name.  Sets *ret_exists when either
 * is there (that root then wins, as on sys.path). */
static char *import_file(const char *root, const char *module, bool *ret_exists)
{
	char *rel = xstrdup(module), *cand[2], *found = NULL;
	struct stat st;

	for (char *p = rel; *p; p++)
		if (*p == '.')
			*p = '/';
	cand[0] = xasprintf("%s/%s/__init__.py", root, rel);
	cand[1] = xasprintf("%s/%s.py", root, rel);
	*ret_exists = false;
	for (int i = 0; i < 2 && !found; i++)
		if (stat(cand[i], &st) == 0) {
			*ret_exists = true;
			found = xstrdup(cand[i]);
		}
	free(cand[0]);
	free(cand[1]);
	free(rel);
	return found;
}

static bool beneath(const char *rroot, const char *file, char *ret_real)
{
	size_t n = strlen(rroot);
	struct stat st;

	if (!realpath(file, ret_real) || stat(ret_real, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	return !strncmp(ret_real, rroot, n) && (ret_real[n] == '/' || !strcmp(rroot, "/"));
}

/* The module and every package above it must be regular files whose real
 * paths stay beneath the root: no symlink may lead the import elsewhere. */
static int resolve_under(const char *root, const char *module, char **ret_file)
{
	char rroot[PATH_MAX], real[PATH_MAX];
	char *prefix = xstrdup(module);
	bool exists;
	int r = 0;

	*ret_file = NULL;
	if (!realpath(root, rroot)) {
		free(prefix);
		return 0;
	}
	for (char *dot = prefix;; dot++) {
		char *f;

		dot = strchr(dot, '.');
		if (dot)
			*dot = '\0';
		f = import_file(root, prefix, &exists);
		if (!exists) {
			free(f);
			break;          /* not under this root */
		}
		if (!beneath(rroot, f, real)) {
			free(f);
			r = -1;         /* found here, but it leads outside */
			break;
		}
		free(f);
		if (!dot) {
			*ret_file = xstrdup(real);
			r = 1;
			break;
		}
		*dot = '.';
	}
	free(prefix);
	return r;
}

int job_check_target(const struct job *j, char *const *allowed, char *const *roots, char **ret_file,
		     char **ret_err)
{
	size_t top = strcspn(j->module_path, ".");
	bool ok = false;

	for (char *const *a = allowed; a && *a; a++)
		ok |= strlen(*a) == top && !strncmp(*a, j->module_path, top);
	if (!ok) {
		char *list = NULL;

		for (char *const *a = allowed; a && *a; a++) {
			char *n = xasprintf("%s%s%s", list ? list : "", list ? ", " : "", *a);

			free(list);
			list = n;
		}
		fail(ret_err, "module_path: '%s' is not under an allowed package (%s)", j->module_path,
		     list ? list : "none");
		free(list);
		return -1;
	}
	for (char *const *r = roots; r && *r; r++) {
		char *f = NULL;
		int found = resolve_under(*r, j->module_path, &f);

		if (found > 0) {
			*ret_file = f;
			return 0;
		}
		if (found < 0)
			return fail(ret_err, "module_path: '%s' is not a module file under the task roots",
				    j->module_path);
	}
	return fail(ret_err, "module_path: '%s' is not a module file under the task roots", j->module_path);
}

int entry_parse(const char *entry, char **ret_module, char **ret_class, char **ret_method, char **ret_err)
{
	const char *colon = strchr(entry, ':');
	const char *attr, *dot;
	char *module;

	if (!colon || strchr(colon + 1, ':'))
		return fail(ret_err, "ENTRY: '%s' is not module.path:function or module.path:Class.method", entry);
	module = xstrndup(entry, (size_t)(colon - entry));
	attr = colon + 1;
	if (!dotted_name_valid(module)) {
		free(module);
		return fail(ret_err, "module_path: '%.*s' is not a dotted name of identifiers that do not start with '_'",
			    (int)(colon - entry), entry);
	}
	if (!dotted_name_valid(attr)) {
		free(module);
		return fail(ret_err, "method_name: '%s' is not a dotted name of identifiers that do not start with '_'",
			    attr);
	}
	dot = strrchr(attr, '.');
	*ret_module = module;
	*ret_class = dot ? xstrndup(attr, (size_t)(dot - attr)) : NULL;
	*ret_method = xstrdup(dot ? dot + 1 : attr);
	return 0;
}

int kv_parse(char *const *args, size_t n, json_t *into, char **ret_err)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(args[i], '=');
		json_error_t jerr;
		char *key;
		json_t *v;

		if (!eq || eq == args[i])
			return fail(ret_err, "'%s': parameters are written key=value", args[i]);
		key = xstrndup(args[i], (size_t)(eq - args[i]));
		if (!ident_valid(key)) {
			fail(ret_err, "parameters.%s: not a valid Python keyword argument name", key);
			free(key);
			return -1;
		}
		v = json_loads(eq + 1, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
		/* JSON that cannot be carried faithfully is an error, not a string. */
		if (!v && json_error_code(&jerr) == json_error_numeric_overflow) {
			fail(ret_err, "parameters.%s: number out of range (integers must fit in 64 bits, reals in a double)",
			     key);
			free(key);
			return -1;
		}
		if (!v && (json_error_code(&jerr) == json_error_duplicate_key ||
			   json_error_code(&jerr) == json_error_null_character)) {
			fail(ret_err, "parameters.%s: %s", key,
			     json_error_code(&jerr) == json_error_null_character ? "a string cannot hold \\u0000"
										: jerr.text);
			free(key);
			return -1;
		}
		if (!v)
			v = json_string(eq + 1);
		if (!v) {
			fail(ret_err, "parameters.%s: value is not valid UTF-8", key);
			free(key);
			return -1;
		}
		json_object_set_new(into, key, v);
		free(key);
	}
	return 0;
}

static int has_real(const json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_real(v))
		return 1;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
			if (has_real(x))
				return 1;
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (has_real(x))
				return 1;
	}
	return 0;
}

char *job_canonical(const json_t *doc, char **ret_err)
{
	json_t *copy;
	char *s;

	/* Producers in other languages print fractions differently; a signature
	 * must cover bytes every producer can reproduce, so reals are refused. */
	if (has_real(doc)) {
		fail(ret_err, "signature: signed payloads may not contain fractional numbers (send them as strings)");
		return NULL;
	}
	copy = json_copy((json_t *)doc);
	json_object_del(copy, "signature");
	s = json_dumps(copy, JSON_SORT_KEYS | JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(copy);
	/* DEL is ASCII to jansson but escaped by Python's json.dumps. */
	if (s && strchr(s, 0x7f)) {
		size_t n = 0;
		char *o;

		for (char *p = s; *p; p++)
			n += *p == 0x7f ? 6 : 1;
		o = xmalloc(n + 1);
		n = 0;
		for (char *p = s; *p; p++) {
			if (*p == 0x7f) {
				memcpy(o + n, "\\u007f", 6);
				n += 6;
			} else {
				o[n++] = *p;
			}
		}
		o[n] = '\0';
		free(s);
		s = o;
	}
	/* \uXXXX in lower case, as Python's json.dumps writes it.  Walk escape
	 * by escape: in \\u the u is text, not an escape. */
	for (char *p = s; p && *p; p++)
		if (*p == '\\' && p[1]) {
			if (p[1] == 'u')
				for (int i = 2; i < 6 && p[i]; i++)
					if (p[i] >= 'A' && p[i] <= 'F')
						p[i] = (char)(p[i] - 'A' + 'a');
			p++;
		}
	return s;
}

int job_prepare(const struct job *j, const struct config *c, const struct policy_set *ps,
		struct job_plan *ret, char **ret_err)
{
	const struct policy *p = policy_find(ps, j->task_type);
	char *file = NULL;

	if (!p) {
		char *list = NULL;

		for (size_t i = 0; i < ps->n; i++) {
			char *n = xasprintf("%s%s%s", list ? list : "", list ? ", " : "", ps->v[i].name);

			free(list);
			list = n;
		}
		fail(ret_err, "task_type: '%s' is not a configured task type (%s)", j->task_type, list ? list : "none");
		free(list);
		return -1;
	}
	if (job_check_target(j, c->allowed_modules, c->tasks_path, &file, ret_err) < 0)
		return -1;
	free(file);
	if (j->timeout_seconds > 0 && j->timeout_seconds * 1000LL > p->max_timeout_ms)
		return fail(ret_err, "timeout_seconds: %ld is over the %s policy's max_timeout of %llds",
			    j->timeout_seconds, p->name, (long long)(p->max_timeout_ms / 1000));
	if (j->priority && priority_rank(j->priority) < priority_rank(p->max_priority))
		return fail(ret_err, "priority: %s is above the %s policy's max_priority %s", j->priority, p->name,
			    p->max_priority);
	if (j->max_retries > p->retries_limit)
		return fail(ret_err, "max_retries: %ld is over the %s policy's retries_limit of %ld", j->max_retries,
			    p->name, p->retries_limit);
	ret->policy = p;
	ret->timeout_ms = j->timeout_seconds > 0 ? j->timeout_seconds * 1000LL : p->timeout_ms;
	ret->priority = j->priority ? j->priority : p->priority;
	ret->max_retries = j->max_retries >= 0 ? j->max_retries : p->max_retries >= 0 ? p->max_retries : c->max_retries;
	return 0;
}

static json_t *strv_json(char *const *v)
{
	json_t *a = json_array();

	for (; v && *v; v++)
		json_array_append_new(a, json_string(*v));
	return a;
}

char *job_envelope(const struct job *j, int attempt, const struct config *c, const struct policy *p,
		   size_t *ret_len)
{
	json_t *e = json_pack("{s:O, s:i, s:o, s:o, s:o, s:I}", "job", j->doc, "attempt", attempt,
			      "roots", strv_json(c->tasks_path), "allowed", strv_json(c->allowed_modules),
			      "python_path", strv_json(p->python_path), "result_max", (json_int_t)c->result_max);
	char *s = json_dumps(e, JSON_COMPACT);

	json_decref(e);
	*ret_len = strlen(s);
	return s;
}
