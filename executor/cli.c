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

static const char usage[] =
	"usage: taskexec COMMAND [ARGS]\n"
	"\n"
	"  run ENTRY [k=v ...] [--task-type T] [--timeout S] [--json FILE|-]\n"
	"        run one job locally in the sandbox (no Redis or PostgreSQL); result JSON on stdout;\n"
	"        on stderr the job's lines, escaped, after job:/log:/trace:, and last\n"
	"        taskexec: summary JSON, a line no job can write\n"
	"  submit ENTRY [k=v ...] --task-type T [--idempotency-key K] [--priority P]\n"
	"        [--timeout S] [--max-retries N] [--signing-key FILE] [--at TIME | --in DURATION] [--wait]\n"
	"        insert the QUEUED row and enqueue; prints the job id.  --at 2026-12-08T05:00:00Z\n"
	"        or --in 10m: the job waits in the delayed set and runs then, not before\n"
	"  status JOB_ID | show JOB_ID   status line | everything about a job\n"
	"  list [--status S] [--task-type T] [--limit N]\n"
	"  retry JOB_ID | cancel JOB_ID  re-enqueue a FAILED job | cancel a queued or running job\n"
	"  queues                        queue depths, delayed retries, live executors\n"
	"  policy check [DIR] | policy show TYPE\n"
	"  keygen SECRET_FILE PUBLIC_FILE | sign SECRET_FILE [PAYLOAD_FILE|-]\n"
	"\n"
	"ENTRY is module.path:function or module.path:Class.method, defined in that module\n"
	"itself (an imported name is refused); k=v values are JSON when\n"
	"they parse as JSON, else strings (JSON that cannot be carried as it is, such as\n"
	"an integer beyond 64 bits, is refused).  Settings come from TASKEXEC_* variables and\n"
	"/etc/taskexec/taskexec.conf; see taskexec(1) and taskexec.conf(5).\n"
	"Exit status: 0 done, 1 the job failed, 2 usage error or rejected payload.\n";

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
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_DONE;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("taskexec %s\n", TASKEXEC_VERSION);
		return EXIT_DONE;
	}
	if (!strcmp(argv[1], "run"))
		return cli_run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "policy"))
		return cli_policy(argc - 1, argv + 1);
	for (size_t i = 0; i < ARRAY_SIZE(ops); i++)
		if (!strcmp(argv[1], ops[i]))
			return exec_ops(argv);
	return cli_usage_error("unknown command '%s' (see taskexec --help)", argv[1]);
}
