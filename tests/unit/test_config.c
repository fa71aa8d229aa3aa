/* SPDX-License-Identifier: ISC */
/* Unit tests for executor/config.h: TASKEXEC_* variables and taskexec.conf
 * (DESIGN.md §3).  config_load reads the whole environment, so every test
 * starts and ends with no TASKEXEC_* (or ALLOWED_MODULES) variable set. */
#include "unit.h"
#include "config.h"
#include "util.h"

extern char **environ;

static void clear_taskexec_env(void)
{
	char **names = NULL;
	size_t n = 0;

	for (char **e = environ; e && *e; e++) {
		size_t len = strcspn(*e, "=");

		if ((len > 9 && !strncmp(*e, "TASKEXEC_", 9)) || (len == 15 && !strncmp(*e, "ALLOWED_MODULES", 15))) {
			names = realloc(names, (n + 1) * sizeof(*names));
			assert_non_null(names);
			names[n++] = strndup(*e, len);
		}
	}
	for (size_t i = 0; i < n; i++) {
		unsetenv(names[i]);
		free(names[i]);
	}
	free(names);
}

struct cfg {
	struct config c;
	bool loaded;
	char *errors;
	char *dir;
};

static int cfg_setup(void **state)
{
	struct cfg *t = calloc(1, sizeof(*t));

	clear_taskexec_env();
	t->dir = unit_mkdtemp();
	*state = t;
	return 0;
}

static int cfg_teardown(void **state)
{
	struct cfg *t = *state;

	clear_taskexec_env();
	if (t->loaded)
		config_free(&t->c);
	free(t->errors);
	unit_rm_rf(t->dir);
	free(t->dir);
	free(t);
	return 0;
}

static int load(struct cfg *t, const char *file)
{
	int r;

	if (t->loaded)
		config_free(&t->c);
	free(t->errors);
	t->errors = NULL;
	r = config_load(&t->c, file, 0, &t->errors);
	t->loaded = true;
	return r;
}

static struct config *load_ok(struct cfg *t, const char *file)
{
	if (load(t, file) != 0)
		fail_msg("config_load refused: %s", t->errors);
	assert_null(t->errors);
	return &t->c;
}

static const char *load_bad(struct cfg *t, const char *file)
{
	assert_int_equal(load(t, file), -1);
	assert_non_null(t->errors);
	return t->errors;
}

/* ---- defaults ---- */

