/* cli — the taskexec(1) command: one function per subcommand. */
#ifndef TASKEXEC_CLI_H
#define TASKEXEC_CLI_H

#include "config.h"

/* Exit codes of taskexec(1). */
enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

int cli_run(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_status(int argc, char **argv, bool full);
int cli_list(int argc, char **argv);
int cli_retry(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_queues(int argc, char **argv);
int cli_keygen(int argc, char **argv);
int cli_sign(int argc, char **argv);

/* Load the configuration or print every problem and return -1. */
int cli_config(struct config *c);
/* Build a payload from ENTRY k=v… (or --json), shared by run and submit. */
struct json_t;
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
