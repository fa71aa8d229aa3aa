/* cli_ops_main — taskexec-ops: the Redis and PostgreSQL subcommands of
 * taskexec(1), which `taskexec` executes for them (see exec_ops in cli.c). */
#include "cli.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "submit", cli_submit }, { "list", cli_list }, { "retry", cli_retry }, { "cancel", cli_cancel },
		{ "queues", cli_queues }, { "keygen", cli_keygen }, { "sign", cli_sign },
	};

	seed_json();
	log_setup(NULL, LOG_WARN, false);
	if (argc < 2)
		return cli_usage_error("usage: taskexec COMMAND [ARGS] (see taskexec --help)");
	if (!strcmp(argv[1], "status") || !strcmp(argv[1], "show"))
		return cli_status(argc - 1, argv + 1, !strcmp(argv[1], "show"));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	return cli_usage_error("unknown command '%s' (see taskexec --help)", argv[1]);
}
