/* SPDX-License-Identifier: ISC */
/* policy — one INI file per task type: limits, paths, network, env. */
#include "policy.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct parse {
	FILE *f;
	int line;
	const char *file;
	const struct policy_vars *vars;
	struct policy *p;
	struct errs errors;
	unsigned seen;          /* bit per key, to refuse a key given twice */
};

static void perr(struct parse *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct parse *ps, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	if (ps->line)
		errs_add(&ps->errors, "%s:%d: %s", ps->file, ps->line, msg);
	else
		errs_add(&ps->errors, "%s: %s", ps->file, msg);
	free(msg);
}

/* Counting reader: libinih reports only the first error's line; reading line by
 * line ourselves lets every error name its own line. */
static char *reader(char *str, int num, void *stream)
{
	struct parse *ps = stream;
	char *r = fgets(str, num, ps->f);

	if (r) {
		ps->line++;
		if (!strchr(r, '\n') && !feof(ps->f)) {
			int c;

			perr(ps, "line longer than %d characters", num - 2);
			while ((c = fgetc(ps->f)) != EOF && c != '\n')
				;
			r[0] = '\0';
		}
	}
	return r;
}

static char *expand(const struct policy_vars *v, const char *s, bool *ret_bad)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = xmalloc(cap);

	*ret_bad = false;
	while (*s) {
		const char *val = NULL;
		size_t skip = 0;

		if (!strncmp(s, "${STATE_DIR}", 12)) {
			val = v->state_dir;
			skip = 12;
		} else if (!strncmp(s, "${TASKS_ROOT}", 13)) {
			val = v->tasks_root;
			skip = 13;
		} else if (!strncmp(s, "${", 2)) {
			*ret_bad = true;
		}
		if (val) {
			size_t n = strlen(val);

			out = xreallocarray(out, cap += n, 1);
			memcpy(out + len, val, n);
			len += n;
			s += skip;
		} else {
			out[len++] = *s++;
		}
	}
	out[len] = '\0';
	return out;
}

enum vkind { V_PRIO, V_DUR, V_INT, V_SIZE, V_NET, V_START, V_PATHS };

struct key {
	const char *section, *name;
	enum vkind kind;
	size_t off;
	long min, max;
};

#define K(s, n, k, f, lo, hi) { s, n, k, offsetof(struct policy, f), lo, hi }
static const struct key keys[] = {
	K("job", "priority", V_PRIO, priority, 0, 0),
	K("job", "max_priority", V_PRIO, max_priority, 0, 0),
	K("job", "timeout", V_DUR, timeout_ms, 1000, 7 * 24 * 3600 * 1000L),
	K("job", "max_timeout", V_DUR, max_timeout_ms, 1000, 7 * 24 * 3600 * 1000L),
	K("job", "max_retries", V_INT, max_retries, 0, 100),
	K("job", "retries_limit", V_INT, retries_limit, 0, 100),
	K("job", "max_lost", V_INT, max_lost, 1, 100),
	K("job", "backoff_base", V_DUR, backoff_base_ms, 0, 24 * 3600 * 1000L),
	K("job", "backoff_max", V_DUR, backoff_max_ms, 0, 24 * 3600 * 1000L),
	K("limits", "memory", V_SIZE, memory, 32L << 20, 0),
	K("limits", "cpu_time", V_DUR, cpu_ms, 1000, 7 * 24 * 3600 * 1000L),
	K("limits", "open_files", V_INT, open_files, 16, 1000),
	K("limits", "file_size", V_SIZE, file_size, 0, 0),
	K("limits", "processes", V_INT, processes, 1, 100000),
	K("limits", "output_bytes", V_SIZE, output_bytes, 0, 0),
	K("limits", "scratch_size", V_SIZE, scratch_size, 1 << 20, 0),
	K("network", "mode", V_NET, network, 0, 0),
	K("start", "mode", V_START, start, 0, 0),
	K("start", "warm_forks", V_INT, warm_forks, 1, 1000000),
	K("start", "warm_age", V_DUR, warm_age_ms, 1000, 7 * 24 * 3600 * 1000L),
	K("paths", "read", V_PATHS, read_paths, 0, 0),
	K("paths", "write", V_PATHS, write_paths, 0, 0),
	K("paths", "python_path", V_PATHS, python_path, 0, 0),
};
#undef K

