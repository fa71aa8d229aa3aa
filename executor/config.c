/* SPDX-License-Identifier: ISC */
/* config — settings from TASKEXEC_* variables and taskexec.conf (the environment wins). */
#include "config.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

enum kind { K_STR, K_INT, K_DURATION, K_SIZE, K_BOOL, K_LIST, K_PATHS };

struct setting {
	const char *name;
	enum kind kind;
	size_t off;
	const char *def;
	long min, max;
};

#define S(n, k, f, d, lo, hi) { n, k, offsetof(struct config, f), d, lo, hi }
static const struct setting settings[] = {
	S("TASKEXEC_REDIS_URL", K_STR, redis_url, "redis://127.0.0.1:6379/0", 0, 0),
	S("TASKEXEC_DB_URL", K_STR, db_url, "postgresql:///taskexec", 0, 0),
	S("TASKEXEC_CONCURRENCY", K_INT, concurrency, "1", 1, 256),
	S("TASKEXEC_MAX_RETRIES", K_INT, max_retries, "3", 0, 100),
	S("TASKEXEC_ALLOWED_MODULES", K_LIST, allowed_modules, "tasks", 0, 0),
	S("TASKEXEC_TASKS_PATH", K_PATHS, tasks_path, TASKEXEC_LIBDIR, 0, 0),
	S("TASKEXEC_POLICY_DIR", K_STR, policy_dir, TASKEXEC_SYSCONFDIR "/policy.d", 0, 0),
	S("TASKEXEC_PYTHON", K_STR, python, "/usr/bin/python3", 0, 0),
	S("TASKEXEC_QUEUE_PREFIX", K_STR, queue_prefix, "taskexec", 0, 0),
	S("TASKEXEC_EXECUTOR_ID", K_STR, executor_id, "", 0, 0),
	S("TASKEXEC_HEARTBEAT_INTERVAL", K_DURATION, heartbeat_ms, "5s", 100, 3600 * 1000L),
	S("TASKEXEC_HTTP_LISTEN", K_STR, http_listen, "127.0.0.1:9464", 0, 0),
	S("TASKEXEC_SHUTDOWN_TIMEOUT", K_DURATION, shutdown_ms, "30s", 0, 24 * 3600 * 1000L),
	S("TASKEXEC_RESULT_MAX_BYTES", K_SIZE, result_max, "10240", 2, 64L << 20),
	S("TASKEXEC_JOB_USER", K_STR, job_user, "nobody", 0, 0),
	S("TASKEXEC_REQUIRE_SIGNATURE", K_BOOL, require_signature, "0", 0, 0),
	S("TASKEXEC_VERIFY_KEYS", K_PATHS, verify_keys, "", 0, 0),
	S("TASKEXEC_LOG_LEVEL", K_STR, log_level, "info", 0, 0),
	S("TASKEXEC_STATE_DIR", K_STR, state_dir, TASKEXEC_STATEDIR, 0, 0),
	S("TASKEXEC_SCRATCH_DIR", K_STR, scratch_dir, "/tmp", 0, 0),
	S("TASKEXEC_ISOLATION", K_STR, isolation, "domain", 0, 0),
	S("TASKEXEC_JOB_UIDS", K_STR, job_uids, "2100000000-2100000999", 0, 0),
};
#undef S

static const char *const aliases[][2] = {
	{ "ALLOWED_MODULES", "TASKEXEC_ALLOWED_MODULES" },
};

/* Not settings but read by the tool itself; accepted so they are not "unknown". */
static const char *const known_extra[] = { "TASKEXEC_CONFIG", "TASKEXEC_SIGNING_KEY" };

static const struct setting *find_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(aliases); i++)
		if (!strcmp(name, aliases[i][0]))
			name = aliases[i][1];
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (!strcmp(settings[i].name, name))
			return &settings[i];
	return NULL;
}

