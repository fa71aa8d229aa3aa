/* SPDX-License-Identifier: ISC */
/* cli — the taskexec(1) command: dispatch, usage, and the policy subcommands. */
#include "cli.h"
#include "log.h"
#include "policy.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct policy_vars vars_of(const struct config *c)
{
	return (struct policy_vars){ .state_dir = c->state_dir, .tasks_root = c->tasks_path[0] };
}

static int cli_policy(int argc, char **argv)
{
	struct policy_set ps;
	struct policy_vars v;
	struct config c;
	char *errors = NULL;
	int r = EXIT_DONE;

	if (argc < 2 || (strcmp(argv[1], "check") && strcmp(argv[1], "show")))
		return cli_usage_error("usage: taskexec policy check [DIR] | policy show TYPE");
	if (!strcmp(argv[1], "show") && argc != 3)
		return cli_usage_error("usage: taskexec policy show TYPE");
	if (cli_config(&c) < 0)
		return EXIT_USAGE;
	v = vars_of(&c);
	if (policy_load_dir(!strcmp(argv[1], "check") && argc > 2 ? argv[2] : c.policy_dir, &v, &ps, &errors) < 0) {
		fputs(errors, stderr);
		free(errors);
		config_free(&c);
		return EXIT_FAILED;
	}
	if (!strcmp(argv[1], "check")) {
		for (size_t i = 0; i < ps.n; i++)
			printf("%s: ok (task type %s)\n", ps.v[i].file, ps.v[i].name);
	} else {
		const struct policy *p = policy_find(&ps, argv[2]);

		if (p)
			policy_print(p, stdout);
		else
			r = cli_usage_error("policy show: no policy for task type '%s' in %s", argv[2], c.policy_dir);
	}
	policy_set_free(&ps);
	config_free(&c);
	return r;
}

/* The Redis and PostgreSQL commands live in taskexec-ops, so that `taskexec
 * run` loads only what the sandbox needs: every shared library costs page
 * faults at start (libpq alone brings in TLS, Kerberos and LDAP). */
static int exec_ops(char **argv)
{
	char self[PATH_MAX], *path = NULL, *slash;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			path = xasprintf("%s/taskexec-ops", self);
			if (access(path, X_OK) < 0) {
				free(path);
				path = NULL;
			}
		}
	}
	if (!path)
		path = xstrdup(TASKEXEC_LIBDIR "/taskexec-ops");
	execv(path, argv);
	fprintf(stderr, "taskexec: %s: %s\n", path, strerror(errno));
	free(path);
	return EXIT_FAILED;
}

int main(int argc, char **argv)
{
#define OP_NAME(name, fn) name,
	static const char *const ops[] = { CLI_OPS(OP_NAME) };
#undef OP_NAME

	seed_json();
	log_setup(NULL, LOG_WARN, false);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		cli_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_DONE;
	}
	if (!strcmp(argv[1], "help")) {
		if (argc == 2) {
			cli_usage(stdout);
			return EXIT_DONE;
		}
		return cli_help(cli_wants_help(argc - 1, argv + 1) ? "help" : argv[2]);
	}
	if (!strcmp(argv[1], "--version")) {
		printf("taskexec %s\n", TASKEXEC_VERSION);
		return EXIT_DONE;
	}
	/* Answered here for every command: help needs neither taskexec-ops
	 * nor a configuration. */
	if (cli_wants_help(argc - 1, argv + 1))
		return cli_help(argv[1]);
	if (!strcmp(argv[1], "run"))
		return cli_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policy"))
		return cli_policy(argc - 1, argv + 1);
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (!strcmp(argv[1], ops[i]))
			return exec_ops(argv);
	return cli_usage_error("unknown command '%s' (see taskexec --help)", argv[1]);
}
