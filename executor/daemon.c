/* SPDX-License-Identifier: ISC */
/* daemon — taskexecd's process: the loop, Redis and PostgreSQL connections,
 * job slots, heartbeat, recovery, retry promotion, signals and drain. */
#include "daemon.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "sign.h"
#include "supervise.h"
#include "util.h"

#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/* Everything of one taskexecd; nothing outside this file sees it: the jobs
 * get a supervise_host, the HTTP endpoint an http_host. */
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
	struct supervisor *jobs;        /* every claimed job until its entry has left Redis */
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
	/* The executor's own fault (scratch full, launch failed): no claim
	 * before fault_until (monotonic ms); the next claim is the probe. */
	char *fault;
	int64_t fault_until, fault_backoff_ms;
	struct timer *fault_timer;
	uint64_t beats;
	struct timer *first_beat;       /* until Redis and PostgreSQL first answer */
	bool pg_seen, switch_sweep;     /* PostgreSQL was up once; a failover's sweep is due */
	bool own_sweep;                 /* our own RUNNING rows are to be checked (reconcile_own) */
	char **reconcile_ids;           /* the rows of the sweep in flight */
	int reconcile_n;
	int exit_code;
};


#define HARD_EXIT_GRACE_MS 10000
/* At exit, how long the last log lines may wait for a slow reader of stdout. */
#define LOG_EXIT_FLUSH_MS 3000

static void fill(struct daemon *d);
static void daemon_slot_freed(struct daemon *d);
static void start_drain(struct daemon *d, int sig);
static void on_recovered_self(void *arg, redisReply *reply);
static void redis_beat(struct daemon *d, json_t *doc);
static void store_beat(struct daemon *d);
static void first_heartbeat_when_connected(struct daemon *d);

static struct policies *load_policies(const struct config *c, char **ret_err)
{
	struct policy_vars v = { c->state_dir, c->tasks_path[0] };

	return policies_load(c->policy_dir, &v, ret_err);
}

/* ---- claiming ------------------------------------------------------------------ */

static int free_slots(const struct daemon *d)
{
	return (int)d->cfg->concurrency - supervise_busy(d->jobs) - d->claims;
}

static int64_t wait_bound_ms(const struct daemon *d)
{
	int64_t t = d->cfg->heartbeat_ms;

	if (d->next_due_ms >= 0 && d->next_due_ms - wall_ms() < t)
		t = d->next_due_ms - wall_ms();
	return t < 10 ? 10 : t;
}

static void on_claim(void *arg, redisReply *reply)
{
	struct daemon *d = arg;

	d->claims--;
	if (reply && reply->type == REDIS_REPLY_STRING) {
		supervise_start(d->jobs, reply->str, reply->len);
		fill(d);
		return;
	}
	if (d->draining) {
		daemon_slot_freed(d);
		return;
	}
	/* Nothing to take (or Redis failed): block until a producer wakes us. */
	if (!d->claims && free_slots(d) > 0 && !d->draining)
		queue_wait(d->queue, wait_bound_ms(d));
}

/* One claim at a time: a claim that finds a job asks for the next, one that
 * finds none goes back to waiting.  (N claims at once for one job would cost
 * N-1 empty scripts.) */
static void fill(struct daemon *d)
{
	if (d->draining || !d->recovered_self || !queue_up(d->queue) || !store_up(d->store))
		return;
	if (d->fault && now_ms() < d->fault_until)
		return;         /* on_fault_over claims */
	if (free_slots(d) > 0 && !d->claims && queue_claim(d->queue, on_claim, d) == 0)
		d->claims++;
}

static void on_promoted(void *arg, redisReply *reply);

static void on_woken(void *arg, bool marker)
{
	struct daemon *d = arg;

	/* A timeout means nobody enqueued: wait again without asking.  The
	 * heartbeat claims if its queue depths say a wake-up was lost. */
	if (!marker && queue_up(d->queue) && d->recovered_self) {
		if (!d->claims && free_slots(d) > 0 && !d->draining)
			queue_wait(d->queue, wait_bound_ms(d));
		return;
	}
	/* A producer may have parked a delayed job (taskexec-protocol(7)) due
	 * before our next heartbeat: learn its due time now, so the promote
	 * timer runs it on time. */
	if (marker && queue_up(d->queue))
		queue_promote(d->queue, wall_ms(), on_promoted, d);
	fill(d);
}

static void daemon_slot_freed(struct daemon *d)
{
	if (d->draining) {
		/* Done when nothing runs and every outcome has left Redis too. */
		if (!supervise_busy(d->jobs) && !d->claims && supervise_idle(d->jobs))
			d->done = true;
		return;
	}
	fill(d);
}

/* ---- the executor's own faults -------------------------------------------------------
 *
 * A job that could not start because of us goes back to the head of its
 * queue uncharged (supervise records it as executor_fault).  Claiming it
 * again at once would only spin, so this daemon waits, doubling from 1 s to
 * 30 s, while healthier executors take the job; the next claim after the
 * wait is the probe, and the first attempt that starts ends the fault. */

#define FAULT_BACKOFF_MIN_MS 1000
#define FAULT_BACKOFF_MAX_MS 30000

static void on_fault_over(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	d->fault_timer = NULL;
	fill(d);
}

static void daemon_fault(struct daemon *d, const char *cause)
{
	bool first = !d->fault;

	if (first || strcmp(d->fault, cause)) {
		free(d->fault);
		d->fault = xstrdup(cause);
		log_msg(LOG_ERROR, "executor.fault", "jobs cannot start here: %s", cause);
	}
	d->fault_backoff_ms = first ? FAULT_BACKOFF_MIN_MS : d->fault_backoff_ms * 2;
	if (d->fault_backoff_ms > FAULT_BACKOFF_MAX_MS)
		d->fault_backoff_ms = FAULT_BACKOFF_MAX_MS;
	d->fault_until = now_ms() + d->fault_backoff_ms;
	metrics_count(d->metrics, "executor_faults_total");
	metrics_set(d->metrics, "executor_fault", 1);
	if (d->fault_timer)
		loop_timer_cancel(d->loop, d->fault_timer);
	d->fault_timer = loop_timer(d->loop, d->fault_until, on_fault_over, d);
}

