/* SPDX-License-Identifier: ISC */
/* Unit tests for executor/policy.h: policy files (taskexec-policy(5)) load
 * strictly, and every error names its file and line. */
#include "unit.h"
#include "policy.h"
#include "util.h"

#include <limits.h>

static const struct policy_vars vars = { .state_dir = "/var/lib/x", .tasks_root = "/opt/t" };

struct pdir {
	char *dir;
	struct policy_set set;
	char *errors;
};

static int pdir_setup(void **state)
{
	struct pdir *d = calloc(1, sizeof(*d));

	d->dir = unit_mkdtemp();
	*state = d;
	return 0;
}

static int pdir_teardown(void **state)
{
	struct pdir *d = *state;

	policy_set_free(&d->set);
	free(d->errors);
	unit_rm_rf(d->dir);
	free(d->dir);
	free(d);
	return 0;
}

static const struct policy *load_ok(struct pdir *d, const char *name)
{
	const struct policy *p;

	if (policy_load_dir(d->dir, &vars, &d->set, &d->errors) != 0)
		fail_msg("policy_load_dir refused: %s", d->errors);
	assert_null(d->errors);
	p = policy_find(&d->set, name);
	assert_non_null(p);
	return p;
}

/* Load D->dir, expecting failure; returns the error text. */
static const char *load_bad(struct pdir *d)
{
	assert_int_equal(policy_load_dir(d->dir, &vars, &d->set, &d->errors), -1);
	assert_non_null(d->errors);
	assert_int_equal(d->set.n, 0);
	return d->errors;
}

/* The expected error line "<dir>/<file>:<line>: <msg>\n". */
static char *eline(struct pdir *d, const char *file, int line, const char *msg)
{
	char *s;

	assert_true(asprintf(&s, "%s/%s:%d: %s\n", d->dir, file, line, msg) > 0);
	return s;
}

/* One file T.policy holding TEXT must fail with exactly one error at LINE. */
static void expect_one_error(struct pdir *d, const char *text, int line, const char *msg)
{
	char *want = eline(d, "t.policy", line, msg);

	unit_write_free(d->dir, "t.policy", text);
	assert_string_equal(load_bad(d), want);
	free(want);
}

static const char full_policy[] =
	"; a policy that sets everything\n"
	"[job]\n"
	"priority = normal\n"
	"max_priority = high\n"
	"timeout = 2h\n"
	"max_timeout = 2h\n"
	"max_retries = 2\n"
	"retries_limit = 5\n"
	"backoff_base = 5s\n"
	"backoff_max = 10m\n"
	"\n"
	"[limits]\n"
	"memory = 1G\n"
	"cpu_time = 3h\n"
	"open_files = 128\n"
	"file_size = 256M\n"
	"processes = 32\n"
	"output_bytes = 512K\n"
	"\n"
	"[network]\n"
	"mode = outbound\n"
	"\n"
	"[paths]\n"
	"read = /srv/a, /srv/b ,${TASKS_ROOT}/data\n"
	"write = ${STATE_DIR}/portal\n"
	"python_path = /opt/lib\n"
	"\n"
	"[env]\n"
	"F5PORTAL_DB = ${STATE_DIR}/portal/portal.db\n"
	"SOURCE = ${TASKS_ROOT}/tasks/x\n"
	"GREETING = hello world\n";