static bool has_name(char **v, const char *name)
{
	size_t n = strlen(name);

	for (char **e = v; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return true;
	return false;
}

/* A variable [env] or [secrets] may set: a valid name the interpreter and
 * the sandbox do not depend on, set once across both sections. */
static bool var_name_ok(struct parse *ps, const char *section, const char *name)
{
	if (!*name) {
		perr(ps, "[%s]: a variable needs a name", section);
		return false;
	}
	for (const char *c = name; *c; c++)
		if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == '_' ||
		      (c != name && *c >= '0' && *c <= '9'))) {
			perr(ps, "[%s] %s: not a valid variable name", section, name);
			return false;
		}
	if (!strncmp(name, "PYTHON", 6) || !strncmp(name, "LD_", 3) || !strcmp(name, "TMPDIR") ||
	    !strcmp(name, "PATH") || !strcmp(name, "LANG")) {
		perr(ps, "[%s] %s: may not be set by a policy", section, name);
		return false;
	}
	if (has_name(ps->p->env, name) || has_name(ps->p->secrets, name)) {
		perr(ps, "[%s] %s: given twice", section, name);
		return false;
	}
	return true;
}

int policy_secret_read(const char *source, char **ret, size_t *ret_len, char **ret_err)
{
	char *path, *buf = NULL;
	size_t len = 0;
	struct stat st;
	int fd, r = -1;

	if (!strncmp(source, "credential:", 11)) {
		const char *dir = getenv("CREDENTIALS_DIRECTORY");

		if (!dir || !*dir) {
			*ret_err = xasprintf("%s: CREDENTIALS_DIRECTORY is not set (no LoadCredential= in the unit?)", source);
			return -1;
		}
		path = xasprintf("%s/%s", dir, source + 11);
	} else {
		path = xstrdup(source);
	}
	/* O_NOFOLLOW|O_NONBLOCK: a symlink planted in place of the file, or a FIFO
	 * that would hang the daemon, is refused rather than followed. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		*ret_err = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		*ret_err = xasprintf("%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		*ret_err = xasprintf("%s: not a regular file", path);
		goto out;
	}
	/* Root's, or the daemon's own user's when it runs unprivileged (taskexec
	 * run by a developer): anyone else could have put another value there. */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		*ret_err = xasprintf("%s: owned by uid %u, not root: chown root:root %s", path, (unsigned)st.st_uid, path);
		goto out;
	}
	if (st.st_mode & 077) {
		*ret_err = xasprintf("%s: mode %04o lets group or others at it: chmod 0600 %s", path,
				     (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > POLICY_SECRET_MAX) {
		*ret_err = xasprintf("%s: larger than %d bytes", path, POLICY_SECRET_MAX);
		goto out;
	}
	buf = xmalloc(POLICY_SECRET_MAX + 1);
	for (;;) {
		ssize_t n = read(fd, buf + len, POLICY_SECRET_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*ret_err = xasprintf("%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > POLICY_SECRET_MAX) {
			*ret_err = xasprintf("%s: larger than %d bytes", path, POLICY_SECRET_MAX);
			goto out;
		}
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	if (buf) {
		explicit_bzero(buf, POLICY_SECRET_MAX + 1);
		free(buf);
	}
	if (fd >= 0)
		close(fd);
	free(path);
	return r;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *ps = user;
	struct policy *p = ps->p;
	bool bad;

	if (!strcmp(section, "secrets")) {
		size_t n = strv_len(p->secrets);
		char *v, *err = NULL;
		size_t len;

		if (!var_name_ok(ps, section, name))
			return 1;
		if (!strncmp(value, "credential:", 11)) {
			if (!value[11] || strchr(value + 11, '/')) {
				perr(ps, "[secrets] %s: '%s' is not credential:NAME", name, value);
				return 1;
			}
		} else if (*value != '/') {
			perr(ps, "[secrets] %s: '%s' is not an absolute path or credential:NAME", name, value);
			return 1;
		}
		/* Checked now, so --check and a SIGHUP reload name a bad file before
		 * any job needs it; read again at each launch. */
		if (policy_secret_read(value, &v, &len, &err) < 0) {
			perr(ps, "[secrets] %s: %s", name, err);
			free(err);
			return 1;
		}
		explicit_bzero(v, len);
		free(v);
		p->secrets = xreallocarray(p->secrets, n + 2, sizeof(char *));
		p->secrets[n] = xasprintf("%s=%s", name, value);
		p->secrets[n + 1] = NULL;
		return 1;
	}
	if (!strcmp(section, "env")) {
		size_t n = strv_len(p->env);
		char *v;

		if (!var_name_ok(ps, section, name))
			return 1;
		v = expand(ps->vars, value, &bad);
		if (bad) {
			perr(ps, "[env] %s: unknown ${...} variable (known: ${STATE_DIR}, ${TASKS_ROOT})", name);
			free(v);
			return 1;
		}
		p->env = xreallocarray(p->env, n + 2, sizeof(char *));
		p->env[n] = xasprintf("%s=%s", name, v);
		p->env[n + 1] = NULL;
		free(v);
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key *k = &keys[i];
		void *field = (char *)p + k->off;
		int64_t ms;
		uint64_t sz;
		long l;

		if (strcmp(section, k->section) || strcmp(name, k->name))
			continue;
		if (ps->seen & (1u << i)) {
			perr(ps, "[%s] %s: given twice", section, name);
			return 1;
		}
		ps->seen |= 1u << i;
		switch (k->kind) {
		case V_PRIO:
			if (priority_rank(value) < 0) {
				perr(ps, "[%s] %s: '%s' is not high, normal or low", section, name, value);
				return 1;
			}
			free(*(char **)field);
			*(char **)field = xstrdup(value);
			return 1;
		case V_DUR:
			if (parse_duration_ms(value, &ms) < 0 || ms < k->min || ms > k->max) {
				perr(ps, "[%s] %s: '%s' is not a duration from %s to %s (500ms, 30s, 5m, 2h)", section, name,
				     value, k->min ? "1s" : "0", k->max > 24 * 3600 * 1000L ? "168h" : "24h");
				return 1;
			}
			*(int64_t *)field = ms;
			return 1;
		case V_INT:
			if (parse_int(value, k->min, k->max, &l) < 0) {
				perr(ps, "[%s] %s: '%s' is not a whole number from %ld to %ld", section, name, value, k->min, k->max);
				return 1;
			}
			*(long *)field = l;
			return 1;
		case V_SIZE:
			if (parse_size(value, &sz) < 0 || sz < (uint64_t)k->min) {
				perr(ps, "[%s] %s: '%s' is not a size (512K, 64M, 2G) of at least %ldM", section, name, value, k->min >> 20);
				return 1;
			}
			*(uint64_t *)field = sz;
			return 1;
		case V_NET:
			if (!strcmp(value, "none"))
				p->network = NET_NONE;
			else if (!strcmp(value, "outbound"))
				p->network = NET_OUTBOUND;
			else
				perr(ps, "[network] mode: '%s' is not none or outbound", value);
			return 1;
		case V_START:
			if (!strcmp(value, "fresh"))
				p->start = START_FRESH;
			else if (!strcmp(value, "warm"))
				p->start = START_WARM;
			else
				perr(ps, "[start] mode: '%s' is not fresh or warm", value);
			return 1;
		case V_PATHS: {
			char **list = split_list(value, ',');

			for (char **q = list; *q; q++) {
				char *e = expand(ps->vars, *q, &bad);

				if (bad)
					perr(ps, "[paths] %s: unknown ${...} variable in '%s'", name, *q);
				else if (*e != '/')
					perr(ps, "[paths] %s: '%s' is not an absolute path", name, e);
				free(*q);
				*q = e;
			}
			strv_free(*(char ***)field);
			*(char ***)field = list;
			return 1;
		}
		}
	}
	if (strcmp(section, "job") && strcmp(section, "limits") && strcmp(section, "network") &&
	    strcmp(section, "start") && strcmp(section, "paths"))
		perr(ps, "[%s]: unknown section (known: job, limits, network, start, paths, env, secrets)", section);
	else
		perr(ps, "[%s] %s: unknown key", section, name);
	return 1;
}

static void policy_defaults(struct policy *p)
{
	p->priority = xstrdup("normal");
	p->max_priority = xstrdup("high");
	p->timeout_ms = 10 * 60 * 1000;
	p->max_timeout_ms = 60 * 60 * 1000;
	p->max_retries = -1;      /* unset: TASKEXEC_MAX_RETRIES applies */
	p->retries_limit = 10;
	p->max_lost = 3;
	p->backoff_base_ms = 1000;
	p->backoff_max_ms = 600 * 1000;
	p->memory = 512ULL << 20;
	p->cpu_ms = 0;
	p->open_files = 64;
	p->file_size = 64ULL << 20;
	p->processes = 64;
	p->output_bytes = 4ULL << 20;
	p->scratch_size = 64ULL << 20;
	p->network = NET_NONE;
	p->start = START_FRESH;
	p->warm_forks = 1000;
	p->warm_age_ms = 3600 * 1000;
	p->read_paths = xcalloc(1, sizeof(char *));
	p->write_paths = xcalloc(1, sizeof(char *));
	p->python_path = xcalloc(1, sizeof(char *));
	p->env = xcalloc(1, sizeof(char *));
	p->secrets = xcalloc(1, sizeof(char *));
}

static void policy_free(struct policy *p)
{
	free(p->name);
	free(p->file);
	free(p->priority);
	free(p->max_priority);
	strv_free(p->read_paths);
	strv_free(p->write_paths);
	strv_free(p->python_path);
	strv_free(p->env);
	strv_free(p->secrets);
}

int priority_rank(const char *p)
{
	if (!p)
		return -1;
	if (!strcmp(p, "high"))
		return 0;
	if (!strcmp(p, "normal"))
		return 1;
	if (!strcmp(p, "low"))
		return 2;
	return -1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct policy *)a)->name, ((const struct policy *)b)->name);
}