static int apply(struct config *c, const struct setting *s, const char *value)
{
	void *field = (char *)c + s->off;
	int64_t ms;
	uint64_t sz;
	long v;
	bool b;

	switch (s->kind) {
	case K_STR:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case K_INT:
		if (parse_int(value, s->min, s->max, &v) < 0)
			return -EINVAL;
		*(long *)field = v;
		return 0;
	case K_DURATION:
		if (parse_duration_ms(value, &ms) < 0 || ms < s->min || ms > s->max)
			return -EINVAL;
		*(int64_t *)field = ms;
		return 0;
	case K_SIZE:
		if (parse_size(value, &sz) < 0 || sz < (uint64_t)s->min || sz > (uint64_t)s->max)
			return -EINVAL;
		*(uint64_t *)field = sz;
		return 0;
	case K_BOOL:
		if (parse_bool(value, &b) < 0)
			return -EINVAL;
		*(bool *)field = b;
		return 0;
	case K_LIST:
	case K_PATHS:
		strv_free(*(char ***)field);
		*(char ***)field = split_list(value, s->kind == K_LIST ? ',' : ':');
		return 0;
	}
	return -EINVAL;
}

static const char *kind_hint(enum kind k)
{
	switch (k) {
	case K_INT: return "a whole number in range";
	case K_DURATION: return "a duration such as 500ms, 30s, 5m, 2h";
	case K_SIZE: return "a size such as 512K, 2G or a number of bytes";
	case K_BOOL: return "0 or 1";
	default: return "a value";
	}
}

/* When the binaries run from a build directory of a checkout (<root>/build/,
 * or another one beside runner-shim/), use the checkout's policies, tasks and
 * shim so `build/taskexec run` works with no environment set. */
static char *dev_root(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash, *probe;
	bool ok;

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	probe = xasprintf("%s/runner-shim/taskexec_shim.py", exe);
	ok = access(probe, R_OK) == 0;
	free(probe);
	return ok ? xstrdup(exe) : NULL;
}

static int load_file(struct config *c, const char *path, bool must_exist, struct errs *e)
{
	char *buf, *line, *next;
	int lineno = 0, r;

	r = read_file(path, 1 << 20, &buf, NULL);
	if (r < 0) {
		if (r == -ENOENT && !must_exist)
			return 0;
		errs_add(e, "%s: %s", path, strerror(-r));
		return -1;
	}
	for (line = buf; line && *line; line = next) {
		char *eq, *key, *val, lbuf[16];
		const struct setting *s;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		snprintf(lbuf, sizeof(lbuf), "%d", lineno);
		eq = strchr(line, '=');
		if (!eq) {
			char *where = xasprintf("%s:%s", path, lbuf);

			/* Not the line itself: it may be a setting with a password in it. */
			errs_add(e, "%s: expected KEY=value, got a line without '='", where);
			free(where);
			continue;
		}
		*eq = '\0';
		key = line;
		val = eq + 1;
		for (char *t = eq - 1; t >= key && (*t == ' ' || *t == '\t'); t--)
			*t = '\0';
		while (*val == ' ' || *val == '\t')
			val++;
		for (char *t = val + strlen(val) - 1; t >= val && (*t == ' ' || *t == '\t' || *t == '\r'); t--)
			*t = '\0';
		if (strlen(val) >= 2 && (*val == '"' || *val == '\'') && val[strlen(val) - 1] == *val) {
			val[strlen(val) - 1] = '\0';
			val++;
		}
		s = find_setting(key);
		if (!s) {
			char *where = xasprintf("%s:%s", path, lbuf);

			errs_add(e, "%s: unknown setting %s", where, key);
			free(where);
			continue;
		}
		if (apply(c, s, val) < 0) {
			char *where = xasprintf("%s:%s: %s", path, lbuf, s->name);

			errs_add(e, "%s: bad value: expected %s", where, kind_hint(s->kind));
			free(where);
		}
	}
	free(buf);
	return 0;
}