static void full_policy_round_trips_values(void **state)
{
	struct pdir *d = *state;
	const struct policy *p;

	unit_write_free(d->dir, "etl.policy", full_policy);
	p = load_ok(d, "etl");
	assert_string_equal(p->name, "etl");
	assert_contains(p->file, "/etl.policy");
	assert_string_equal(p->priority, "normal");
	assert_string_equal(p->max_priority, "high");
	assert_int_equal(p->timeout_ms, 7200000);
	assert_int_equal(p->max_timeout_ms, 7200000);
	assert_int_equal(p->max_retries, 2);
	assert_int_equal(p->retries_limit, 5);
	assert_int_equal(p->backoff_base_ms, 5000);
	assert_int_equal(p->backoff_max_ms, 600000);
	assert_int_equal(p->memory, 1ULL << 30);
	assert_int_equal(p->cpu_ms, 3 * 3600 * 1000);
	assert_int_equal(p->open_files, 128);
	assert_int_equal(p->file_size, 256ULL << 20);
	assert_int_equal(p->processes, 32);
	assert_int_equal(p->output_bytes, 512ULL << 10);
	assert_int_equal(p->network, NET_OUTBOUND);
	assert_int_equal(strv_len(p->read_paths), 3);
	assert_string_equal(p->read_paths[0], "/srv/a");
	assert_string_equal(p->read_paths[1], "/srv/b");
	assert_string_equal(p->read_paths[2], "/opt/t/data");
	assert_int_equal(strv_len(p->write_paths), 1);
	assert_string_equal(p->write_paths[0], "/var/lib/x/portal");
	assert_string_equal(p->python_path[0], "/opt/lib");
	assert_int_equal(strv_len(p->env), 3);
	assert_string_equal(p->env[0], "F5PORTAL_DB=/var/lib/x/portal/portal.db");
	assert_string_equal(p->env[1], "SOURCE=/opt/t/tasks/x");
	assert_string_equal(p->env[2], "GREETING=hello world");
}

static void empty_policy_gets_defaults(void **state)
{
	struct pdir *d = *state;
	const struct policy *p;

	unit_write_free(d->dir, "ad_hoc.policy", "; nothing set\n[job]\n");
	p = load_ok(d, "ad_hoc");
	assert_string_equal(p->priority, "normal");
	assert_string_equal(p->max_priority, "high");
	assert_int_equal(p->timeout_ms, 10 * 60 * 1000);
	assert_int_equal(p->max_timeout_ms, 60 * 60 * 1000);
	assert_int_equal(p->max_retries, -1);           /* TASKEXEC_MAX_RETRIES applies */
	assert_int_equal(p->max_lost, 3);
	assert_int_equal(p->network, NET_NONE);
	assert_int_equal(p->memory, 512ULL << 20);
	assert_int_equal(p->cpu_ms, 60 * 60 * 1000 + 5000);     /* max_timeout + 5 s */
	assert_int_equal(p->output_bytes, 4ULL << 20);
	assert_int_equal(strv_len(p->read_paths), 0);
	assert_int_equal(strv_len(p->env), 0);
}

static void inline_comments_and_colon_separator_accepted(void **state)
{
	struct pdir *d = *state;
	const struct policy *p;

	unit_write_free(d->dir, "x.policy", "[job]\ntimeout = 5m ; five minutes\n# hash comment\nmax_timeout: 1h\n");
	p = load_ok(d, "x");
	assert_int_equal(p->timeout_ms, 300000);
	assert_int_equal(p->max_timeout_ms, 3600000);
}

static void several_files_load_sorted_by_name(void **state)
{
	struct pdir *d = *state;

	unit_write_free(d->dir, "maintenance.policy", "[job]\npriority = low\nmax_priority = low\n");
	unit_write_free(d->dir, "etl.policy", "[network]\nmode = none\n");
	unit_write_free(d->dir, "README", "not a policy\n");
	unit_write_free(d->dir, ".hidden.policy", "[bogus]\nx = 1\n");
	load_ok(d, "etl");
	assert_int_equal(d->set.n, 2);
	assert_string_equal(d->set.v[0].name, "etl");
	assert_string_equal(d->set.v[1].name, "maintenance");
}

static void policy_find_by_task_type(void **state)
{
	struct pdir *d = *state;

	unit_write_free(d->dir, "etl.policy", "[job]\n");
	unit_write_free(d->dir, "ad_hoc.policy", "[job]\n");
	load_ok(d, "etl");
	assert_string_equal(policy_find(&d->set, "ad_hoc")->name, "ad_hoc");
	assert_null(policy_find(&d->set, "nope"));
	assert_null(policy_find(&d->set, "etl.policy"));
	assert_null(policy_find(&d->set, "ETL"));
}

