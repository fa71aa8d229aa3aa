/* SPDX-License-Identifier: ISC */
/* metrics — counters, gauges and histograms for /metrics (Prometheus text). */
#ifndef TASKEXEC_METRICS_H
#define TASKEXEC_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "outcome.h"

struct metrics;

struct metrics *metrics_new(const char *executor_id);
void metrics_free(struct metrics *m);
/* Declare a task type: its series are exposed at 0 before its first job, so
 * rate() and the histogram have a start, and /metrics is never a histogram
 * family without series. */
void metrics_task_type(struct metrics *m, const char *task_type);
void metrics_job(struct metrics *m, const char *task_type, const char *what); /* started, completed, failed, retried, rejected */
/* An attempt ended: counted by outcome, its wall time observed by task type. */
void metrics_attempt(struct metrics *m, const char *task_type, enum outcome_kind k, double run_seconds);
void metrics_queue_latency(struct metrics *m, double seconds);
/* Gauges: slots_busy, redis_up, redis_bad_keys, …; also the running total
 * redis_malformed_total, which the daemon counts. */
void metrics_set(struct metrics *m, const char *gauge, double v);
void metrics_count(struct metrics *m, const char *counter);         /* executor_faults_total, … */
/* Info series redis_master, postgres_primary: true when VALUE replaces another. */
bool metrics_info(struct metrics *m, const char *name, const char *value);
void metrics_depths(struct metrics *m, long high, long normal, long low, long delayed);
/* The age of the job at the head of queue PRIO (0 high, 1 normal, 2 low); 0 when empty. */
void metrics_queue_oldest(struct metrics *m, int prio, double age_seconds);
/* The exposition text (caller frees). */
char *metrics_render(const struct metrics *m);

#endif
