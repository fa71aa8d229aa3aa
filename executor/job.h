/* SPDX-License-Identifier: ISC */
/* job — the wire format of a job (taskexec-protocol(7)): parse, validate, entry points. */
#ifndef TASKEXEC_JOB_H
#define TASKEXEC_JOB_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define JOB_MAX_BYTES (1 << 20)
#define JOB_MAX_DEPTH 32
#define JOB_ID_MAX 64

struct job {
	json_t *doc;            /* the whole payload; the fields below point into it */
	const char *job_id;
	const char *task_type;
	const char *module_path;
	const char *class_name;         /* NULL when absent or null */
	const char *method_name;
	json_t *parameters;             /* an object ({} when the payload has none); owned */
	const char *idempotency_key;    /* NULL when absent */
	const char *priority;           /* NULL when absent */
	long timeout_seconds;           /* -1 when absent */
	long max_retries;               /* -1 when absent */
	const char *signature;          /* NULL when absent */
};

/* Parse and validate everything that needs no configuration.  On error returns
 * -1 with a one-line message naming the field in *ret_err (caller frees), and
 * *ret is untouched. */
int job_parse(const char *payload, size_t len, struct job *ret, char **ret_err);
/* The valid job_id of a payload job_parse refused, or NULL (caller frees): a
 * producer's QUEUED row of that id is then failed, not left queued. */
char *job_id_of(const char *payload, size_t len);
void job_free(struct job *j);

/* The job's module must lie under an allowed top-level package and resolve to a
 * file under one of the roots.  On success *ret_file is that file's real path. */
int job_check_target(const struct job *j, char *const *allowed, char *const *roots,
		     char **ret_file, char **ret_err);

bool job_id_valid(const char *s);
/* A dotted identifier whose components are ASCII identifiers not starting with '_'. */
bool dotted_name_valid(const char *s);

/* ENTRY: "mod.path:func", "mod.path:Class.method" -> module, class (or NULL), method. */
int entry_parse(const char *entry, char **ret_module, char **ret_class, char **ret_method, char **ret_err);
/* k=v arguments: the value is JSON when it parses as JSON, else a string. */
int kv_parse(char *const *args, size_t n, json_t *into, char **ret_err);

/* The canonical form that signatures cover: the payload without "signature",
 * keys sorted, no blanks, non-ASCII escaped.  Caller frees. */
char *job_canonical(const json_t *doc, char **ret_err);

#include "config.h"
#include "policy.h"

/* The checks that need configuration: a known task type, an allowed module
 * under the task roots, and overrides within the policy's bounds.  Returns the
 * policy and the effective timeout, priority and retries. */
struct job_plan {
	const struct policy *policy;
	int64_t timeout_ms;
	const char *priority;
	long max_retries;
};
int job_prepare(const struct job *j, const struct config *c, const struct policy_set *ps,
		struct job_plan *ret, char **ret_err);
/* The envelope the shim reads on fd 0 (caller frees). */
char *job_envelope(const struct job *j, int attempt, const struct config *c, const struct policy *p,
		   size_t *ret_len);

#endif