int policy_load_dir(const char *dir, const struct policy_vars *vars, struct policy_set *ret,
		    char **ret_errors)
{
	struct policy_set s = { 0 };
	struct parse ps = { 0 };
	struct dirent *de;
	DIR *d = opendir(dir);

	*ret_errors = NULL;
	if (!d) {
		*ret_errors = xasprintf("%s: %s\n", dir, strerror(errno));
		return -1;
	}
	ps.vars = vars;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		struct policy *p;
		char *path;
		int r;

		if (n <= 7 || strcmp(de->d_name + n - 7, ".policy") || de->d_name[0] == '.')
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		s.v = xreallocarray(s.v, s.n + 1, sizeof(*s.v));
		p = &s.v[s.n++];
		memset(p, 0, sizeof(*p));
		policy_defaults(p);
		p->name = xstrndup(de->d_name, n - 7);
		p->file = path;
		ps.f = fopen(path, "re");
		ps.file = path;
		ps.line = 0;
		ps.p = p;
		ps.seen = 0;
		if (!ps.f) {
			perr(&ps, "%s", strerror(errno));
			continue;
		}
		r = ini_parse_stream(reader, &ps, handler, &ps);
		fclose(ps.f);
		if (r > 0) {
			ps.line = r;
			perr(&ps, "syntax error (expected [section] or key = value)");
		}
		if (p->timeout_ms > p->max_timeout_ms) {
			ps.line = 0;
			perr(&ps, "[job] timeout is longer than max_timeout");
		}
		if (p->max_retries > p->retries_limit) {
			ps.line = 0;
			perr(&ps, "[job] max_retries is above retries_limit");
		}
		if (priority_rank(p->priority) < priority_rank(p->max_priority)) {
			ps.line = 0;
			perr(&ps, "[job] priority is above max_priority");
		}
		if (!p->cpu_ms)
			p->cpu_ms = p->max_timeout_ms + 5000;
	}
	closedir(d);
	if (!ps.errors.text && s.n == 0)
		*ret_errors = xasprintf("%s: no *.policy files\n", dir);
	if (ps.errors.text || s.n == 0) {
		if (ps.errors.text)
			*ret_errors = ps.errors.text;
		for (size_t i = 0; i < s.n; i++)
			policy_free(&s.v[i]);
		free(s.v);
		return -1;
	}
	qsort(s.v, s.n, sizeof(*s.v), by_name);
	*ret = s;
	return 0;
}

