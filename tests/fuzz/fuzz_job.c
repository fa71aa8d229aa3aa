/* SPDX-License-Identifier: ISC */
/* fuzz_job — libFuzzer harness for the job wire format (taskexec-protocol(7)).
 *
 * Each input goes to job_parse; a payload it refuses goes through what the
 * daemon's reject path does with it (job_id_of, a storable message); one it
 * accepts also goes through
 * job_canonical (what signatures cover) and job_prepare against the policies of
 * the source tree and two task roots, one of them a scratch tree with symlinks
 * that lead outside it.  The same bytes, as a C string, go to entry_parse, and
 * split on newlines to kv_parse.  Beyond the sanitizers, the harness checks the
 * promises those functions make and aborts when one breaks. */
#include "job.h"
#include "policy.h"
#include "util.h"

#include "fuzz.h"

#include <limits.h>

#ifndef TASKEXEC_SRCDIR
#error "build with -DTASKEXEC_SRCDIR='\"/path/to/checkout\"'"
#endif

static struct config cfg;
static struct policy_set policies;
static char *roots_real[2];

static void touch(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);

	fuzz_write(p, "", 0);
	free(p);
}

static void mkdir_in(const char *dir, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);

	if (mkdir(p, 0700) < 0)
		fuzz_die(p);
	free(p);
}

static void symlink_in(const char *dir, const char *target, const char *rel)
{
	char *p = xasprintf("%s/%s", dir, rel);

	if (symlink(target, p) < 0)
		fuzz_die(p);
	free(p);
}

/* root/tasks/{__init__,ok}.py, root/tasks/pkg/ (a package), and two ways out:
 * root/tasks/out.py and root/tasks/away/ are symlinks to outside/. */
static char *make_task_root(void)
{
	const char *t = fuzz_tmpdir();
	char *root = xasprintf("%s/root", t), *outside = xasprintf("%s/outside", t), *target;

	mkdir_in(t, "root");
	mkdir_in(t, "outside");
	mkdir_in(root, "tasks");
	touch(root, "tasks/__init__.py");
	touch(root, "tasks/ok.py");
	mkdir_in(root, "tasks/pkg");
	touch(root, "tasks/pkg/__init__.py");
	touch(root, "tasks/pkg/mod.py");
	touch(outside, "x.py");
	mkdir_in(outside, "away");
	touch(outside, "away/__init__.py");
	touch(outside, "away/mod.py");
	target = xasprintf("%s/x.py", outside);
	symlink_in(root, target, "tasks/out.py");
	free(target);
	target = xasprintf("%s/away", outside);
	symlink_in(root, target, "tasks/away");
	free(target);
	free(outside);
	return root;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct policy_vars vars = { "/var/lib/taskexec", TASKEXEC_SRCDIR };
	char *errors = NULL, *root = make_task_root();
	char real[PATH_MAX];

	cfg.allowed_modules = split_list("tasks", ',');
	cfg.tasks_path = xcalloc(3, sizeof(char *));
	cfg.tasks_path[0] = root;
	cfg.tasks_path[1] = xstrdup(TASKEXEC_SRCDIR);
	cfg.max_retries = 3;
	cfg.result_max = 10240;
	for (int i = 0; i < 2; i++) {
		if (!realpath(cfg.tasks_path[i], real))
			fuzz_die(cfg.tasks_path[i]);
		roots_real[i] = xstrdup(real);
	}
	if (policy_load_dir(TASKEXEC_SRCDIR "/policy", &vars, &policies, &errors) < 0) {
		fprintf(stderr, "fuzz_job: the checkout's policies do not load:\n%s", errors);
		exit(2);
	}
	return 0;
}

/* Escapes in a canonical form: every \u has four hex digits in the case the
 * code documents (lower, as Python's json.dumps writes them), whatever run of
 * escaped backslashes comes before it. */
static void check_canonical_text(const char *s)
{
	bool in_str = false;

	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;

		FUZZ_CHECK(c >= 0x20 && c < 0x80, "byte 0x%02x at offset %zu of %s", c, (size_t)(p - s), s);
		if (!in_str) {
			FUZZ_CHECK(c != ' ', "blank outside a string at offset %zu of %s", (size_t)(p - s), s);
			in_str = c == '"';
			continue;
		}
		if (c == '"') {
			in_str = false;
		} else if (c == '\\') {
			p++;
			FUZZ_CHECK(*p && strchr("\"\\/bfnrtu", *p), "bad escape at offset %zu of %s", (size_t)(p - s), s);
			if (*p == 'u')
				for (int i = 1; i <= 4; i++)
					FUZZ_CHECK((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'),
						   "\\u escape with '%c' at offset %zu of %s", p[i] ? p[i] : '0',
						   (size_t)(p - s), s);
		}
	}
}