static void priority_rank_orders_high_normal_low(void **state)
{
	assert_int_equal(priority_rank("high"), 0);
	assert_int_equal(priority_rank("normal"), 1);
	assert_int_equal(priority_rank("low"), 2);
	assert_int_equal(priority_rank("HIGH"), -1);
	assert_int_equal(priority_rank("urgent"), -1);
	assert_int_equal(priority_rank(""), -1);
	assert_int_equal(priority_rank(NULL), -1);
}

/* ---- errors name file and line ---- */

static void unknown_key_names_file_and_line(void **state)
{
	expect_one_error(*state, "; comment\n\n[job]\ntimeout = 5m\nfoo = 1\n", 5, "[job] foo: unknown key");
}

static void unknown_section_named(void **state)
{
	expect_one_error(*state, "[job]\ntimeout = 5m\n[jobs]\ntimeout = 5m\n", 4,
			 "[jobs]: unknown section (known: job, limits, network, start, paths, env, secrets)");
}

static void bad_duration_named(void **state)
{
	expect_one_error(*state, "[job]\ntimeout = soon\n", 2,
			 "[job] timeout: 'soon' is not a duration from 1s to 168h (500ms, 30s, 5m, 2h)");
}

static void duration_below_minimum_refused(void **state)
{
	expect_one_error(*state, "[job]\ntimeout = 500ms\n", 2,
			 "[job] timeout: '500ms' is not a duration from 1s to 168h (500ms, 30s, 5m, 2h)");
}

static void bad_size_named(void **state)
{
	expect_one_error(*state, "[limits]\nmemory = 1Q\n", 2,
			 "[limits] memory: '1Q' is not a size (512K, 64M, 2G) of at least 32M");
}

static void memory_below_minimum_refused(void **state)
{
	expect_one_error(*state, "[limits]\nmemory = 16M\n", 2,
			 "[limits] memory: '16M' is not a size (512K, 64M, 2G) of at least 32M");
}

static void bad_whole_number_named(void **state)
{
	expect_one_error(*state, "[limits]\nopen_files = 5000\n", 2,
			 "[limits] open_files: '5000' is not a whole number from 16 to 1000");
}

static void max_lost_parsed(void **state)
{
	struct pdir *d = *state;

	unit_write_free(d->dir, "ad_hoc.policy", "[job]\nmax_lost = 5\n");
	assert_int_equal(load_ok(d, "ad_hoc")->max_lost, 5);
}

static void max_lost_zero_refused(void **state)
{
	expect_one_error(*state, "[job]\nmax_lost = 0\n", 2, "[job] max_lost: '0' is not a whole number from 1 to 100");
}

static void bad_priority_named(void **state)
{
	expect_one_error(*state, "[job]\npriority = urgent\n", 2,
			 "[job] priority: 'urgent' is not high, normal or low");
}

static void network_maybe_refused(void **state)
{
	expect_one_error(*state, "[network]\nmode = maybe\n", 2, "[network] mode: 'maybe' is not none or outbound");
}

static void key_given_twice_refused_at_second(void **state)
{
	expect_one_error(*state, "[job]\ntimeout = 5m\nmax_timeout = 1h\ntimeout = 6m\n", 4,
			 "[job] timeout: given twice");
}

static void key_given_twice_in_repeated_section_refused(void **state)
{
	expect_one_error(*state, "[limits]\nmemory = 1G\n[job]\ntimeout = 5m\n[limits]\nmemory = 2G\n", 6,
			 "[limits] memory: given twice");
}

static void timeout_over_max_timeout_refused(void **state)
{
	struct pdir *d = *state;
	const char *e;

	unit_write_free(d->dir, "t.policy", "[job]\ntimeout = 2h\nmax_timeout = 1h\n");
	e = load_bad(d);
	assert_contains(e, d->dir);
	assert_contains(e, "/t.policy:");
	assert_contains(e, "[job] timeout is longer than max_timeout");
}

static void max_retries_over_limit_refused(void **state)
{
	struct pdir *d = *state;

	unit_write_free(d->dir, "t.policy", "[job]\nmax_retries = 6\nretries_limit = 5\n");
	assert_contains(load_bad(d), "[job] max_retries is above retries_limit");
}

