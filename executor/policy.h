/* SPDX-License-Identifier: ISC */
/* policy — one INI file per task type (taskexec-policy(5)): limits, paths, network, env. */
#ifndef TASKEXEC_POLICY_H
#define TASKEXEC_POLICY_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum net_mode { NET_NONE, NET_OUTBOUND };
/* How an attempt's interpreter starts (taskexec-policy(5), [start]). */
enum start_mode { START_FRESH, START_WARM };

struct policy {
	char *name;             /* the task type */
	char *file;
	char *priority;         /* default priority */
	char *max_priority;     /* the highest a job may ask for */
	int64_t timeout_ms, max_timeout_ms;
	long max_retries, retries_limit;
	long max_lost;                  /* executor losses before the job is FAILED */
	int64_t backoff_base_ms, backoff_max_ms;
	uint64_t memory, file_size;
	int64_t cpu_ms;
	long open_files, processes;
	uint64_t output_bytes;          /* of an attempt's output forwarded to the daemon's log */
	uint64_t scratch_size;          /* the tmpfs that is the job's /tmp in its domain */
	enum net_mode network;
	enum start_mode start;          /* fresh exec, or a fork of the domain's warm server */
	long warm_forks;                /* a warm server is replaced after this many attempts */
	int64_t warm_age_ms;            /* ... or when it is this old */
	char **read_paths, **write_paths, **python_path;
	char **env;             /* "NAME=value", expanded */
	char **secrets;         /* "NAME=source": a root-only file, or credential:ID */
};

struct policy_set {
	struct policy *v;
	size_t n;
};

/* Where ${STATE_DIR} and ${TASKS_ROOT} point. */
struct policy_vars {
	const char *state_dir;
	const char *tasks_root;
};

/* Load every *.policy file of DIR.  Returns 0, or -1 with one "file:line: problem"
 * line per problem in *ret_errors (caller frees); nothing is returned then. */
int policy_load_dir(const char *dir, const struct policy_vars *vars, struct policy_set *ret,
		    char **ret_errors);
void policy_set_free(struct policy_set *s);
const struct policy *policy_find(const struct policy_set *s, const char *task_type);
void policy_print(const struct policy *p, FILE *out);
/* Read the secret SOURCE of a [secrets] entry (a path, or credential:ID under
 * $CREDENTIALS_DIRECTORY): 0 with the value in *ret (caller clears it with
 * explicit_bzero and frees), or -1 with a message naming the file, never its
 * contents.  Refused: not a regular file, owned by anyone but root (or the
 * daemon's own user), readable or writable by group or others. */
int policy_secret_read(const char *source, char **ret, size_t *ret_len, char **ret_err);
/* Secrets are values of at most this many bytes. */
#define POLICY_SECRET_MAX (64 * 1024)
/* 0 high, 1 normal, 2 low, -1 unknown */
int priority_rank(const char *p);

/* A loaded set, shared by the jobs that use it: SIGHUP loads a new one while
 * running jobs keep the old until they end. */
struct policies {
	struct policy_set set;
	int refs;
};
/* Load DIR into a set with one reference, or NULL with *ret_err. */
struct policies *policies_load(const char *dir, const struct policy_vars *v, char **ret_err);
struct policies *policies_ref(struct policies *p);
void policies_unref(struct policies *p);

#endif