static void check_canonical(const struct job *j)
{
	char *err = NULL, *canon = job_canonical(j->doc, &err), *again;
	json_t *back, *want;
	struct job j2 = { 0 };

	if (!canon) {
		FUZZ_CHECK(err && !strncmp(err, "signature:", 10), "canonical failed with '%s'", err ? err : "(null)");
		free(err);
		return;
	}
	check_canonical_text(canon);
	/* It is the payload minus its signature, and still a valid payload whose
	 * canonical form is itself. */
	back = json_loads(canon, JSON_REJECT_DUPLICATES, NULL);
	FUZZ_CHECK(back, "canonical form is not JSON: %s", canon);
	want = json_deep_copy(j->doc);
	json_object_del(want, "signature");
	FUZZ_CHECK(json_equal(back, want), "canonical form differs from the payload: %s", canon);
	json_decref(want);
	json_decref(back);
	FUZZ_CHECK(job_parse(canon, strlen(canon), &j2, &err) == 0, "canonical form rejected: %s", err);
	again = job_canonical(j2.doc, &err);
	FUZZ_CHECK(again && !strcmp(again, canon), "canonical form not stable: %s vs %s", canon,
		   again ? again : err);
	free(again);
	job_free(&j2);
	free(canon);
}

static bool under_a_root(const char *file)
{
	for (int i = 0; i < 2; i++) {
		size_t n = strlen(roots_real[i]);

		if (!strncmp(file, roots_real[i], n) && file[n] == '/')
			return true;
	}
	return false;
}

static void check_prepare(const struct job *j)
{
	struct job_plan plan;
	char *err = NULL, *file = NULL, *env;
	size_t len;
	json_t *e;

	if (job_check_target(j, cfg.allowed_modules, cfg.tasks_path, &file, &err) == 0) {
		FUZZ_CHECK(under_a_root(file), "module %s resolved outside the roots: %s", j->module_path, file);
		FUZZ_CHECK(!strncmp(j->module_path, "tasks", 5) && (!j->module_path[5] || j->module_path[5] == '.'),
			   "module %s is not under an allowed package", j->module_path);
		free(file);
	} else {
		FUZZ_CHECK(err && !strncmp(err, "module_path: ", 13), "target refused with '%s'", err);
		free(err);
	}
	err = NULL;
	if (job_prepare(j, &cfg, &policies, &plan, &err) < 0) {
		FUZZ_CHECK(err && *err, "job_prepare failed without a message");
		free(err);
		return;
	}
	FUZZ_CHECK(plan.policy == policy_find(&policies, j->task_type), "wrong policy for %s", j->task_type);
	FUZZ_CHECK(plan.timeout_ms > 0 && plan.timeout_ms <= plan.policy->max_timeout_ms, "timeout %lld over %lld",
		   (long long)plan.timeout_ms, (long long)plan.policy->max_timeout_ms);
	FUZZ_CHECK(priority_rank(plan.priority) >= priority_rank(plan.policy->max_priority),
		   "priority %s above %s", plan.priority, plan.policy->max_priority);
	env = job_envelope(j, 1, &cfg, plan.policy, &len);
	e = json_loadb(env, len, 0, NULL);
	FUZZ_CHECK(e && json_equal(json_object_get(e, "job"), j->doc), "envelope does not carry the job: %s", env);
	json_decref(e);
	free(env);
}

static void check_entry(const char *s)
{
	char *module = NULL, *class = NULL, *method = NULL, *err = NULL, *again;

	if (entry_parse(s, &module, &class, &method, &err) < 0) {
		FUZZ_CHECK(err && *err, "entry_parse failed without a message");
		free(err);
		return;
	}
	FUZZ_CHECK(dotted_name_valid(module) && dotted_name_valid(method) && (!class || dotted_name_valid(class)),
		   "entry '%s' gave invalid names", s);
	again = xasprintf("%s:%s%s%s", module, class ? class : "", class ? "." : "", method);
	FUZZ_CHECK(!strcmp(again, s), "entry '%s' came back as '%s'", s, again);
	free(again);
	free(module);
	free(class);
	free(method);
}

static void check_kv(char *s)
{
	char *args[64], *err = NULL, *save = NULL;
	json_t *into = json_object();
	size_t n = 0;

	for (char *a = strtok_r(s, "\n", &save); a && n < ARRAY_SIZE(args); a = strtok_r(NULL, "\n", &save))
		args[n++] = a;
	if (kv_parse(args, n, into, &err) == 0) {
		FUZZ_CHECK(json_object_size(into) <= n, "%zu parameters from %zu arguments", json_object_size(into), n);
	} else {
		FUZZ_CHECK(err && *err, "kv_parse failed without a message");
		free(err);
	}
	json_decref(into);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct job j = { 0 };
	char *err = NULL, *s;

	if (job_parse((const char *)data, size, &j, &err) == 0) {
		FUZZ_CHECK(job_id_valid(j.job_id) && j.parameters && json_is_object(j.parameters),
			   "accepted payload without a valid job_id or parameters");
		check_canonical(&j);
		check_prepare(&j);
	} else {
		/* What the daemon's reject path relies on: *ret untouched (so
		 * nothing of the half-parsed payload leaks, under LSan), a message
		 * PostgreSQL can store, and the id, when there is one, recovered. */
		char *id = job_id_of((const char *)data, size);

		FUZZ_CHECK(err && *err, "job_parse failed without a message");
		FUZZ_CHECK(!j.doc && !j.parameters && !j.job_id, "job_parse filled *ret and failed");
		FUZZ_CHECK(utf8_prefix(err, strlen(err)) == strlen(err), "rejection message is not UTF-8: %s", err);
		FUZZ_CHECK(!id || job_id_valid(id), "job_id_of returned an invalid id");
		free(id);
		free(err);
	}
	job_free(&j);

	s = fuzz_strndup(data, size);
	check_entry(s);
	check_kv(s);
	free(s);
	return 0;
}