static void priority_over_max_priority_refused(void **state)
{
	struct pdir *d = *state;

	unit_write_free(d->dir, "t.policy", "[job]\npriority = high\nmax_priority = normal\n");
	assert_contains(load_bad(d), "[job] priority is above max_priority");
}

static void env_pythonpath_refused(void **state)
{
	expect_one_error(*state, "[env]\nOK = 1\nPYTHONPATH = /tmp/evil\n", 3,
			 "[env] PYTHONPATH: may not be set by a policy");
}

static void env_loader_and_tmpdir_refused(void **state)
{
	struct pdir *d = *state;
	const char *e;

	unit_write_free(d->dir, "t.policy", "[env]\nLD_PRELOAD = /tmp/x.so\nTMPDIR = /tmp\nPYTHONSTARTUP = /x\n");
	e = load_bad(d);
	assert_contains(e, "t.policy:2: [env] LD_PRELOAD: may not be set by a policy\n");
	assert_contains(e, "t.policy:3: [env] TMPDIR: may not be set by a policy\n");
	assert_contains(e, "t.policy:4: [env] PYTHONSTARTUP: may not be set by a policy\n");
}

static void env_bad_name_refused(void **state)
{
	expect_one_error(*state, "[env]\n1X = y\n", 2, "[env] 1X: not a valid variable name");
}

static void env_unknown_variable_refused(void **state)
{
	expect_one_error(*state, "[env]\nDB = ${UNKNOWN}/db\n", 2,
			 "[env] DB: unknown ${...} variable (known: ${STATE_DIR}, ${TASKS_ROOT})");
}

static void paths_unknown_variable_refused(void **state)
{
	expect_one_error(*state, "[paths]\nwrite = ${STATE_DIR}/ok, ${HOME}/x\n", 2,
			 "[paths] write: unknown ${...} variable in '${HOME}/x'");
}

static void relative_path_refused(void **state)
{
	expect_one_error(*state, "[paths]\nread = /abs, relative/dir\n", 2,
			 "[paths] read: 'relative/dir' is not an absolute path");
}

static void syntax_error_named(void **state)
{
	expect_one_error(*state, "[job]\ntimeout 5m\n", 2, "syntax error (expected [section] or key = value)");
}

static void overlong_line_refused_naming_it(void **state)
{
	struct pdir *d = *state;
	char text[600], *q = text;
	const char *e;

	q += sprintf(q, "[paths]\nread = /a");
	for (int i = 0; i < 30; i++)
		q += sprintf(q, ", /srv/data/d%02d", i);
	strcpy(q, "\nwrite = /x\n");
	unit_write_free(d->dir, "t.policy", text);
	e = load_bad(d);
	assert_contains(e, "/t.policy:2: line longer than");
	/* exactly one error: the rest of the long line is not parsed as more lines */
	assert_non_null(strchr(e, '\n'));
	assert_string_equal(strchr(e, '\n'), "\n");
}

static void two_errors_in_one_file_both_reported(void **state)
{
	struct pdir *d = *state;
	char *a = eline(d, "t.policy", 3, "[job] foo: unknown key");
	char *b = eline(d, "t.policy", 6, "[network] mode: 'maybe' is not none or outbound");
	char *want = NULL;

	assert_true(asprintf(&want, "%s%s", a, b) > 0);
	unit_write_free(d->dir, "t.policy", "[job]\ntimeout = 5m\nfoo = 1\n\n[network]\nmode = maybe\n");
	assert_string_equal(load_bad(d), want);
	free(a);
	free(b);
	free(want);
}

static void errors_in_two_files_each_name_their_file(void **state)
{
	struct pdir *d = *state;
	char *a = eline(d, "a.policy", 2, "[job] bar: unknown key");
	char *b = eline(d, "b.policy", 3, "[limits] processes: '0' is not a whole number from 1 to 100000");
	const char *e;

	unit_write_free(d->dir, "a.policy", "[job]\nbar = 1\n");
	unit_write_free(d->dir, "b.policy", "[limits]\nmemory = 1G\nprocesses = 0\n");
	unit_write_free(d->dir, "c.policy", "[job]\n");
	e = load_bad(d);
	assert_contains(e, a);
	assert_contains(e, b);
	free(a);
	free(b);
}

