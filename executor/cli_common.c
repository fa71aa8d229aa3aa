/* SPDX-License-Identifier: ISC */
/* cli_common — what taskexec and taskexec-ops share: usage and help, usage
 * errors, configuration. */
#include "cli.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One entry a command: its synopsis (what `taskexec --help` lists) and what
 * `taskexec help CMD` adds.  Kept next to each other so that the two cannot
 * drift apart; taskexec(1) says the same at length. */
static const struct {
	const char *name, *synopsis, *details;
} commands[] = {
	{ "run", "run ENTRY [k=v ...] [--task-type T] [--timeout S] [--json FILE|-]",
	  "Run one job locally in the sandbox (no Redis or PostgreSQL).  The result JSON goes\n"
	  "to stdout; on stderr the job's lines, escaped, after job:/log:/trace:, and last a\n"
	  "taskexec: summary JSON, a line no job can write.\n"
	  "  --task-type T   the policy that applies (default: ad_hoc)\n"
	  "  --timeout S     deadline in whole seconds (default: the policy's timeout)\n"
	  "  --json FILE|-   the whole payload from FILE or stdin, instead of ENTRY and k=v\n" },
	{ "submit",
	  "submit ENTRY [k=v ...] --task-type T [--idempotency-key K] [--priority P]\n"
	  "        [--timeout S] [--max-retries N] [--signing-key FILE] [--at TIME | --in DURATION]\n"
	  "        [--wait [--wait-timeout DURATION]]",
	  "Insert the QUEUED row and enqueue; prints the job id.\n"
	  "  --task-type T           required unless --json gives it\n"
	  "  --json FILE|-           the whole payload, as for run\n"
	  "  --idempotency-key K     a key a COMPLETED job holds is not run again (default: none)\n"
	  "  --priority P            high, normal or low (default: the policy's)\n"
	  "  --timeout S             the job's deadline in whole seconds (default: the policy's)\n"
	  "  --max-retries N         0 to 100 (default: the policy's, else TASKEXEC_MAX_RETRIES)\n"
	  "  --signing-key FILE      sign with this Ed25519 key (default: TASKEXEC_SIGNING_KEY)\n"
	  "  --at TIME | --in DUR    run at 2026-12-08T05:00:00Z, or 10m from now (default: now)\n"
	  "  --wait                  wait for COMPLETED or FAILED and print it with the result;\n"
	  "                          warns when no executor is alive (default: do not wait)\n"
	  "  --wait-timeout DUR      give up waiting after DUR, exit 3 (default: no limit)\n" },
	{ "status", "status JOB_ID [--json]",
	  "One line: id, status, attempts, error.  --json: an object with those fields.\n" },
	{ "show", "show JOB_ID [--json]",
	  "Everything about a job: a summary (entry, times in UTC, durations), the result,\n"
	  "the error, a table of its attempts and the traceback.  --json: one object, the\n"
	  "jobs row with its attempts.\n" },
	{ "list", "list [--status S] [--task-type T] [--since DURATION|TIME] [--limit N] [--json]",
	  "Recent jobs, newest first.\n"
	  "  --status S          QUEUED, RUNNING, COMPLETED or FAILED, any case (default: all)\n"
	  "  --task-type T       only this task type (default: all)\n"
	  "  --since D|TIME      created in the last D (90s, 5m, 2h, 7d) or since TIME\n"
	  "                      (2026-12-08T05:00:00Z) (default: any time)\n"
	  "  --limit N           at most N jobs, 1 to 100000 (default: 20)\n"
	  "  --json              a JSON array of objects\n" },
	{ "logs", "logs JOB_ID [--attempt N] [--follow] [--json]",
	  "The job's stored lines, in order: its stdout and stderr and its logging records\n"
	  "with their levels, each with its time (UTC) and attempt; what was left out past\n"
	  "the 256 KiB stored per attempt is counted at the end.\n"
	  "  --attempt N   only attempt N (default: every attempt)\n"
	  "  --follow, -f  keep printing new lines until the job is COMPLETED or FAILED (with\n"
	  "                --attempt, until that attempt ended) (default: print and exit)\n"
	  "  --json        one JSON object a line: attempt, seq, ts, stream, level, logger, line\n" },
	{ "retry", "retry JOB_ID", "Re-enqueue a FAILED job with a fresh budget of retries.\n" },
	{ "cancel", "cancel JOB_ID", "Cancel a queued or running job; it ends FAILED, error \"cancelled\".\n" },
	{ "queues", "queues [--json]", "Queue depths per priority, delayed retries, live executors.\n" },
	{ "prune", "prune --older-than DURATION [--dry-run]",
	  "Delete COMPLETED and FAILED jobs (with their attempts) that finished more than\n"
	  "DURATION ago (90m, 12h, 30d), and executors rows stopped that long; print counts.\n"
	  "  --dry-run   count, delete nothing\n" },
	{ "policy", "policy check [DIR] | policy show TYPE",
	  "Validate the policy files of DIR (default: TASKEXEC_POLICY_DIR), naming file:line\n"
	  "of each problem; or print the effective policy of task type TYPE.\n" },
	{ "keygen", "keygen SECRET_FILE PUBLIC_FILE", "Make an Ed25519 key pair for signed jobs.\n" },
	{ "sign", "sign SECRET_FILE [PAYLOAD_FILE|-]",
	  "Print the payload (default: from stdin) with its signature member set.\n" },
	{ "help", "help [COMMAND]", "Print the usage of COMMAND, or of every command.\n" },
};

static const char footer[] =
	"\n"
	"ENTRY is module.path:function or module.path:Class.method, defined in that module\n"
	"itself (an imported name is refused); k=v values are JSON when\n"
	"they parse as JSON, else strings (JSON that cannot be carried as it is, such as\n"
	"an integer beyond 64 bits, is refused).  Settings come from TASKEXEC_* variables and\n"
	"/etc/taskexec/taskexec.conf; see taskexec(1) and taskexec.conf(5).\n"
	"taskexec help COMMAND (or COMMAND --help) prints a command's options.\n"
	"Exit status: 0 done, 1 the job failed, 2 usage error or rejected payload,\n"
	"3 a wait gave up.\n";

void cli_usage(FILE *f)
{
	fputs("usage: taskexec COMMAND [ARGS]\n\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %s\n", commands[i].synopsis);
	fputs(footer, f);
}

int cli_help(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(name, commands[i].name)) {
			printf("usage: taskexec %s\n\n%s", commands[i].synopsis, commands[i].details);
			return EXIT_DONE;
		}
	return cli_usage_error("unknown command '%s' (see taskexec --help)", name);
}

/* Asked anywhere on the line, help wins: "--timeout --help" or "sign
 * --help" must print the usage, never take --help for a value or a file
 * (and then wait on stdin).  A file really named so is given as ./-h. */
bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return true;
	return false;
}

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("taskexec: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

int cli_config(struct config *c)
{
	char *errors = NULL;

	if (config_load(c, NULL, CONFIG_SYSTEM_FILE | CONFIG_CHECKOUT, &errors) < 0) {
		fprintf(stderr, "taskexec: configuration: %s", errors);
		free(errors);
		config_free(c);
		return -1;
	}
	return 0;
}