static void defaults_without_environment(void **state)
{
	struct config *c;

	/* Without CONFIG_SYSTEM_FILE no file is read, installed package or not. */
	c = load_ok(*state, NULL);
	char host[256], *id = NULL;

	assert_string_equal(c->redis_url, "redis://127.0.0.1:6379/0");
	assert_string_equal(c->db_url, "postgresql:///taskexec");
	assert_int_equal(c->concurrency, 1);
	assert_int_equal(c->max_retries, 3);
	assert_int_equal(strv_len(c->allowed_modules), 1);
	assert_string_equal(c->allowed_modules[0], "tasks");
	assert_string_equal(c->policy_dir, TASKEXEC_SYSCONFDIR "/policy.d");
	assert_string_equal(c->python, "/usr/bin/python3");
	assert_string_equal(c->queue_prefix, "taskexec");
	assert_int_equal(c->heartbeat_ms, 5000);
	assert_string_equal(c->http_listen, "127.0.0.1:9464");
	assert_int_equal(c->shutdown_ms, 30000);
	assert_int_equal(c->result_max, 10240);
	assert_string_equal(c->job_user, "nobody");
	assert_false(c->require_signature);
	assert_int_equal(strv_len(c->verify_keys), 0);
	assert_string_equal(c->log_level, "info");
	assert_string_equal(c->scratch_dir, "/tmp");
	assert_true(strv_len(c->tasks_path) >= 1);
	assert_int_equal(c->tasks_path[0][0], '/');
	assert_false(c->dev_layout);
	assert_null(c->config_file);
	/* executor id: <hostname>-<pid>-<6 random hex digits>, so that daemons
	 * that all run as pid 1 in their containers still differ */
	assert_int_equal(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	assert_true(asprintf(&id, "%s-%d-", host, (int)getpid()) > 0);
	assert_int_equal(strncmp(c->executor_id, id, strlen(id)), 0);
	assert_int_equal(strlen(c->executor_id), strlen(id) + 6);
	assert_int_equal(strspn(c->executor_id + strlen(id), "0123456789abcdef"), 6);
	free(id);
}

/* ---- the environment ---- */

static void heartbeat_interval_in_milliseconds(void **state)
{
	struct config *c;

	setenv("TASKEXEC_HEARTBEAT_INTERVAL", "500ms", 1);
	c = load_ok(*state, NULL);
	assert_int_equal(c->heartbeat_ms, 500);
	setenv("TASKEXEC_HEARTBEAT_INTERVAL", "1s", 1);
	c = load_ok(*state, NULL);
	assert_int_equal(c->heartbeat_ms, 1000);
}

static void heartbeat_interval_bad_values_named(void **state)
{
	const char *bad[] = { "50ms", "soon", "", "-1s", "2h" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		setenv("TASKEXEC_HEARTBEAT_INTERVAL", bad[i], 1);
		assert_string_equal(load_bad(*state, NULL),
				    "TASKEXEC_HEARTBEAT_INTERVAL: bad value: expected a duration such as 500ms, 30s, 5m, 2h\n");
	}
}

static void settings_from_environment(void **state)
{
	struct config *c;

	setenv("TASKEXEC_CONCURRENCY", "8", 1);
	setenv("TASKEXEC_MAX_RETRIES", "0", 1);
	setenv("TASKEXEC_SHUTDOWN_TIMEOUT", "5s", 1);
	setenv("TASKEXEC_RESULT_MAX_BYTES", "1M", 1);
	setenv("TASKEXEC_TASKS_PATH", "/opt/a: /opt/b", 1);
	setenv("TASKEXEC_POLICY_DIR", "/srv/policy", 1);
	setenv("TASKEXEC_QUEUE_PREFIX", "p1", 1);
	setenv("TASKEXEC_EXECUTOR_ID", "exec-7", 1);
	setenv("TASKEXEC_HTTP_LISTEN", "off", 1);
	setenv("TASKEXEC_LOG_LEVEL", "debug", 1);
	setenv("TASKEXEC_STATE_DIR", "/srv/state", 1);
	setenv("TASKEXEC_SIGNING_KEY", "/etc/taskexec/signing.key", 1);  /* read by the tool, not a setting */
	c = load_ok(*state, NULL);
	assert_int_equal(c->concurrency, 8);
	assert_int_equal(c->max_retries, 0);
	assert_int_equal(c->shutdown_ms, 5000);
	assert_int_equal(c->result_max, 1 << 20);
	assert_int_equal(strv_len(c->tasks_path), 2);
	assert_string_equal(c->tasks_path[1], "/opt/b");
	assert_string_equal(c->policy_dir, "/srv/policy");
	assert_string_equal(c->queue_prefix, "p1");
	assert_string_equal(c->executor_id, "exec-7");
	assert_string_equal(c->http_listen, "off");
	assert_string_equal(c->log_level, "debug");
	assert_string_equal(c->state_dir, "/srv/state");
}

static void unknown_taskexec_variable_refused(void **state)
{
	setenv("TASKEXEC_FOO", "1", 1);
	assert_string_equal(load_bad(*state, NULL), "TASKEXEC_FOO: unknown variable\n");
}

static void misspelt_variable_refused(void **state)
{
	setenv("TASKEXEC_CONCURENCY", "4", 1);
	assert_string_equal(load_bad(*state, NULL), "TASKEXEC_CONCURENCY: unknown variable\n");
}

static void other_variables_ignored(void **state)
{
	setenv("TASKEXECFOO", "1", 1);
	setenv("FOO_TASKEXEC_BAR", "1", 1);
	load_ok(*state, NULL);
	unsetenv("TASKEXECFOO");
	unsetenv("FOO_TASKEXEC_BAR");
}

static void bad_concurrency_names_variable(void **state)
{
	const char *bad[] = { "zero", "0", "257", "-1", "1.5", "" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		setenv("TASKEXEC_CONCURRENCY", bad[i], 1);
		assert_string_equal(load_bad(*state, NULL),
				    "TASKEXEC_CONCURRENCY: bad value: expected a whole number in range\n");
	}
}

static void bad_size_names_variable(void **state)
{
	setenv("TASKEXEC_RESULT_MAX_BYTES", "10Q", 1);
	assert_string_equal(load_bad(*state, NULL),
			    "TASKEXEC_RESULT_MAX_BYTES: bad value: expected a size such as 512K, 2G or a number of bytes\n");
	setenv("TASKEXEC_RESULT_MAX_BYTES", "128M", 1);    /* over the 64M ceiling */
	assert_contains(load_bad(*state, NULL), "TASKEXEC_RESULT_MAX_BYTES: bad value");
}

static void every_bad_variable_reported(void **state)
{
	const char *e;

	setenv("TASKEXEC_CONCURRENCY", "zero", 1);
	setenv("TASKEXEC_FOO", "1", 1);
	setenv("TASKEXEC_REQUIRE_SIGNATURE", "maybe", 1);
	e = load_bad(*state, NULL);
	assert_contains(e, "TASKEXEC_CONCURRENCY: bad value: expected a whole number in range\n");
	assert_contains(e, "TASKEXEC_FOO: unknown variable\n");
	assert_contains(e, "TASKEXEC_REQUIRE_SIGNATURE: bad value: expected 0 or 1\n");
}

static void log_level_checked(void **state)
{
	setenv("TASKEXEC_LOG_LEVEL", "verbose", 1);
	assert_string_equal(load_bad(*state, NULL),
			    "TASKEXEC_LOG_LEVEL: bad value: expected debug, info, warn or error\n");
}

static void queue_prefix_without_braces_or_colons(void **state)
{
	const char *bad[] = { "a{b}", "a:b", "a b", "" };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		setenv("TASKEXEC_QUEUE_PREFIX", bad[i], 1);
		assert_contains(load_bad(*state, NULL), "TASKEXEC_QUEUE_PREFIX: bad value:");
	}
}