static void syntax_error_reported_after_another_error(void **state)
{
	struct pdir *d = *state;
	const char *e;

	unit_write_free(d->dir, "t.policy", "[job]\nfoo = 1\ngarbage line\n");
	e = load_bad(d);
	assert_contains(e, "t.policy:2: [job] foo: unknown key\n");
	assert_contains(e, "t.policy:3: syntax error");
}

static void env_name_given_twice_refused(void **state)
{
	expect_one_error(*state, "[env]\nA = 1\nA = 2\n", 3, "[env] A: given twice");
}

static void empty_dir_says_no_policy_files(void **state)
{
	struct pdir *d = *state;
	char *want = NULL;

	unit_write_free(d->dir, "README", "x");
	assert_true(asprintf(&want, "%s: no *.policy files\n", d->dir) > 0);
	assert_string_equal(load_bad(d), want);
	free(want);
}

static void missing_dir_named(void **state)
{
	struct pdir *d = *state;
	char *missing = unit_path(d->dir, "nope"), *want = NULL;

	assert_true(asprintf(&want, "%s: No such file or directory\n", missing) > 0);
	assert_int_equal(policy_load_dir(missing, &vars, &d->set, &d->errors), -1);
	assert_string_equal(d->errors, want);
	free(want);
	free(missing);
}

