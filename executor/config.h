/* SPDX-License-Identifier: ISC */
/* config — settings from TASKEXEC_* variables and taskexec.conf (the environment wins). */
#ifndef TASKEXEC_CONFIG_H
#define TASKEXEC_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct config {
	char *redis_url;
	char *db_url;
	long concurrency;
	long max_retries;
	char **allowed_modules;
	char **tasks_path;
	char *policy_dir;
	char *python;
	char *queue_prefix;
	char *executor_id;
	int64_t heartbeat_ms;
	char *http_listen;
	int64_t shutdown_ms;
	uint64_t result_max;
	char *job_user;
	bool require_signature;
	char **verify_keys;
	char *log_level;
	char *state_dir;
	char *scratch_dir;
	char *isolation;                /* "domain", or "weak" where the kernel refuses namespaces */
	char *job_uids;                 /* FIRST-LAST: one uid and gid per running job */
	/* Derived, not settable: where the shim lives and which file was read. */
	char *shim_dir;
	char *config_file;
	bool dev_layout;
	uid_t job_uid_first;            /* parsed from job_uids */
	unsigned job_uid_count;
};

/* Where config_load may look besides FILE and the environment.  The programs
 * pass both; tests pass neither, so they never read the host's configuration. */
enum {
	/* With no FILE and no TASKEXEC_CONFIG: read /etc/taskexec/taskexec.conf if it exists. */
	CONFIG_SYSTEM_FILE = 1 << 0,
	/* A binary in <checkout>/build/ uses the checkout's policy/, tasks and shim. */
	CONFIG_CHECKOUT = 1 << 1,
};

/* Load defaults, then FILE (else $TASKEXEC_CONFIG, else what FLAGS allow), then
 * the environment.  On error returns -1 and *ret_errors holds one line per
 * problem, each naming the variable (caller frees). */
int config_load(struct config *c, const char *file, unsigned flags, char **ret_errors);
void config_free(struct config *c);
/* Print the effective settings as KEY=value lines, secrets masked. */
void config_print(const struct config *c, FILE *out);
/* A URL with its password replaced by "***" (caller frees). */
char *config_mask_url(const char *url);

#endif
