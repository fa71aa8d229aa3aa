/* SPDX-License-Identifier: ISC */
/* main_daemon — taskexecd(8): options, configuration, then the daemon. */
#include "check.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "policy.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"usage: taskexecd [--config FILE] [--check [--connect]] [--version]\n"
	"\n"
	"  --config FILE  read settings from FILE (default /etc/taskexec/taskexec.conf)\n"
	"  --check        validate the configuration and policies, print the effective\n"
	"                 settings (secrets masked) and exit: 0 valid, 1 not;\n"
	"                 contacts neither Redis nor PostgreSQL\n"
	"  --connect      with --check (implies it): also connect to Redis (AUTH,\n"
	"                 SELECT, PING) and PostgreSQL (schema version), one line\n"
	"                 for each that fails; exit 3 when the configuration is\n"
	"                 valid but one of them fails\n"
	"  --version      print the version and exit\n"
	"\n"
	"Runs in the foreground and logs one JSON object per line on stdout.\n"
	"SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the policies.  See taskexecd(8).\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' }, { "check", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },      { "help", no_argument, NULL, 'h' },
		{ "connect", no_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	const char *file = NULL;
	bool check = false, connect = false;
	struct config c;
	char *errors = NULL;
	enum log_level lvl = LOG_INFO;
	int o, r;

	seed_json();
	while ((o = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (o) {
		case 'c': file = optarg; break;
		case 'k': check = true; break;
		case 'C': check = connect = true; break;
		case 'V': printf("taskexecd %s\n", TASKEXEC_VERSION); return 0;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "taskexecd: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	r = config_load(&c, file, CONFIG_SYSTEM_FILE | CONFIG_CHECKOUT, &errors);
	if (check) {
		struct policy_set ps;
		char *perr = NULL;
		struct policy_vars v = { c.state_dir, c.tasks_path && c.tasks_path[0] ? c.tasks_path[0] : "" };
		int bad = r < 0, unreachable = 0;

		/* Name every problem at once: settings, then policies. */
		config_print(&c, stdout);
		if (bad)
			fprintf(stderr, "%s", errors);
		free(errors);
		errors = NULL;
		if (daemon_preflight(&c, &errors) < 0) {
			fprintf(stderr, "%s", errors);
			bad = 1;
		}
		if (policy_load_dir(c.policy_dir, &v, &ps, &perr) < 0) {
			fprintf(stderr, "%s", perr);
			free(perr);
			bad = 1;
		} else {
			for (size_t i = 0; i < ps.n; i++) {
				printf("# policy %s: %s\n", ps.v[i].name, ps.v[i].file);
				/* Where each secret is read from: the operator checks the
				 * file, the output never carries the value. */
				for (char **e = ps.v[i].secrets; e && *e; e++)
					printf("#   secret %.*s from %s\n", (int)(strchr(*e, '=') - *e), *e,
					       strchr(*e, '=') + 1);
			}
			policy_set_free(&ps);
		}
		free(errors);
		/* Only a configuration the daemon would accept is worth connecting with. */
		if (!bad && connect)
			unreachable = check_connect(&c, stdout, stderr);
		config_free(&c);
		if (bad)
			fputs("taskexecd: configuration refused\n", stderr);
		else if (unreachable)
			fputs("taskexecd: Redis or PostgreSQL failed the connection check\n", stderr);
		else
			puts("# configuration valid");
		return bad ? 1 : unreachable ? 3 : 0;
	}
	if (r < 0) {
		log_setup(NULL, LOG_INFO, true);
		log_json(LOG_ERROR, "config.invalid", json_pack("{s:s}", "errors", errors));
		free(errors);
		config_free(&c);
		return 1;
	}
	/* config_load refused a name it does not know: lvl keeps LOG_INFO only
	 * if that ever changes. */
	if (log_level_parse(c.log_level, &lvl) < 0)
		lvl = LOG_INFO;
	log_setup(c.executor_id, lvl, true);
	r = daemon_run(&c);
	config_free(&c);
	return r;
}
