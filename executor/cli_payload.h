/* SPDX-License-Identifier: ISC */
/* cli_payload — ENTRY k=v … and options into a job payload, for run and submit. */
#ifndef TASKEXEC_CLI_PAYLOAD_H
#define TASKEXEC_CLI_PAYLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cli_payload {
	const char *entry, *json_file, *task_type, *timeout_s, *idempotency_key, *priority,
		*max_retries_s, *signing_key, *at_s, *in_s, *wait_timeout_s;
	long timeout, max_retries;
	int64_t due_ms;                 /* submit --at/--in: when it is due (epoch ms), else 0 */
	int64_t wait_timeout_ms;        /* submit --wait-timeout, else -1: wait as long as it takes */
	bool wait;
	char **kv;
	size_t nkv;
};

int cli_payload_parse(int argc, char **argv, struct cli_payload *p, bool submit);
char *cli_payload_build(const struct cli_payload *p, const char *default_type, char **ret_err);
void cli_payload_free(struct cli_payload *p);

#endif