static void tasks_path_must_be_absolute(void **state)
{
	setenv("TASKEXEC_TASKS_PATH", "/opt/a:relative", 1);
	assert_string_equal(load_bad(*state, NULL), "TASKEXEC_TASKS_PATH: 'relative' is not an absolute path\n");
	setenv("TASKEXEC_TASKS_PATH", "", 1);
	assert_string_equal(load_bad(*state, NULL), "TASKEXEC_TASKS_PATH: must name at least one directory\n");
}

static void require_signature_needs_keys(void **state)
{
	struct config *c;

	setenv("TASKEXEC_REQUIRE_SIGNATURE", "1", 1);
	assert_contains(load_bad(*state, NULL), "TASKEXEC_VERIFY_KEYS: TASKEXEC_REQUIRE_SIGNATURE=1 needs at least one key file");
	setenv("TASKEXEC_VERIFY_KEYS", "/etc/taskexec/a.pub:/etc/taskexec/b.pub", 1);
	c = load_ok(*state, NULL);
	assert_true(c->require_signature);
	assert_int_equal(strv_len(c->verify_keys), 2);
}

static void allowed_modules_list(void **state)
{
	struct config *c;

	setenv("TASKEXEC_ALLOWED_MODULES", "tasks, abuse", 1);
	c = load_ok(*state, NULL);
	assert_int_equal(strv_len(c->allowed_modules), 2);
	assert_string_equal(c->allowed_modules[0], "tasks");
	assert_string_equal(c->allowed_modules[1], "abuse");
	setenv("TASKEXEC_ALLOWED_MODULES", " , ", 1);
	assert_string_equal(load_bad(*state, NULL), "TASKEXEC_ALLOWED_MODULES: must name at least one package\n");
}

static void allowed_modules_alias(void **state)
{
	struct config *c;

	setenv("ALLOWED_MODULES", "tasks,abuse", 1);
	c = load_ok(*state, NULL);
	assert_int_equal(strv_len(c->allowed_modules), 2);
	assert_string_equal(c->allowed_modules[1], "abuse");
}

/* ---- the configuration file ---- */

static void config_file_from_taskexec_config(void **state)
{
	struct cfg *t = *state;
	char *file = unit_write(t->dir, "x.conf",
				"# taskexec.conf\n"
				"TASKEXEC_CONCURRENCY=4\n"
				"  # indented comment\n"
				"TASKEXEC_HEARTBEAT_INTERVAL = 2s\n"
				"TASKEXEC_DB_URL=\"postgresql://u@db/taskexec\"\n"
				"TASKEXEC_JOB_USER='taskexec-job'\n"
				"ALLOWED_MODULES=tasks,extra\n");
	struct config *c;

	setenv("TASKEXEC_CONFIG", file, 1);
	c = load_ok(t, NULL);
	assert_string_equal(c->config_file, file);
	assert_int_equal(c->concurrency, 4);
	assert_int_equal(c->heartbeat_ms, 2000);
	assert_string_equal(c->db_url, "postgresql://u@db/taskexec");
	assert_string_equal(c->job_user, "taskexec-job");
	assert_string_equal(c->allowed_modules[1], "extra");
	free(file);
}

