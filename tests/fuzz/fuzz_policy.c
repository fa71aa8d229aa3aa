/* SPDX-License-Identifier: ISC */
/* fuzz_policy — libFuzzer harness for the policy parser (taskexec-policy(5)).
 *
 * Each input is written as the only *.policy file of a private directory made
 * once per process, and loaded with policy_load_dir.  A file it accepts must
 * hold the promises of the man page (bounds, absolute paths, valid variable
 * names, no ${...} left); one it refuses must say why, one line per problem,
 * each naming the file. */
#include "policy.h"
#include "util.h"

#include "fuzz.h"

static char *dir, *file;
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	dir = xasprintf("%s/policy.d", fuzz_tmpdir());
	if (mkdir(dir, 0700) < 0)
		fuzz_die(dir);
	file = xasprintf("%s/fuzz.policy", dir);
	devnull = fopen("/dev/null", "we");
	if (!devnull)
		fuzz_die("/dev/null");
	return 0;
}

static bool var_name_valid(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
		      (i > 0 && s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

static void check_paths(char **v, const char *what)
{
	FUZZ_CHECK(v, "[paths] %s is NULL", what);
	for (; *v; v++)
		FUZZ_CHECK(**v == '/' && !strstr(*v, "${"), "[paths] %s holds '%s'", what, *v);
}

static void check_policy(const struct policy *p)
{
	FUZZ_CHECK(!strcmp(p->name, "fuzz"), "task type '%s'", p->name);
	FUZZ_CHECK(priority_rank(p->priority) >= 0 && priority_rank(p->max_priority) >= 0 &&
		   priority_rank(p->priority) >= priority_rank(p->max_priority),
		   "priority %s, max_priority %s", p->priority, p->max_priority);
	FUZZ_CHECK(p->timeout_ms >= 1000 && p->timeout_ms <= p->max_timeout_ms, "timeout %lld, max_timeout %lld",
		   (long long)p->timeout_ms, (long long)p->max_timeout_ms);
	FUZZ_CHECK(p->max_retries <= p->retries_limit && p->retries_limit >= 0 && p->retries_limit <= 100,
		   "max_retries %ld, retries_limit %ld", p->max_retries, p->retries_limit);
	FUZZ_CHECK(p->memory >= 32ULL << 20 && p->cpu_ms >= 1000, "memory %llu, cpu %lld",
		   (unsigned long long)p->memory, (long long)p->cpu_ms);
	FUZZ_CHECK(p->open_files >= 16 && p->open_files <= 1000 && p->processes >= 1, "open_files %ld, processes %ld",
		   p->open_files, p->processes);
	FUZZ_CHECK(p->network == NET_NONE || p->network == NET_OUTBOUND, "network %d", (int)p->network);
	check_paths(p->read_paths, "read");
	check_paths(p->write_paths, "write");
	check_paths(p->python_path, "python_path");
	FUZZ_CHECK(p->env, "env is NULL");
	for (char **e = p->env; *e; e++) {
		const char *eq = strchr(*e, '=');

		FUZZ_CHECK(eq && var_name_valid(*e, (size_t)(eq - *e)), "[env] entry '%s'", *e);
		FUZZ_CHECK(!strstr(eq, "${"), "[env] entry '%s' keeps a ${...}", *e);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy_vars vars = { "/var/lib/taskexec", "/usr/lib/taskexec" };
	struct policy_set set = { 0 };
	char *errors = NULL;

	fuzz_write(file, data, size);
	if (policy_load_dir(dir, &vars, &set, &errors) == 0) {
		FUZZ_CHECK(set.n == 1 && !errors, "%zu policies loaded", set.n);
		check_policy(&set.v[0]);
		FUZZ_CHECK(policy_find(&set, "fuzz") == &set.v[0], "policy_find");
		policy_print(&set.v[0], devnull);
		policy_set_free(&set);
	} else {
		size_t n;

		FUZZ_CHECK(errors && *errors, "refused without a message");
		n = strlen(errors);
		FUZZ_CHECK(errors[n - 1] == '\n', "error text does not end in a newline: %s", errors);
		for (char *l = errors; *l; l = strchr(l, '\n') + 1)
			FUZZ_CHECK(!strncmp(l, file, strlen(file)) && l[strlen(file)] == ':',
				   "error line does not name the file: %.200s", l);
		free(errors);
	}
	return 0;
}
