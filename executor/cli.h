/* SPDX-License-Identifier: ISC */
/* cli — the taskexec(1) command: one function per subcommand. */
#ifndef TASKEXEC_CLI_H
#define TASKEXEC_CLI_H

#include "config.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit codes of taskexec(1). */
enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_WAIT_TIMEOUT = 3 };

/* The subcommands taskexec hands to taskexec-ops (see exec_ops in cli.c),
 * each with the function that runs it there: X(name, function).  taskexec
 * reads only the names, so it links none of the functions. */
#define CLI_OPS(X)                                                                          \
	X("submit", cli_submit) X("status", cli_status_line) X("show", cli_show) X("list", cli_list) \
	X("retry", cli_retry) X("cancel", cli_cancel) X("queues", cli_queues) X("keygen", cli_keygen) \
	X("sign", cli_sign) X("prune", cli_prune) X("logs", cli_logs)

int cli_run(int argc, char **argv);
int cli_submit(int argc, char **argv);
int cli_status(int argc, char **argv, bool full);
int cli_list(int argc, char **argv);
int cli_retry(int argc, char **argv);
int cli_cancel(int argc, char **argv);
int cli_queues(int argc, char **argv);
int cli_keygen(int argc, char **argv);
int cli_sign(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_logs(int argc, char **argv);

/* The list of commands (taskexec --help), or one command's usage and options
 * (taskexec help CMD, CMD --help, CMD -h). */
void cli_usage(FILE *f);
int cli_help(const char *name);
/* Whether --help or -h stands anywhere among a command's arguments. */
bool cli_wants_help(int argc, char **argv);

/* Load the configuration or print every problem and return -1. */
int cli_config(struct config *c);
/* Build a payload from ENTRY k=v… (or --json), shared by run and submit. */
struct json_t;
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
