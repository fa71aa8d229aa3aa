/* SPDX-License-Identifier: ISC */
/* supervise — the life of one claimed job, as one state machine: the table
 * of states, events and next states is at the top of supervise.c.
 *
 * A step whose Redis or PostgreSQL call fails is tried again after a pause;
 * every step is safe to repeat, and the entry stays in our processing list
 * until ACK, DELAY or REQUEUE succeeded. */
#ifndef TASKEXEC_SUPERVISE_H
#define TASKEXEC_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"
#include "outcome.h"
#include "policy.h"
#include "queue.h"
#include "sandbox.h"
#include "store.h"

struct metrics;

/* What the jobs need of the daemon that runs them: its connections and
 * settings, and notices back.  supervise never sees struct daemon. */
struct supervise_host {
	const struct config *cfg;
	struct loop *loop;
	struct queue *queue;
	struct store *store;
	struct sandbox *sandbox;
	struct metrics *metrics;
	const char *host;
	/* The current policies: a job takes a reference for its life. */
	struct policies *(*policies)(void *arg);
	/* A job left its slot. */
	void (*slot_freed)(void *arg);
	/* A retry was parked in the delayed set until due_ms (wall clock). */
	void (*retry_due)(void *arg, int64_t due_ms);
	/* An attempt could not start for a fault of ours (cause), or one
	 * started again (NULL). */
	void (*fault)(void *arg, const char *cause);
	void *arg;
};

/* What the jobs of a supervisor did, for the heartbeat line. */
struct supervise_counts {
	uint64_t started, completed, failed, retried, rejected;
};

struct supervisor;

struct supervisor *supervisor_new(const struct supervise_host *h);
/* Only once supervise_idle(): no job is left. */
void supervisor_free(struct supervisor *s);
/* Take over a claimed entry "<priority>|<payload>". */
void supervise_start(struct supervisor *s, const char *entry, size_t len);
/* Kill the running attempt of job_id (cancel) if it runs here. */
void supervise_cancel(struct supervisor *s, const char *job_id);
/* Kill every running attempt; they are recorded as WHY. */
void supervise_stop_all(struct supervisor *s, enum outcome_kind why);
/* Jobs holding a slot (running, or recording their outcome). */
int supervise_busy(const struct supervisor *s);
/* JOB_ID is a job of ours, from its claim until its entry has left our
 * processing list: one whose RUNNING row we may write. */
bool supervise_running(const struct supervisor *s, const char *job_id);
/* No job left at all: every entry has left our processing list too. */
bool supervise_idle(const struct supervisor *s);
const struct supervise_counts *supervise_counts(const struct supervisor *s);

#endif