static void daemon_fault_cleared(struct daemon *d)
{
	if (!d->fault)
		return;
	log_msg(LOG_INFO, "executor.fault_cleared", "jobs start again (was: %s)", d->fault);
	free(d->fault);
	d->fault = NULL;
	d->fault_backoff_ms = 0;
	metrics_set(d->metrics, "executor_fault", 0);
}

/* ---- garbage in Redis ------------------------------------------------------------ */

/* Keys of the wrong type are skipped by the scripts and reported here: once
 * when the set of them changes, not every heartbeat. */
static void report_garbage(struct daemon *d, const redisReply *moved, const redisReply *bad)
{
	json_t *keys = json_array();
	char *text;

	if (moved->type == REDIS_REPLY_INTEGER && moved->integer > 0) {
		d->malformed += (uint64_t)moved->integer;
		metrics_set(d->metrics, "redis_malformed_total", (double)d->malformed);
		log_json(LOG_WARN, "redis.malformed",
			 json_pack("{s:I, s:s++, s:s}", "entries", (json_int_t)moved->integer, "key", "{",
				   d->cfg->queue_prefix, "}:garbage", "msg",
				   "entries without a priority were moved out of the way; no job was lost"));
	}
	for (size_t i = 0; bad->type == REDIS_REPLY_ARRAY && i < bad->elements; i++)
		if (bad->element[i]->type == REDIS_REPLY_STRING)
			json_array_append_new(keys, json_string(bad->element[i]->str));
	metrics_set(d->metrics, "redis_bad_keys", (double)json_array_size(keys));
	text = json_dumps(keys, JSON_COMPACT);
	if (text && strcmp(text, d->bad_keys ? d->bad_keys : "[]")) {
		if (json_array_size(keys))
			log_json(LOG_WARN, "redis.bad_key",
				 json_pack("{s:O, s:s}", "keys", keys, "msg",
					   "keys of the wrong type are skipped until they are repaired or removed"));
		else
			log_msg(LOG_INFO, "redis.bad_key_cleared", "no key of the wrong type is left");
		free(d->bad_keys);
		d->bad_keys = text;
		text = NULL;
	}
	free(text);
	json_decref(keys);
}

/* ---- executor identity ----------------------------------------------------------- */

/* Another daemon holds our executor id's lease: it took it over while ours
 * lapsed.  Stop claiming, let running jobs end, and leave its keys alone. */
static void id_lost(struct daemon *d, const char *lease)
{
	if (!d->id_claimed)
		return;
	d->id_claimed = false;
	d->exit_code = 1;
	log_msg(LOG_ERROR, "executor.id_in_use", "executor id %s: another taskexecd took over its lease (%s) while "
		"ours lapsed; stopping", d->cfg->executor_id, lease);
	start_drain(d, SIGTERM);
}

static json_t *beat_doc(struct daemon *d);
static void claim_id(struct daemon *d);

static void on_claim_id_timer(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	d->id_timer = NULL;
	claim_id(d);
}

/* A lease that changes while we wait is renewed by a live daemon; one that
 * neither lapses nor changes within a lease's time is no lease we know.
 * Either way the id is not ours to take. */
static void on_claim_id(void *arg, redisReply *reply)
{
	struct daemon *d = arg;
	int64_t lease_ms = 3 * d->cfg->heartbeat_ms;

	if (!reply || d->draining)
		return;         /* tried again when Redis is back */
	if (reply->type == REDIS_REPLY_INTEGER) {
		d->id_claimed = true;
		if (d->id_seen)
			log_msg(LOG_INFO, "executor.id_taken_over", "the lease of executor id %s lapsed: taking it over",
				d->cfg->executor_id);
		queue_recover(d->queue, d->cfg->executor_id, true, on_recovered_self, d);
		{
			json_t *doc = beat_doc(d);

			redis_beat(d, doc);
			json_decref(doc);
		}
		store_beat(d);
		return;
	}
	if (reply->type != REDIS_REPLY_STRING)
		return;
	if (!d->id_seen) {
		d->id_seen = xstrdup(reply->str);
		d->id_seen_at = now_ms();
		log_msg(LOG_WARN, "executor.id_waiting", "executor id %s is held by a lease that has not lapsed (a "
			"crashed earlier run?): waiting up to %lld ms for it to lapse", d->cfg->executor_id,
			(long long)lease_ms);
	} else if (strcmp(d->id_seen, reply->str) || now_ms() - d->id_seen_at > lease_ms + d->cfg->heartbeat_ms) {
		log_msg(LOG_ERROR, "executor.id_in_use", "executor id %s is in use by a live taskexecd (%s): give "
			"each daemon its own TASKEXEC_EXECUTOR_ID", d->cfg->executor_id, reply->str);
		d->exit_code = 1;
		d->done = true;
		return;
	}
	d->id_timer = loop_timer(d->loop, now_ms() + d->cfg->heartbeat_ms, on_claim_id_timer, d);
}

static void claim_id(struct daemon *d)
{
	json_t *doc;
	char *text;

	if (d->id_claimed || d->id_timer || !queue_up(d->queue))
		return;
	doc = beat_doc(d);
	text = json_dumps(doc, JSON_COMPACT);
	if (text)
		queue_claim_id(d->queue, text, on_claim_id, d);
	free(text);
	json_decref(doc);
}

/* ---- recovery and retries -------------------------------------------------------- */


