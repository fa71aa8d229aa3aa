/* SPDX-License-Identifier: ISC */
/* cli_ops_main — taskexec-ops: the Redis and PostgreSQL subcommands of
 * taskexec(1), which `taskexec` executes for them (see exec_ops in cli.c). */
#include "cli.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static int cli_status_line(int argc, char **argv)
{
	return cli_status(argc, argv, false);
}

static int cli_show(int argc, char **argv)
{
	return cli_status(argc, argv, true);
}

int main(int argc, char **argv)
{
#define OP_ENTRY(name, fn) { name, fn },
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = { CLI_OPS(OP_ENTRY) };
#undef OP_ENTRY

	seed_json();
	log_setup(NULL, LOG_WARN, false);
	if (argc < 2)
		return cli_usage_error("usage: taskexec COMMAND [ARGS] (see taskexec --help)");
	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cli_wants_help(argc - 1, argv + 1) ? cli_help(argv[1]) : cmds[i].fn(argc - 1, argv + 1);
	return cli_usage_error("unknown command '%s' (see taskexec --help)", argv[1]);
}