void policy_set_free(struct policy_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		policy_free(&s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

const struct policy *policy_find(const struct policy_set *s, const char *task_type)
{
	for (size_t i = 0; i < s->n; i++)
		if (!strcmp(s->v[i].name, task_type))
			return &s->v[i];
	return NULL;
}

static void print_list(FILE *out, const char *key, char **v)
{
	fprintf(out, "%s = ", key);
	for (char **q = v; q && *q; q++)
		fprintf(out, "%s%s", q == v ? "" : ", ", *q);
	fputc('\n', out);
}

void policy_print(const struct policy *p, FILE *out)
{
	fprintf(out, "; %s (task type %s)\n[job]\n", p->file, p->name);
	fprintf(out, "priority = %s\nmax_priority = %s\n", p->priority, p->max_priority);
	fprintf(out, "timeout = %llds\nmax_timeout = %llds\n", (long long)p->timeout_ms / 1000,
		(long long)p->max_timeout_ms / 1000);
	if (p->max_retries >= 0)
		fprintf(out, "max_retries = %ld\n", p->max_retries);
	else
		fprintf(out, "; max_retries unset: TASKEXEC_MAX_RETRIES applies\n");
	fprintf(out, "retries_limit = %ld\nmax_lost = %ld\n", p->retries_limit, p->max_lost);
	fprintf(out, "backoff_base = %lldms\nbackoff_max = %lldms\n", (long long)p->backoff_base_ms,
		(long long)p->backoff_max_ms);
	fprintf(out, "\n[limits]\nmemory = %lluK\ncpu_time = %llds\nopen_files = %ld\nfile_size = %lluK\nprocesses = %ld\n"
		"output_bytes = %llu\nscratch_size = %lluK\n",
		(unsigned long long)(p->memory >> 10), (long long)p->cpu_ms / 1000, p->open_files,
		(unsigned long long)(p->file_size >> 10), p->processes, (unsigned long long)p->output_bytes,
		(unsigned long long)(p->scratch_size >> 10));
	fprintf(out, "\n[network]\nmode = %s\n", p->network == NET_NONE ? "none" : "outbound");
	fprintf(out, "\n[start]\nmode = %s\nwarm_forks = %ld\nwarm_age = %llds\n\n[paths]\n",
		p->start == START_WARM ? "warm" : "fresh", p->warm_forks, (long long)p->warm_age_ms / 1000);
	print_list(out, "read", p->read_paths);
	print_list(out, "write", p->write_paths);
	print_list(out, "python_path", p->python_path);
	fprintf(out, "\n[env]\n");
	for (char **e = p->env; e && *e; e++) {
		const char *eq = strchr(*e, '=');

		fprintf(out, "%.*s = %s\n", (int)(eq - *e), *e, eq + 1);
	}
	/* Where each secret comes from, never its value. */
	fprintf(out, "\n[secrets]\n");
	for (char **e = p->secrets; e && *e; e++) {
		const char *eq = strchr(*e, '=');

		fprintf(out, "%.*s = %s\n", (int)(eq - *e), *e, eq + 1);
	}
}

struct policies *policies_load(const char *dir, const struct policy_vars *v, char **ret_err)
{
	struct policies *p = xcalloc(1, sizeof(*p));

	if (policy_load_dir(dir, v, &p->set, ret_err) < 0) {
		free(p);
		return NULL;
	}
	p->refs = 1;
	return p;
}

struct policies *policies_ref(struct policies *p)
{
	p->refs++;
	return p;
}

void policies_unref(struct policies *p)
{
	if (p && --p->refs == 0) {
		policy_set_free(&p->set);
		free(p);
	}
}