static void on_promote_timer(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	d->promote_timer = NULL;
	queue_promote(d->queue, wall_ms(), on_promoted, d);
}

static void daemon_retry_due(struct daemon *d, int64_t due_ms)
{
	if (d->next_due_ms >= 0 && d->next_due_ms <= due_ms)
		return;
	d->next_due_ms = due_ms;
	if (d->promote_timer)
		loop_timer_cancel(d->loop, d->promote_timer);
	d->promote_timer = loop_timer(d->loop, now_ms() + (due_ms - wall_ms()) + 1, on_promote_timer, d);
}

static void on_promoted(void *arg, redisReply *reply)
{
	struct daemon *d = arg;

	bool beat = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 9;
	redisReply **e;

	if (reply && reply->type == REDIS_REPLY_STRING) {
		id_lost(d, reply->str);
		return;
	}
	if (!reply || reply->type != REDIS_REPLY_ARRAY || (reply->elements != 7 && !beat))
		return;
	e = reply->element + (beat ? 1 : 0);
	report_garbage(d, e[5], e[6]);
	if (beat && reply->element[0]->integer > 0)
		log_json(LOG_WARN, "executor.recovered_jobs",
			 json_pack("{s:I, s:s}", "jobs", (json_int_t)reply->element[0]->integer, "msg",
				   "jobs of executors whose heartbeat lapsed were put back at the head of their queues"));
	d->next_due_ms = e[0]->integer;
	metrics_depths(d->metrics, (long)e[1]->integer, (long)e[2]->integer, (long)e[3]->integer, (long)e[4]->integer);
	if (beat && reply->element[8]->type == REDIS_REPLY_ARRAY && reply->element[8]->elements == 3)
		for (int i = 0; i < 3; i++) {
			redisReply *h = reply->element[8]->element[i];
			int64_t at;

			/* An empty queue, or a head without a readable enqueued_at, ages 0. */
			if (h->type == REDIS_REPLY_STRING && parse_iso8601_ms(h->str, &at) == 0)
				metrics_queue_oldest(d->metrics, i, (double)(wall_ms() - at) / 1000.0);
			else
				metrics_queue_oldest(d->metrics, i, 0);
		}
	/* Work is waiting but nobody is claiming it: a lost wake-up costs at most one interval. */
	if (beat && e[1]->integer + e[2]->integer + e[3]->integer > 0 && !d->claims)
		fill(d);
	if (d->promote_timer) {
		loop_timer_cancel(d->loop, d->promote_timer);
		d->promote_timer = NULL;
	}
	/* Wake for the next due retry ourselves; the heartbeat also promotes. */
	if (d->next_due_ms >= 0 && d->next_due_ms - wall_ms() < d->cfg->heartbeat_ms)
		d->promote_timer = loop_timer(d->loop, now_ms() + (d->next_due_ms - wall_ms()) + 1,
					      on_promote_timer, d);
}

static void on_recovered_self(void *arg, redisReply *reply)
{
	struct daemon *d = arg;

	if (!reply)
		return;         /* tried again when Redis is back */
	if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
		log_json(LOG_WARN, "executor.recovered_own",
			 json_pack("{s:I, s:s}", "jobs", (json_int_t)reply->integer, "msg",
				   "jobs this executor held when it last stopped were put back"));
	d->recovered_self = true;
	fill(d);
}

static json_t *beat_doc(struct daemon *d)
{
	char ts[64];

	iso8601_ms(wall_ms(), ts);
	return json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:s}", "executor_id", d->cfg->executor_id, "host",
			 d->host, "pid", (int)getpid(), "slots_busy", supervise_busy(d->jobs), "slots_total", (int)d->cfg->concurrency,
			 "ts", ts, "state", d->draining ? "draining" : "running", "token", queue_token(d->queue));
}

/* The Redis half of a heartbeat: our lease, a sweep of lapsed executors,
 * promotion of due retries and the queue depths. */
static void redis_beat(struct daemon *d, json_t *doc)
{
	char *text = json_dumps(doc, JSON_COMPACT);

	/* After an outage every heartbeat key may have lapsed, ours and the live
	 * executors' alike: sweep only once they have had a lease to come back. */
	if (text && queue_up(d->queue) && d->id_claimed)
		queue_beat(d->queue, text, wall_ms(), now_ms() - d->redis_up_at >= 3 * d->cfg->heartbeat_ms, on_promoted,
			   d);
	free(text);
}

static void on_queue_state(void *arg, bool up)
{
	struct daemon *d = arg;

	metrics_set(d->metrics, "redis_up", up);
	if (!up)
		return;
	metrics_info(d->metrics, "redis_master", queue_master(d->queue));
	d->redis_up_at = now_ms();
	first_heartbeat_when_connected(d);
	/* The id first: until its lease is ours, our processing list may be a
	 * live daemon's with the same id, not ours to put back. */
	if (!d->id_claimed) {
		claim_id(d);
		return;
	}
	/* Renew our lease before anything is claimed: the outage may have let it
	 * lapse, and a live executor's jobs must not look abandoned.  The beat
	 * also promotes due retries.  (One connection: it runs before the claim.) */
	{
		json_t *doc = beat_doc(d);

		redis_beat(d, doc);
		json_decref(doc);
	}
	fill(d);
}