/* A secret file of mode MODE holding "s3cr3t-value" in D; returns its path. */
static char *secret_file(struct pdir *d, mode_t mode)
{
	char *path = unit_write(d->dir, "pw.secret", "s3cr3t-value");

	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void secret_readable_by_others_refused_with_its_name(void **state)
{
	struct pdir *d = *state;
	char *path = secret_file(d, 0644), *text = xasprintf("[secrets]\nF5_PASSWORD = %s\n", path);
	const char *e;

	unit_write_free(d->dir, "t.policy", text);
	e = load_bad(d);
	assert_contains(e, "t.policy:2: [secrets] F5_PASSWORD: ");
	assert_contains(e, path);
	assert_contains(e, "mode 0644 lets group or others at it");
	assert_null(strstr(e, "s3cr3t-value"));
	free(text);
	free(path);
}

static void secret_relative_path_and_env_clash_refused(void **state)
{
	struct pdir *d = *state;
	char *path = secret_file(d, 0600), *text = xasprintf("[env]\nPW = x\n[secrets]\nPW = %s\nB = pw\n", path);
	const char *e;

	unit_write_free(d->dir, "t.policy", text);
	e = load_bad(d);
	assert_contains(e, "t.policy:4: [secrets] PW: given twice");
	assert_contains(e, "t.policy:5: [secrets] B: 'pw' is not an absolute path or credential:NAME");
	free(text);
	free(path);
}

static void secret_printed_as_its_path_never_its_value(void **state)
{
	struct pdir *d = *state;
	char *path = secret_file(d, 0600), *text = xasprintf("[secrets]\nF5_PASSWORD = %s\n", path);
	const struct policy *p;
	char *out = NULL, *want = xasprintf("[secrets]\nF5_PASSWORD = %s\n", path);
	size_t len = 0;
	FILE *f;

	unit_write_free(d->dir, "t.policy", text);
	p = load_ok(d, "t");
	f = open_memstream(&out, &len);
	policy_print(p, f);
	fclose(f);
	assert_contains(out, want);
	assert_null(strstr(out, "s3cr3t-value"));
	free(out);
	free(want);
	free(text);
	free(path);
}

static void policy_print_loads_back(void **state)
{
	struct pdir *d = *state;
	struct pdir again = { 0 };
	const struct policy *p, *q;
	char *text = NULL, *path;
	size_t len = 0;
	FILE *f;

	unit_write_free(d->dir, "etl.policy", full_policy);
	p = load_ok(d, "etl");
	f = open_memstream(&text, &len);
	policy_print(p, f);
	fclose(f);
	assert_contains(text, "timeout = 7200s\n");
	assert_contains(text, "F5PORTAL_DB = /var/lib/x/portal/portal.db\n");

	again.dir = unit_mkdtemp();
	path = unit_write(again.dir, "etl.policy", text);
	q = load_ok(&again, "etl");
	assert_int_equal(q->timeout_ms, p->timeout_ms);
	assert_int_equal(q->max_timeout_ms, p->max_timeout_ms);
	assert_int_equal(q->memory, p->memory);
	assert_int_equal(q->cpu_ms, p->cpu_ms);
	assert_int_equal(q->output_bytes, p->output_bytes);
	assert_int_equal(q->backoff_base_ms, p->backoff_base_ms);
	assert_int_equal(q->network, p->network);
	assert_int_equal(strv_len(q->read_paths), 3);
	assert_string_equal(q->env[0], p->env[0]);
	policy_set_free(&again.set);
	unit_rm_rf(again.dir);
	free(again.dir);
	free(path);
	free(text);
}

/* The policy/ directory of the tree these tests were built from. */
static char *shipped_dir(void)
{
	return unit_path(TASKEXEC_SRCDIR, "policy");
}

static void shipped_policies_load(void **state)
{
	struct pdir *d = *state;
	const char *types[] = { "scheduled_batch", "ad_hoc", "event_driven", "etl", "maintenance" };
	const struct policy *etl;
	char *dir = shipped_dir();

	if (policy_load_dir(dir, &vars, &d->set, &d->errors) != 0)
		fail_msg("%s: %s", dir, d->errors);
	for (size_t i = 0; i < ARRAY_SIZE(types); i++)
		if (!policy_find(&d->set, types[i]))
			fail_msg("%s/%s.policy is missing", dir, types[i]);
	etl = policy_find(&d->set, "etl");
	assert_int_equal(etl->max_timeout_ms, 7200 * 1000);     /* the seed task's 2 h */
	assert_string_equal(etl->write_paths[0], "/var/lib/x/portal");
	/* Production reads the operator's exports, never the bundled samples. */
	assert_string_equal(etl->read_paths[0], "/var/lib/x/f5exports");
	assert_string_equal(etl->env[0], "F5PORTAL_SOURCE_DIR=/var/lib/x/f5exports");
	free(dir);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, pdir_setup, pdir_teardown)
	const struct CMUnitTest tests[] = {
		T(full_policy_round_trips_values),
		T(empty_policy_gets_defaults),
		T(inline_comments_and_colon_separator_accepted),
		T(several_files_load_sorted_by_name),
		T(policy_find_by_task_type),
		cmocka_unit_test(priority_rank_orders_high_normal_low),
		T(unknown_key_names_file_and_line),
		T(unknown_section_named),
		T(bad_duration_named),
		T(duration_below_minimum_refused),
		T(bad_size_named),
		T(memory_below_minimum_refused),
		T(bad_whole_number_named),
		T(max_lost_parsed),
		T(max_lost_zero_refused),
		T(bad_priority_named),
		T(network_maybe_refused),
		T(key_given_twice_refused_at_second),
		T(key_given_twice_in_repeated_section_refused),
		T(timeout_over_max_timeout_refused),
		T(max_retries_over_limit_refused),
		T(priority_over_max_priority_refused),
		T(env_pythonpath_refused),
		T(env_loader_and_tmpdir_refused),
		T(env_bad_name_refused),
		T(env_unknown_variable_refused),
		T(paths_unknown_variable_refused),
		T(relative_path_refused),
		T(syntax_error_named),
		T(overlong_line_refused_naming_it),
		T(two_errors_in_one_file_both_reported),
		T(errors_in_two_files_each_name_their_file),
		T(syntax_error_reported_after_another_error),
		T(env_name_given_twice_refused),
		T(empty_dir_says_no_policy_files),
		T(missing_dir_named),
		T(policy_print_loads_back),
		T(secret_readable_by_others_refused_with_its_name),
		T(secret_relative_path_and_env_clash_refused),
		T(secret_printed_as_its_path_never_its_value),
		T(shipped_policies_load),
	};
#undef T

	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