static void config_file_as_argument(void **state)
{
	struct cfg *t = *state;
	char *file = unit_write(t->dir, "y.conf", "TASKEXEC_MAX_RETRIES=7\r\n");
	struct config *c = load_ok(t, file);

	assert_int_equal(c->max_retries, 7);
	assert_string_equal(c->config_file, file);
	free(file);
}

static void environment_wins_over_file(void **state)
{
	struct cfg *t = *state;
	char *file = unit_write(t->dir, "x.conf", "TASKEXEC_CONCURRENCY=4\nTASKEXEC_MAX_RETRIES=9\n");
	struct config *c;

	setenv("TASKEXEC_CONFIG", file, 1);
	setenv("TASKEXEC_CONCURRENCY", "2", 1);
	c = load_ok(t, NULL);
	assert_int_equal(c->concurrency, 2);
	assert_int_equal(c->max_retries, 9);
	free(file);
}

static void unknown_key_in_file_names_file_and_line(void **state)
{
	struct cfg *t = *state;
	char *file = unit_write(t->dir, "x.conf", "# comment\nTASKEXEC_CONCURRENCY=4\nTASKEXEC_FOO=1\n");
	char *want = NULL;

	assert_true(asprintf(&want, "%s:3: unknown setting TASKEXEC_FOO\n", file) > 0);
	assert_string_equal(load_bad(t, file), want);
	free(want);
	free(file);
}

static void bad_value_in_file_names_file_line_and_variable(void **state)
{
	struct cfg *t = *state;
	char *file = unit_write(t->dir, "x.conf", "TASKEXEC_LOG_LEVEL=info\nTASKEXEC_CONCURRENCY=zero\n");
	char *want = NULL;

	assert_true(asprintf(&want, "%s:2: TASKEXEC_CONCURRENCY: bad value: expected a whole number in range\n",
			     file) > 0);
	assert_string_equal(load_bad(t, file), want);
	free(want);
	free(file);
}

static void line_without_equals_in_file_refused(void **state)
{
	struct cfg *t = *state;
	char *file = unit_write(t->dir, "x.conf", "TASKEXEC_CONCURRENCY 4\n");
	char *want = NULL;

	assert_true(asprintf(&want, "%s:1: expected KEY=value, got a line without '='\n", file) > 0);
	assert_string_equal(load_bad(t, file), want);
	free(want);
	free(file);
}

static void missing_config_file_refused(void **state)
{
	struct cfg *t = *state;
	char *file = unit_path(t->dir, "missing.conf"), *want = NULL;

	setenv("TASKEXEC_CONFIG", file, 1);
	assert_true(asprintf(&want, "%s: No such file or directory\n", file) > 0);
	assert_string_equal(load_bad(t, NULL), want);
	free(want);
	free(file);
}

static void file_line_numbers_count_blank_lines(void **state)
{
	struct cfg *t = *state;
	char *file, *want = NULL;

	file = unit_write(t->dir, "x.conf", "# comment\n\nTASKEXEC_CONCURRENCY=4\n\n\nTASKEXEC_FOO=1\n");
	assert_true(asprintf(&want, "%s:6: unknown setting TASKEXEC_FOO\n", file) > 0);
	assert_string_equal(load_bad(t, file), want);
	free(want);
	free(file);
}

/* ---- secrets ---- */

static void mask_url_hides_uri_password(void **state)
{
	char *m = config_mask_url("postgresql://u:secret@h/db");

	assert_string_equal(m, "postgresql://u:***@h/db");
	free(m);
	m = config_mask_url("redis://:secret@127.0.0.1:6379/0");
	assert_string_equal(m, "redis://:***@127.0.0.1:6379/0");
	free(m);
}

static void mask_url_hides_conninfo_password(void **state)
{
	char *m = config_mask_url("host=h password=secret dbname=x");

	assert_string_equal(m, "host=h password=*** dbname=x");
	free(m);
	m = config_mask_url("host=h password=secret");
	assert_string_equal(m, "host=h password=***");
	free(m);
}

