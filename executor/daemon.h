/* daemon — taskexecd's process: the loop, Redis and PostgreSQL connections,
 * job slots, heartbeat, recovery, retry promotion, signals and drain. */
#ifndef TASKEXEC_DAEMON_H
#define TASKEXEC_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "policy.h"
#include "queue.h"
#include "sandbox.h"
#include "store.h"

struct job_run;
struct metrics;
struct http;

/* Policies are reloaded on SIGHUP while jobs may still hold the old set. */
struct policies {
	struct policy_set set;
	int refs;
};

struct daemon {
	struct config *cfg;
	struct loop *loop;
	struct queue *queue;
	struct store *store;
	struct sandbox sandbox;
	struct policies *policies;
	struct metrics *metrics;
	struct http *http;
	char host[256];
	struct job_run *jobs;           /* every job until its entry has left {P}:processing */
	int busy;                       /* jobs holding a slot */
	int claims;                     /* claims in flight */
	bool recovered_self;            /* our own processing list was put back */
	bool id_claimed;                /* the lease on our executor id is ours */
	char *id_seen;                  /* the lease another holds, as first seen */
	int64_t id_seen_at;
	struct timer *id_timer;
	char *bad_keys;                 /* keys of the wrong type last reported (JSON) */
	uint64_t malformed;             /* entries moved to {P}:garbage */
	bool draining;
	bool done;
	int64_t next_due_ms;            /* earliest delayed retry, wall clock; -1 none */
	int64_t redis_up_at;            /* monotonic ms of the last Redis (re)connect */
	struct timer *promote_timer, *shutdown_timer, *hard_timer;
	int64_t claim_token;
	/* The executor's own fault (scratch full, launch failed): no claim
	 * before fault_until (monotonic ms); the next claim is the probe. */
	char *fault;
	int64_t fault_until, fault_backoff_ms;
	struct timer *fault_timer;
	uint64_t beats;
	char **reconcile_ids;           /* the rows of the sweep in flight */
	int reconcile_n;
	int exit_code;
	/* counters for the heartbeat line */
	uint64_t started, completed, failed, retried, rejected;
};

int daemon_run(struct config *cfg);
/* Everything that can be checked without connecting: URLs, the listen
 * address, the interpreter, the shim, the verify keys, the job user.  0,
 * or -1 with one line per problem in *errors (caller frees). */
int daemon_preflight(const struct config *cfg, char **errors);

void policies_unref(struct policies *p);
/* A retry was parked until due_ms (wall clock): promote it on time. */
void daemon_retry_due(struct daemon *d, int64_t due_ms);
/* A job left its slot: claim more if we may. */
void daemon_slot_freed(struct daemon *d);
/* An attempt could not be started for a fault of ours, CAUSE: back off
 * claiming and report unready until an attempt starts again. */
void daemon_fault(struct daemon *d, const char *cause);
void daemon_fault_cleared(struct daemon *d);

#endif