int config_load(struct config *c, const char *file, unsigned flags, char **ret_errors)
{
	struct errs e = { 0 };
	enum log_level level;
	char *root, host[256];

	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (apply(c, &settings[i], settings[i].def) < 0)
			abort();
	root = (flags & CONFIG_CHECKOUT) ? dev_root() : NULL;
	if (root) {
		c->dev_layout = true;
		free(c->policy_dir);
		c->policy_dir = xasprintf("%s/policy", root);
		strv_free(c->tasks_path);
		c->tasks_path = split_list(root, ':');
		free(c->state_dir);
		c->state_dir = xasprintf("%s/build/state", root);
		c->shim_dir = xasprintf("%s/runner-shim", root);
		free(root);
	} else {
		c->shim_dir = xstrdup(TASKEXEC_LIBDIR);
	}

	if (!file)
		file = getenv("TASKEXEC_CONFIG");
	if (file) {
		c->config_file = xstrdup(file);
		load_file(c, file, true, &e);
	} else if ((flags & CONFIG_SYSTEM_FILE) && !c->dev_layout &&
		   access(TASKEXEC_SYSCONFDIR "/taskexec.conf", F_OK) == 0) {
		c->config_file = xstrdup(TASKEXEC_SYSCONFDIR "/taskexec.conf");
		load_file(c, c->config_file, false, &e);
	}

	for (char **env = environ; *env; env++) {
		const char *eq = strchr(*env, '=');
		char *name;
		const struct setting *s;
		bool extra = false;

		if (!eq)
			continue;
		name = xstrndup(*env, (size_t)(eq - *env));
		if (strncmp(name, "TASKEXEC_", 9) && strcmp(name, "ALLOWED_MODULES")) {
			free(name);
			continue;
		}
		for (size_t i = 0; i < ARRAY_SIZE(known_extra); i++)
			extra |= !strcmp(name, known_extra[i]);
		s = extra ? NULL : find_setting(name);
		if (!s && !extra)
			errs_add(&e, "%s: unknown variable", name);
		else if (s && apply(c, s, eq + 1) < 0)
			errs_add(&e, "%s: bad value: expected %s", name, kind_hint(s->kind));
		free(name);
	}

	if (!*c->executor_id) {
		if (gethostname(host, sizeof(host)) < 0)
			strcpy(host, "localhost");
		host[sizeof(host) - 1] = '\0';
		free(c->executor_id);
		/* Containers all run their daemon as pid 1 under hostnames that
		 * may repeat: only the random part keeps two starts apart. */
		char rnd[7];

		random_hex(rnd, sizeof(rnd));
		c->executor_id = xasprintf("%s-%d-%s", host, (int)getpid(), rnd);
	}
	if (!strv_len(c->allowed_modules))
		errs_add(&e, "%s: must name at least one package", "TASKEXEC_ALLOWED_MODULES");
	if (!strv_len(c->tasks_path))
		errs_add(&e, "%s: must name at least one directory", "TASKEXEC_TASKS_PATH");
	for (char **p = c->tasks_path; p && *p; p++)
		if (**p != '/')
			errs_add(&e, "TASKEXEC_TASKS_PATH: '%s' is not an absolute path", *p);
	if (log_level_parse(c->log_level, &level) < 0)
		errs_add(&e, "%s: bad value: expected %s", "TASKEXEC_LOG_LEVEL", log_level_choices());
	if (strcmp(c->isolation, "domain") && strcmp(c->isolation, "weak"))
		errs_add(&e, "%s: bad value: expected domain or weak", "TASKEXEC_ISOLATION");
	{
		unsigned long a = 0, b = 0;
		int used = 0;

		if (sscanf(c->job_uids, "%lu-%lu%n", &a, &b, &used) != 2 || c->job_uids[used] || a == 0 ||
		    b < a || b - a >= 65536 || b >= 0xfffffffeUL)
			errs_add(&e, "%s: bad value: '%s' (expected FIRST-LAST, 1 to 65536 ids above 0)",
				"TASKEXEC_JOB_UIDS", c->job_uids);
		c->job_uid_first = (uid_t)a;
		c->job_uid_count = b >= a ? (unsigned)(b - a + 1) : 0;
	}
	if (c->require_signature && !strv_len(c->verify_keys))
		errs_add(&e, "%s: TASKEXEC_REQUIRE_SIGNATURE=1 needs at least one key file",
			"TASKEXEC_VERIFY_KEYS");
	if (strpbrk(c->queue_prefix, "{}: ") || !*c->queue_prefix)
		errs_add(&e, "%s: bad value: '%s' (no braces, colons or blanks)", "TASKEXEC_QUEUE_PREFIX",
			c->queue_prefix);
	*ret_errors = e.text;
	return e.text ? -1 : 0;
}

