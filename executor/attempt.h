/* SPDX-License-Identifier: ISC */
/* attempt — watch one running attempt: drain its pipes, enforce its deadline,
 * and classify how it ended. */
#ifndef TASKEXEC_ATTEMPT_H
#define TASKEXEC_ATTEMPT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "outcome.h"
#include "sandbox.h"

#define ATTEMPT_TAIL_BYTES 8192
#define ATTEMPT_KILL_GRACE_MS 2000
/* Of each attempt's lines and logging records at most this much text is
 * stored (taskexec.attempt_logs, taskexec logs): enough for a job's story,
 * never the policy's whole output_bytes (megabytes) per attempt.  What is
 * left out past it, or past output_bytes, is counted on the attempt row. */
#define ATTEMPT_LOG_STORED_BYTES (256 * 1024)
/* How a progress record starts on fd 4, as taskexec_task.progress() writes
 * it: {"progress": 0.42, "msg": ...}. */
#define ATTEMPT_PROGRESS_PREFIX "{\"progress\":"

struct outcome {
	enum outcome_kind kind;
	char *error;            /* one line for people; NULL when completed */
	char *error_type;       /* Python exception type, when there was one */
	char *traceback;
	bool retryable;
	int exit_code;          /* -1 unless it exited */
	int signal;             /* 0 unless killed by a signal */
	char *syscall;          /* the call that broke the seccomp policy */
	char *result;           /* when completed: the JSON text, as the shim wrote it */
	int64_t duration_ms, cpu_ms, max_rss_kb;
	bool landlock;
	char *stdout_tail, *stderr_tail;
	/* Lines of output and logging records past the policy's output_bytes,
	 * not handed to the line and event callbacks. */
	uint64_t suppressed_lines, suppressed_bytes;
};
void outcome_free(struct outcome *o);
/* The outcome as one JSON object (for `taskexec run` and logs). */
json_t *outcome_json(const struct outcome *o, const char *job_id);
/* An outcome for a job that never ran (rejected, duplicate, …). */
struct outcome *outcome_new(enum outcome_kind k, const char *error);

struct attempt_ops {
	/* A line of the task's stdout or stderr (stream PROC_STDOUT/PROC_STDERR). */
	void (*line)(void *ctx, int stream, const char *line, size_t len);
	/* One JSON line of the task's logging records, or a progress record
	 * (ATTEMPT_PROGRESS_PREFIX; never held back by cap_output). */
	void (*event)(void *ctx, const char *line, size_t len);
	/* The attempt is over; the outcome belongs to the callee. */
	void (*done)(void *ctx, struct outcome *o);
	/* Wait for the removal of a scratch dir the job left full before done()
	 * (a one-shot runner about to exit); else it finishes in the background. */
	bool wait_cleanup;
	/* Hand over at most the policy's output_bytes of lines and records. */
	bool cap_output;
};

struct attempt;
struct attempt *attempt_start(struct loop *l, struct sandbox *sb, const struct launch *launch,
			      int64_t timeout_ms, uint64_t result_max, const struct attempt_ops *ops,
			      void *ctx, char **ret_err);
/* End it now (SIGKILL to its process group); it is then classified as WHY. */
void attempt_stop(struct attempt *a, enum outcome_kind why);
pid_t attempt_pid(const struct attempt *a);

#endif