/* The PostgreSQL half: the executors row operators and the liveness check read. */
static void store_beat(struct daemon *d)
{
	char busy[16], total[16], pid[16];
	const char *p[8];

	/* Heartbeat rows are not worth queueing behind an outage: skip while down.
	 * Nor is the row ours to write before the id is. */
	if (!d->id_claimed || !store_up(d->store) || store_pending(d->store) >= 64)
		return;
	snprintf(busy, sizeof(busy), "%d", supervise_busy(d->jobs));
	snprintf(total, sizeof(total), "%ld", d->cfg->concurrency);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	p[0] = d->cfg->executor_id;
	p[1] = d->host;
	p[2] = pid;
	p[3] = TASKEXEC_VERSION;
	p[4] = total;
	p[5] = busy;
	p[6] = d->draining ? "draining" : "running";
	store_query(d->store,
		    "INSERT INTO taskexec.executors (executor_id, host, pid, version, started_at, "
		    "last_heartbeat, slots_total, slots_busy, state) VALUES ($1, $2, $3::int, $4, now(), now(), "
		    "$5::int, $6::int, $7) ON CONFLICT (executor_id) DO UPDATE SET host = $2, pid = $3::int, "
		    "version = $4, last_heartbeat = now(), slots_total = $5::int, slots_busy = $6::int, state = $7",
		    7, p, NULL, NULL);
}

static void on_cancel(void *arg, const char *job_id);

static void on_cancel_rows(void *arg, PGresult *res, const char *refused)
{
	if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
		return;
	for (int i = 0; i < PQntuples(res); i++)
		on_cancel(arg, PQgetvalue(res, i, 0));
}

/* A cancel is published once; a daemon that was reconnecting to Redis, or
 * had not started the attempt yet, misses it.  The flag in the jobs row
 * stays: look for it every heartbeat while jobs run here. */
static void check_cancels(struct daemon *d)
{
	const char *p[1] = { d->cfg->executor_id };

	if (!supervise_busy(d->jobs) || !store_up(d->store) || store_pending(d->store) >= 64)
		return;
	store_query(d->store,
		    "SELECT job_id FROM taskexec.jobs WHERE executor_id = $1 AND status = 'RUNNING' "
		    "AND cancel_requested",
		    1, p, on_cancel_rows, d);
}

static void reconcile_switch(struct daemon *d);
static void reconcile_own(struct daemon *d);

static void on_store_state(void *arg, bool up)
{
	struct daemon *d = arg;

	if (!up)
		return;
	first_heartbeat_when_connected(arg);
	if (metrics_info(d->metrics, "postgres_primary", store_server(d->store)))
		metrics_count(d->metrics, "postgres_failovers_total");
	/* The executors row at once, not an interval later: operators and the
	 * liveness check of claim() look for it. */
	store_beat(arg);
	fill(arg);
	/* Back after an outage or on a promoted standby: what the old primary
	 * had not replicated is looked for now. */
	if (d->pg_seen) {
		reconcile_own(d);
		reconcile_switch(d);
	}
	d->pg_seen = true;
}

static void on_cancel(void *arg, const char *job_id)
{
	supervise_cancel(((struct daemon *)arg)->jobs, job_id);
}

/* A new Redis master: the old one's unreplicated writes may be gone.  A
 * lost acknowledgement or move to the delayed set leaves an entry in our
 * processing list that nothing here runs: put them all back (a copy of a
 * job still running here is only delayed by its claim, never run twice);
 * a lost enqueue or claim is what the sweep finds. */
static void on_queue_switched(void *arg, const char *master)
{
	struct daemon *d = arg;

	metrics_count(d->metrics, "redis_failovers_total");
	if (d->id_claimed)
		queue_recover(d->queue, d->cfg->executor_id, true, on_recovered_self, d);
	reconcile_switch(d);
}

static const struct queue_events queue_events = { on_woken, on_cancel, on_queue_state, on_queue_switched };

/* ---- reconciliation ----------------------------------------------------------------
 *
 * Redis may lose what PostgreSQL holds: a restart without persistence, a
 * failover that dropped the last writes.  Every RECONCILE_BEATS heartbeats
 * one executor (a lock in Redis) reads the QUEUED rows older than that
 * period (and RUNNING rows of executors silent that long), oldest first,
 * and pushes again those Redis has nowhere; a second copy would be
 * harmless anyway, as the claim runs a job once. */

#define RECONCILE_BEATS 10
#define RECONCILE_ROWS "100"

static void on_reconciled(void *arg, redisReply *reply)
{
	struct daemon *d = arg;
	json_t *ids;

	if (!reply || reply->type != REDIS_REPLY_ARRAY || !reply->elements || !d->reconcile_ids)
		goto out;
	ids = json_array();
	for (size_t i = 0; i < reply->elements; i++) {
		long long k = reply->element[i]->integer;

		if (reply->element[i]->type == REDIS_REPLY_INTEGER && k >= 1 && k <= d->reconcile_n)
			json_array_append_new(ids, json_string(d->reconcile_ids[k - 1]));
	}
	for (size_t i = 0; i < reply->elements; i++)
		metrics_count(d->metrics, "reconciled_total");
	log_json(LOG_WARN, "queue.reconciled", json_pack("{s:I, s:o}", "jobs", (json_int_t)reply->elements,
							  "job_ids", ids));
out:
	strv_free(d->reconcile_ids);
	d->reconcile_ids = NULL;
}

static void on_queued_rows(void *arg, PGresult *res, const char *refused)
{
	struct daemon *d = arg;
	int n = res ? PQntuples(res) : 0;
	char **entries;

	if (!n || d->reconcile_ids || !queue_up(d->queue))
		return;
	entries = xcalloc((size_t)n + 1, sizeof(char *));
	d->reconcile_ids = xcalloc((size_t)n + 1, sizeof(char *));
	d->reconcile_n = n;
	for (int i = 0; i < n; i++) {
		d->reconcile_ids[i] = xstrdup(PQgetvalue(res, i, 0));
		entries[i] = xasprintf("%s|%s", PQgetvalue(res, i, 1), PQgetvalue(res, i, 2));
	}
	if (queue_reconcile(d->queue, entries, n, on_reconciled, d) < 0) {
		strv_free(d->reconcile_ids);
		d->reconcile_ids = NULL;
	}
	strv_free(entries);
}