void config_free(struct config *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		void *field = (char *)c + settings[i].off;

		if (settings[i].kind == K_STR)
			free(*(char **)field);
		else if (settings[i].kind == K_LIST || settings[i].kind == K_PATHS)
			strv_free(*(char ***)field);
	}
	free(c->shim_dir);
	free(c->config_file);
	memset(c, 0, sizeof(*c));
}

/* Replace the value after every "password" key (conninfo "password = 'x y'"
 * or URI "?password=x&") with ***. */
static char *mask_password_keys(const char *url, bool uri)
{
	size_t n = strlen(url);
	char *out = xmalloc(n + 4 * (n / 8 + 1) + 1), *o = out;
	const char *p = url;

	while (*p) {
		const char *k = strstr(p, "password");
		const char *v;

		if (!k) {
			size_t rest = strlen(p);

			memcpy(o, p, rest);
			o += rest;
			break;
		}
		v = k + 8;
		while (!uri && (*v == ' ' || *v == '\t'))
			v++;
		memcpy(o, p, (size_t)(v - p));
		o += v - p;
		p = v;
		if (*v != '=')
			continue;
		*o++ = '=';
		v++;
		while (!uri && (*v == ' ' || *v == '\t'))
			v++;
		if (!uri && *v == '\'') {
			for (v++; *v && *v != '\''; v++)
				if (*v == '\\' && v[1])
					v++;
			if (*v)
				v++;
		} else {
			while (*v && (uri ? *v != '&' : (*v != ' ' && *v != '\t')))
				v++;
		}
		memcpy(o, "***", 3);
		o += 3;
		p = v;
	}
	*o = '\0';
	return out;
}

char *config_mask_url(const char *url)
{
	const char *scheme = strstr(url, "://");
	char *tmp, *out;

	if (!scheme)
		return mask_password_keys(url, false);
	/* scheme://[user][:password]@host...: keep the user, hide the password */
	{
		const char *auth = scheme + 3, *end = auth + strcspn(auth, "/?#"), *at = NULL;
		const char *colon;

		for (const char *q = auth; q < end; q++)
			if (*q == '@')
				at = q;
		if (at) {
			colon = memchr(auth, ':', (size_t)(at - auth));
			if (colon)
				tmp = xasprintf("%.*s:***%s", (int)(colon - url), url, at);
			else if (strncmp(url, "postgres", 8))
				tmp = xasprintf("%.*s***%s", (int)(auth - url), url, at);
			else
				tmp = xstrdup(url);     /* postgresql://user@host: no password */
		} else {
			tmp = xstrdup(url);
		}
	}
	out = mask_password_keys(tmp, true);
	free(tmp);
	return out;
}

void config_print(const struct config *c, FILE *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		const struct setting *s = &settings[i];
		const void *field = (const char *)c + s->off;

		fprintf(out, "%s=", s->name);
		switch (s->kind) {
		case K_STR: {
			const char *v = *(char *const *)field;

			if (!strcmp(s->name, "TASKEXEC_REDIS_URL") || !strcmp(s->name, "TASKEXEC_DB_URL")) {
				char *m = config_mask_url(v);

				fputs(m, out);
				free(m);
			} else {
				fputs(v, out);
			}
			break;
		}
		case K_INT: fprintf(out, "%ld", *(const long *)field); break;
		case K_DURATION: fprintf(out, "%lldms", (long long)*(const int64_t *)field); break;
		case K_SIZE: fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)field); break;
		case K_BOOL: fputs(*(const bool *)field ? "1" : "0", out); break;
		case K_LIST:
		case K_PATHS:
			for (char *const *p = *(char **const *)field; p && *p; p++)
				fprintf(out, "%s%s", p == *(char **const *)field ? "" : (s->kind == K_LIST ? "," : ":"), *p);
			break;
		}
		fputc('\n', out);
	}
}