static void mask_url_leaves_passwordless_urls(void **state)
{
	const char *keep[] = { "postgresql:///taskexec", "redis://127.0.0.1:6379/0", "unix:///run/redis.sock",
			       "postgresql://u@h:5432/db", "host=h dbname=x" };

	for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
		char *m = config_mask_url(keep[i]);

		assert_string_equal(m, keep[i]);
		free(m);
	}
}

static void mask_url_hides_other_password_spellings(void **state)
{
	/* libpq accepts all of these; none may show the password. */
	const char *urls[] = {
		"postgresql://u@h/db?password=secret",
		"postgresql://h/db?sslmode=require&password=secret",
		"host=h password = secret dbname=x",
		"host=h password='sec ret' dbname=x",
	};

	for (size_t i = 0; i < ARRAY_SIZE(urls); i++) {
		char *m = config_mask_url(urls[i]);

		assert_not_contains(m, "secret");
		assert_not_contains(m, "sec");
		assert_not_contains(m, "ret'");
		free(m);
	}
}

static void config_print_never_prints_secret(void **state)
{
	struct config *c;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	setenv("TASKEXEC_DB_URL", "postgresql://u:secret@h/db", 1);
	setenv("TASKEXEC_REDIS_URL", "redis://default:secret@r:6379/0", 1);
	setenv("TASKEXEC_CONCURRENCY", "3", 1);
	c = load_ok(*state, NULL);
	f = open_memstream(&text, &len);
	assert_non_null(f);
	config_print(c, f);
	fclose(f);
	assert_not_contains(text, "secret");
	assert_contains(text, "TASKEXEC_DB_URL=postgresql://u:***@h/db\n");
	assert_contains(text, "TASKEXEC_REDIS_URL=redis://default:***@r:6379/0\n");
	assert_contains(text, "TASKEXEC_CONCURRENCY=3\n");
	assert_contains(text, "TASKEXEC_HEARTBEAT_INTERVAL=5000ms\n");
	assert_contains(text, "TASKEXEC_ALLOWED_MODULES=tasks\n");
	free(text);
}

static void config_print_output_loads_back(void **state)
{
	struct cfg *t = *state;
	struct config *c;
	char *text = NULL, *file;
	size_t len = 0;
	FILE *f;

	setenv("TASKEXEC_CONCURRENCY", "5", 1);
	setenv("TASKEXEC_ALLOWED_MODULES", "tasks,abuse", 1);
	setenv("TASKEXEC_TASKS_PATH", "/opt/a:/opt/b", 1);
	setenv("TASKEXEC_HEARTBEAT_INTERVAL", "750ms", 1);
	c = load_ok(t, NULL);
	f = open_memstream(&text, &len);
	config_print(c, f);
	fclose(f);
	clear_taskexec_env();
	file = unit_write(t->dir, "printed.conf", text);
	c = load_ok(t, file);
	assert_int_equal(c->concurrency, 5);
	assert_int_equal(strv_len(c->allowed_modules), 2);
	assert_int_equal(strv_len(c->tasks_path), 2);
	assert_int_equal(c->heartbeat_ms, 750);
	free(file);
	free(text);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, cfg_setup, cfg_teardown)
	const struct CMUnitTest tests[] = {
		T(defaults_without_environment),
		T(heartbeat_interval_in_milliseconds),
		T(heartbeat_interval_bad_values_named),
		T(settings_from_environment),
		T(unknown_taskexec_variable_refused),
		T(misspelt_variable_refused),
		T(other_variables_ignored),
		T(bad_concurrency_names_variable),
		T(bad_size_names_variable),
		T(every_bad_variable_reported),
		T(log_level_checked),
		T(queue_prefix_without_braces_or_colons),
		T(tasks_path_must_be_absolute),
		T(require_signature_needs_keys),
		T(allowed_modules_list),
		T(allowed_modules_alias),
		T(config_file_from_taskexec_config),
		T(config_file_as_argument),
		T(environment_wins_over_file),
		T(unknown_key_in_file_names_file_and_line),
		T(bad_value_in_file_names_file_line_and_variable),
		T(line_without_equals_in_file_refused),
		T(missing_config_file_refused),
		T(file_line_numbers_count_blank_lines),
		T(mask_url_hides_uri_password),
		T(mask_url_hides_conninfo_password),
		T(mask_url_leaves_passwordless_urls),
		T(mask_url_hides_other_password_spellings),
		T(config_print_never_prints_secret),
		T(config_print_output_loads_back),
	};
#undef T

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