/* SWITCHED: the sweep right after a failover (reconcile_switch), which looks
 * at every QUEUED row, newest first: the writes a failover loses are the last
 * ones.  Otherwise the periodic sweep, of rows older than its period. */
static void reconcile_rows(struct daemon *d, bool switched)
{
	char age[32], lapse[32];
	const char *p[] = { age, lapse, switched ? "1" : "0" };

	snprintf(age, sizeof(age), "%lld", switched ? 0LL : (long long)(RECONCILE_BEATS * d->cfg->heartbeat_ms));
	snprintf(lapse, sizeof(lapse), "%lld", (long long)(RECONCILE_BEATS * d->cfg->heartbeat_ms));
	/* QUEUED rows, and RUNNING rows whose executor stopped heartbeating:
	 * if Redis lost that executor's processing list too, nothing else
	 * would ever put them back. */
	store_query(d->store,
		    "SELECT job_id, priority, payload FROM taskexec.jobs j WHERE payload IS NOT NULL AND ("
		    "(status = 'QUEUED' AND queued_at < now() - $1::bigint * interval '1 millisecond' "
		    "AND (next_attempt_at IS NULL OR next_attempt_at < now() - $1::bigint * interval '1 millisecond')) "
		    "OR (status = 'RUNNING' AND NOT EXISTS (SELECT 1 FROM taskexec.executors e "
		    "WHERE e.executor_id = j.executor_id "
		    "AND e.last_heartbeat > now() - $2::bigint * interval '1 millisecond'))) "
		    "ORDER BY CASE WHEN $3::boolean THEN -extract(epoch FROM queued_at) "
		    "ELSE extract(epoch FROM queued_at) END LIMIT " RECONCILE_ROWS,
		    3, p, on_queued_rows, d);
}

static void on_reconcile_lock(void *arg, redisReply *reply)
{
	struct daemon *d = arg;

	if (!reply || reply->type != REDIS_REPLY_STATUS || !store_up(d->store))
		return;         /* another executor reconciles this period */
	reconcile_rows(d, false);
}

static void on_switch_lock(void *arg, redisReply *reply)
{
	struct daemon *d = arg;

	if (!reply)
		return;         /* Redis went again: tried at the next heartbeat */
	d->switch_sweep = false;
	if (reply->type == REDIS_REPLY_STATUS && store_up(d->store))
		reconcile_rows(d, true);
}

/* A failover (a new Redis master, a PostgreSQL reconnect) may have lost the
 * last writes of either side: sweep now, not a period later.  Of the daemons
 * that see the same switch, one sweeps (a lock of one heartbeat). */
static void reconcile_switch(struct daemon *d)
{
	d->switch_sweep = true;
	if (d->draining || !queue_up(d->queue) || !store_up(d->store))
		return;         /* the heartbeat tries again */
	queue_reconcile_lock(d->queue, d->cfg->heartbeat_ms, true, on_switch_lock, d);
}

/* ---- lost outcomes ----------------------------------------------------------------
 *
 * A promoted standby may lack the old primary's last transactions: a job we
 * finished, its entry gone from Redis, is RUNNING again under our live
 * executor id, and the sweep (of silent executors) never finds it.  After
 * every PostgreSQL switch each daemon compares its own RUNNING rows with the
 * jobs it holds: a row it holds no job for lost its attempt's outcome.
 * taskexec.lost_outcome() records that attempt executor_lost and queues the
 * job again, flagged a possible duplicate; its payload is pushed again. */

static void on_lost_pushed(void *arg, redisReply *reply)
{
	struct daemon *d = arg;

	/* Not pushed (Redis went, or holds it already): the row is QUEUED with
	 * its payload, which the periodic sweep pushes. */
	if (reply && reply->type == REDIS_REPLY_ARRAY)
		for (size_t i = 0; i < reply->elements; i++)
			metrics_count(d->metrics, "reconciled_total");
}

static void on_lost_outcome(void *arg, PGresult *res, const char *refused)
{
	struct daemon *d = arg;
	const char *action;
	char *entry;

	(void)refused;
	if (!res) {
		d->own_sweep = true;    /* the next heartbeat looks again */
		return;
	}
	if (PQntuples(res) != 1)
		return;                 /* finished or claimed again meanwhile: nothing lost */
	action = PQgetvalue(res, 0, 0);
	log_json(LOG_WARN, "reconcile.lost_outcome",
		 json_pack("{s:s, s:i, s:s, s:s}", "job_id", PQgetvalue(res, 0, 3), "attempt",
			   atoi(PQgetvalue(res, 0, 4)), "action", action, "msg",
			   "the outcome of this attempt was lost in a PostgreSQL failover: recorded executor_lost"));
	if (strcmp(action, "requeue") || PQgetisnull(res, 0, 2))
		return;
	entry = xasprintf("%s|%s", PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	queue_reconcile(d->queue, &entry, 1, on_lost_pushed, d);
	free(entry);
}

static void on_own_rows(void *arg, PGresult *res, const char *refused)
{
	struct daemon *d = arg;

	(void)refused;
	if (!res) {
		d->own_sweep = true;
		return;
	}
	for (int i = 0; i < PQntuples(res); i++) {
		const char *id = PQgetvalue(res, i, 0);
		const struct policy *pol;
		char limit[24];
		const char *p[4];

		if (supervise_running(d->jobs, id))
			continue;
		/* The limit the claim would apply (3, the default, for a type
		 * without a policy: its rerun is rejected anyway). */
		pol = policy_find(&d->policies->set, PQgetvalue(res, i, 2));
		snprintf(limit, sizeof(limit), "%ld", pol ? pol->max_lost : 3L);
		p[0] = id;
		p[1] = d->cfg->executor_id;
		p[2] = PQgetvalue(res, i, 1);
		p[3] = limit;
		store_query(d->store,
			    "SELECT l.action, l.priority, l.payload, $1, $3 "
			    "FROM taskexec.lost_outcome($1, $2, $3::int, $4::int) l",
			    4, p, on_lost_outcome, d);
	}
}

/* Statements go one at a time, in order: a finish() sent before this query
 * is in its answer, and a job whose finish() comes later is still ours when
 * the answer arrives (its entry leaves Redis after the finish). */
static void reconcile_own(struct daemon *d)
{
	const char *p[1] = { d->cfg->executor_id };

	d->own_sweep = true;
	/* Until the id's lease is ours, its rows may be a live namesake's. */
	if (!d->id_claimed || !queue_up(d->queue) || !store_up(d->store))
		return;         /* the heartbeat tries again */
	d->own_sweep = false;
	store_query(d->store,
		    "SELECT job_id, attempts, task_type FROM taskexec.jobs "
		    "WHERE executor_id = $1 AND status = 'RUNNING'",
		    1, p, on_own_rows, d);
}

static void reconcile(struct daemon *d)
{
	if (d->own_sweep)
		reconcile_own(d);
	if (d->switch_sweep)
		reconcile_switch(d);
	if (d->beats++ % RECONCILE_BEATS || d->draining || !queue_up(d->queue) || !store_up(d->store))
		return;
	queue_reconcile_lock(d->queue, RECONCILE_BEATS * d->cfg->heartbeat_ms, false, on_reconcile_lock, d);
}

/* ---- heartbeat --------------------------------------------------------------------- */

static void heartbeat(struct loop *l, void *arg)
{
	struct daemon *d = arg;
	json_t *doc;

	if (!d->done)
		loop_timer(l, now_ms() + d->cfg->heartbeat_ms, heartbeat, d);
	doc = beat_doc(d);
	redis_beat(d, doc);
	store_beat(d);
	check_cancels(d);
	reconcile(d);
	metrics_set(d->metrics, "slots_busy", supervise_busy(d->jobs));
	metrics_set(d->metrics, "slots_total", (double)d->cfg->concurrency);
	metrics_set(d->metrics, "redis_up", queue_up(d->queue));
	metrics_set(d->metrics, "postgres_up", store_up(d->store));
	metrics_set(d->metrics, "last_heartbeat_timestamp_seconds", (double)wall_ms() / 1000.0);
	json_object_set_new(doc, "redis", json_boolean(queue_up(d->queue)));
	json_object_set_new(doc, "postgres", json_boolean(store_up(d->store)));
	{
		const struct supervise_counts *n = supervise_counts(d->jobs);

		json_object_set_new(doc, "jobs_started", json_integer((json_int_t)n->started));
		json_object_set_new(doc, "jobs_completed", json_integer((json_int_t)n->completed));
		json_object_set_new(doc, "jobs_failed", json_integer((json_int_t)n->failed));
		json_object_set_new(doc, "jobs_retried", json_integer((json_int_t)n->retried));
		json_object_set_new(doc, "jobs_rejected", json_integer((json_int_t)n->rejected));
	}
	json_object_del(doc, "executor_id");
	json_object_del(doc, "ts");
	json_object_del(doc, "token");
	/* Debug: at info, one line an interval per daemon fills the journal. */
	log_json(LOG_DEBUG, "heartbeat", doc);
}

static void on_first_beat(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	d->first_beat = NULL;
	heartbeat(l, d);
}

/* The connections start when the loop does: a heartbeat at once would say
 * Redis and PostgreSQL are down a moment after the migration reached
 * PostgreSQL.  The first one waits for both, one interval at most. */
static void first_heartbeat_when_connected(struct daemon *d)
{
	if (!d->first_beat || !queue_up(d->queue) || !store_up(d->store))
		return;
	loop_timer_cancel(d->loop, d->first_beat);
	d->first_beat = NULL;
	heartbeat(d->loop, d);
}

/* ---- signals and drain ---------------------------------------------------------------- */

/* systemd's watchdog, at half its interval, whatever the heartbeat interval. */
static void watchdog(struct loop *l, void *arg)
{
	uint64_t usec = 0;

	if (sd_watchdog_enabled(0, &usec) <= 0 || !usec)
		return;
	sd_notify(0, "WATCHDOG=1");
	loop_timer(l, now_ms() + (int64_t)(usec / 2000), watchdog, arg);
}

static void on_shutdown_timeout(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	d->shutdown_timer = NULL;
	log_msg(LOG_WARN, "shutdown.timeout", "jobs still running after TASKEXEC_SHUTDOWN_TIMEOUT; stopping them");
	supervise_stop_all(d->jobs, OUT_SHUTDOWN);
}

static void on_hard_exit(struct loop *l, void *arg)
{
	struct daemon *d = arg;

	d->hard_timer = NULL;
	log_msg(LOG_ERROR, "shutdown.forced",
		"outcomes could not be recorded in time; their entries stay in Redis for recovery");
	d->done = true;
}

static void start_drain(struct daemon *d, int sig)
{
	if (d->draining)
		return;
	d->draining = true;
	sd_notify(0, "STOPPING=1");
	log_json(LOG_INFO, "shutdown.started", json_pack("{s:s, s:i, s:I}", "signal", sigabbrev_np(sig), "running",
							  supervise_busy(d->jobs), "timeout_ms", (json_int_t)d->cfg->shutdown_ms));
	if (!supervise_busy(d->jobs) && !d->claims && supervise_idle(d->jobs)) {
		d->done = true;
		return;
	}
	d->shutdown_timer = loop_timer(d->loop, now_ms() + d->cfg->shutdown_ms, on_shutdown_timeout, d);
	d->hard_timer = loop_timer(d->loop, now_ms() + d->cfg->shutdown_ms + HARD_EXIT_GRACE_MS, on_hard_exit, d);
}

static void reload(struct daemon *d)
{
	char *err = NULL;
	struct policies *p = load_policies(d->cfg, &err);

	if (!p) {
		log_json(LOG_ERROR, "policy.reload_refused",
			 json_pack("{s:s, s:s}", "errors", err, "msg", "kept the policies already loaded"));
		free(err);
		return;
	}
	policies_unref(d->policies);
	d->policies = p;
	/* Warm servers start again from the new files (and a fresh interpreter). */
	sandbox_warm_flush(&d->sandbox, false);
	for (size_t i = 0; i < p->set.n; i++)
		metrics_task_type(d->metrics, p->set.v[i].name);
	log_json(LOG_INFO, "policy.reloaded", json_pack("{s:i}", "policies", (int)p->set.n));
}

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct daemon *d = arg;
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP)
			reload(d);
		else
			start_drain(d, (int)si.ssi_signo);
	}
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void on_flag(void *arg, redisReply *reply)
{
	*(bool *)arg = true;
}

static void on_row(void *arg, PGresult *res, const char *refused)
{
	*(bool *)arg = true;
}

static int wait_or_signal(const sigset_t *mask, int64_t ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	int s = sigtimedwait(mask, NULL, &ts);

	return s > 0 && s != SIGHUP ? s : 0;
}

int daemon_preflight(const struct config *cfg, char **errors)
{
	struct errs e = { 0 };
	struct redis_target t;
	char *err = NULL;

	/* Each on its own, so that every problem is named at once. */
	if (redis_url_parse(cfg->redis_url, &t, &err) < 0) {
		errs_add(&e, "%s", err);
		free(err);
		err = NULL;
	} else {
		redis_target_free(&t);
	}
	if (http_listen_check(cfg->http_listen, &err) < 0) {
		errs_add(&e, "%s", err);
		free(err);
		err = NULL;
	}
	{
		char *shim = xasprintf("%s/taskexec_shim.py", cfg->shim_dir);

		if (access(cfg->python, X_OK) < 0)
			errs_add(&e, "TASKEXEC_PYTHON: %s: %s", cfg->python, strerror(errno));
		if (access(shim, R_OK) < 0)
			errs_add(&e, "shim %s: %s", shim, strerror(errno));
		free(shim);
	}
	/* Settings the daemon would otherwise only trip over later: a database
	 * URL libpq cannot parse (an endless postgres.down), a key that
	 * verifies nothing (every signed job rejected). */
	{
		char *perr = NULL;
		PQconninfoOption *opts = PQconninfoParse(cfg->db_url, &perr);

		if (!opts)
			errs_add(&e, "TASKEXEC_DB_URL: %s", perr ? strtok(perr, "\n") : "cannot be parsed");
		PQconninfoFree(opts);
		PQfreemem(perr);
	}
	for (char **k = cfg->verify_keys; k && *k; k++) {
		unsigned char pk[SIGN_PUBLIC_KEY_BYTES];
		int r = sign_load_public_key(*k, pk);

		if (r == -EBADMSG)
			errs_add(&e, "TASKEXEC_VERIFY_KEYS: %s: not an Ed25519 public key "
				 "(one line of base64, as taskexec keygen writes)", *k);
		else if (r < 0)
			errs_add(&e, "TASKEXEC_VERIFY_KEYS: %s: %s", *k, strerror(-r));
	}
	if (geteuid() == 0) {
		uid_t uid;
		gid_t gid;

		if (sandbox_job_user(cfg->job_user, &uid, &gid, &err) < 0) {
			errs_add(&e, "%s", err);
			free(err);
		}
	}
	*errors = e.text;
	return e.text ? -1 : 0;
}

/* ---- what the jobs and the HTTP endpoint see of us ------------------------------------ */

static struct policies *host_policies(void *arg)
{
	return policies_ref(((struct daemon *)arg)->policies);
}

static void host_slot_freed(void *arg)
{
	daemon_slot_freed(arg);
}

static void host_retry_due(void *arg, int64_t due_ms)
{
	daemon_retry_due(arg, due_ms);
}

static void host_fault(void *arg, const char *cause)
{
	if (cause)
		daemon_fault(arg, cause);
	else
		daemon_fault_cleared(arg);
}

static const char *http_state(void *arg, json_t *body)
{
	struct daemon *d = arg;

	json_object_set_new(body, "slots_busy", json_integer(supervise_busy(d->jobs)));
	json_object_set_new(body, "slots_total", json_integer(d->cfg->concurrency));
	json_object_set_new(body, "draining", json_boolean(d->draining));
	json_object_set_new(body, "redis_master", queue_master(d->queue) ? json_string(queue_master(d->queue)) : json_null());
	json_object_set_new(body, "postgres_primary", store_server(d->store) ? json_string(store_server(d->store))
									     : json_null());
	return d->fault;
}

int daemon_run(struct config *cfg)
{
	struct daemon d = { 0 };
	char *err = NULL;
	sigset_t mask;
	int sfd = -1;
	int64_t backoff = 500;
	bool left = false, stopped_row = true;

	d.cfg = cfg;
	d.next_due_ms = -1;
	/* Our memory holds the database and Redis passwords: no process of our
	 * uid (a job, when the daemon is not root) may read /proc/PID/mem or
	 * environ, or attach to us. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		log_msg(LOG_WARN, "executor.dumpable", "cannot make the daemon non-dumpable: %s", strerror(errno));
	if (sign_init() < 0) {
		log_msg(LOG_ERROR, "sandbox.unavailable", "libsodium could not be initialised");
		return 1;
	}
	if (gethostname(d.host, sizeof(d.host)) < 0)
		strcpy(d.host, "localhost");
	d.host[sizeof(d.host) - 1] = '\0';

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (daemon_preflight(cfg, &err) < 0) {
		log_json(LOG_ERROR, "config.invalid", json_pack("{s:s}", "errors", err));
		free(err);
		return 1;
	}
	d.policies = load_policies(cfg, &err);
	if (!d.policies) {
		log_json(LOG_ERROR, "policy.invalid", json_pack("{s:s}", "errors", err));
		free(err);
		return 1;
	}
	if (sandbox_init(&d.sandbox, cfg, &err) < 0) {
		log_msg(LOG_ERROR, "sandbox.unavailable", "%s", err);
		free(err);
		policies_unref(d.policies);
		return 1;
	}
	/* The schema must be there before the first claim; until PostgreSQL
	 * answers we hold no job, so waiting here loses nothing. */
	while (store_migrate(cfg->db_url, &err) < 0) {
		int sig;

		log_msg(LOG_WARN, "postgres.down", "%s (retrying in %lld ms)", err, (long long)backoff);
		free(err);
		err = NULL;
		sig = wait_or_signal(&mask, backoff);
		if (sig) {
			log_msg(LOG_INFO, "shutdown.finished", "stopped by %s before start-up completed", sigabbrev_np(sig));
			sandbox_free(&d.sandbox);
			policies_unref(d.policies);
			return 0;
		}
		backoff = backoff < 8000 ? backoff * 2 : 10000;
	}
	{
		/* Without the loop or the signalfd on it SIGTERM would never be
		 * read: refuse to start. */
		int r = loop_new(&d.loop);

		if (r == 0) {
			sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
			r = sfd < 0 ? -errno : loop_add(d.loop, sfd, EPOLLIN, on_signal, &d);
		}
		if (r < 0) {
			log_msg(LOG_ERROR, "loop.unavailable", "cannot set up the event loop: %s", strerror(-r));
			d.exit_code = 1;
			goto out;
		}
	}
	{
		int r = log_attach(d.loop);

		if (r < 0)
			log_msg(LOG_WARN, "log.blocking",
				"cannot write standard output without blocking (%s): a slow reader will stall the daemon",
				strerror(-r));
	}
	d.metrics = metrics_new(cfg->executor_id);
	for (size_t i = 0; i < d.policies->set.n; i++)
		metrics_task_type(d.metrics, d.policies->set.v[i].name);
	d.store = store_new(d.loop, cfg->db_url, on_store_state, &d);
	d.queue = queue_new(d.loop, cfg, &queue_events, &d);
	if (!d.queue) {
		d.exit_code = 1;
		goto out;
	}
	{
		struct supervise_host sh = { cfg, d.loop, d.queue, d.store, &d.sandbox, d.metrics, d.host,
					     host_policies, host_slot_freed, host_retry_due, host_fault, &d };

		d.jobs = supervisor_new(&sh);
	}
	{
		struct http_host hh = { cfg->executor_id, d.loop, d.queue, d.store, d.metrics, http_state, &d };

		d.http = http_new(&hh, cfg->http_listen, &err);
	}
	if (err) {
		log_msg(LOG_ERROR, "http.unavailable", "%s", err);
		free(err);
		d.exit_code = 1;
		goto out;
	}
	log_json(LOG_INFO, "executor.started",
		 json_pack("{s:s, s:s, s:i, s:I, s:i, s:b}", "version", TASKEXEC_VERSION, "host", d.host, "pid",
			   (int)getpid(), "concurrency", (json_int_t)cfg->concurrency, "landlock_abi",
			   d.sandbox.landlock_abi, "drops_uid", d.sandbox.drop_uid));
	d.first_beat = loop_timer(d.loop, now_ms() + cfg->heartbeat_ms, on_first_beat, &d);
	first_heartbeat_when_connected(&d);
	sd_notify(0, "READY=1\nSTATUS=claiming jobs");
	watchdog(d.loop, &d);
	while (!d.done)
		loop_run_once(d.loop, -1);

	/* Leave cleanly: put back anything still in our processing list (a claim
	 * that raced the drain, an outcome that could not be recorded) and drop
	 * our heartbeat, so nobody waits for it to lapse. */
	if (d.id_timer)
		loop_timer_cancel(d.loop, d.id_timer);
	if (d.first_beat)
		loop_timer_cancel(d.loop, d.first_beat);
	if (store_up(d.store) && d.id_claimed) {
		const char *p[] = { cfg->executor_id };

		stopped_row = false;
		store_query(d.store, "UPDATE taskexec.executors SET state = 'stopped', slots_busy = 0, "
			    "last_heartbeat = now() WHERE executor_id = $1", 1, p, on_row, &stopped_row);
	}
	if (!queue_up(d.queue) || !d.id_claimed || queue_leave(d.queue, on_flag, &left) < 0)
		left = true;
	{
		int64_t until = now_ms() + 2000;

		while ((!left || !stopped_row) && now_ms() < until)
			loop_run_once(d.loop, 100);
	}
	log_json(LOG_INFO, "shutdown.finished",
		 json_pack("{s:I, s:I, s:I}", "jobs_completed", (json_int_t)supervise_counts(d.jobs)->completed,
			   "jobs_failed", (json_int_t)supervise_counts(d.jobs)->failed, "jobs_retried",
			   (json_int_t)supervise_counts(d.jobs)->retried));
out:
	supervisor_free(d.jobs);
	if (d.fault_timer)
		loop_timer_cancel(d.loop, d.fault_timer);
	free(d.fault);
	strv_free(d.reconcile_ids);
	http_free(d.http);
	queue_free(d.queue);
	store_free(d.store);
	log_detach(LOG_EXIT_FLUSH_MS);
	loop_free(d.loop);
	metrics_free(d.metrics);
	free(d.id_seen);
	free(d.bad_keys);
	close_nointr(sfd);
	sandbox_free(&d.sandbox);
	policies_unref(d.policies);
	return d.exit_code;
}
