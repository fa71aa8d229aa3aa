/* SPDX-License-Identifier: ISC */
/* supervise — the life of one claimed job, as one state machine (see supervise.h). */
#include "supervise.h"
#include "attempt.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "sign.h"
#include "util.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The jobs of one daemon. */
struct supervisor {
	struct supervise_host h;
	struct job_run *jobs;           /* every job until its entry has left {P}:processing */
	int busy;                       /* jobs holding a slot */
	int64_t claim_token;            /* numbers this daemon's claims */
	struct supervise_counts counts;
};

/* The life of a job, s6-style: each state runs one action (step()); the
 * action's answer is an event; this table alone says where an event leads.
 * A step whose Redis or PostgreSQL call fails for the connection stays in
 * its state and runs again after a pause (later()); every action is safe to
 * repeat.
 *
 *   state       action                  event        next
 *   VALIDATE    parse, verify, policy   VALID        CLAIM_DB
 *                                       INVALID      REJECT_DB
 *   REJECT_DB   taskexec.reject()       STORED       ACK
 *                                       REFUSED      REJECT_DB (without the payload's data)
 *   CLAIM_DB    taskexec.claim()        RUN          RUN
 *                                       NOT_DUE      DELAY     (a retry not due, a live copy's lease)
 *                                       SKIP         ACK       (terminal, cancelled, duplicate, conflict)
 *                                       REFUSED      REJECT_DB
 *   RUN         one sandboxed attempt   ENDED        RECORD    (also when it could not start)
 *   RECORD      taskexec.finish()       TERMINAL     ACK       (COMPLETED or FAILED)
 *                                       LATE         ACK       (not ours any more)
 *                                       RETRY        DELAY
 *                                       REQUEUE      REQUEUE   (drain, executor fault)
 *                                       REFUSED      RECORD    (without the job's data)
 *   ACK         LREM processing         TOOK         DONE
 *   DELAY       processing -> delayed   TOOK         DONE
 *   REQUEUE     processing -> queue     TOOK         DONE
 */
enum jstate { J_NONE, J_VALIDATE, J_REJECT_DB, J_CLAIM_DB, J_RUN, J_RECORD, J_ACK, J_DELAY, J_REQUEUE, J_DONE,
	      J_N };
enum jevent { E_VALID, E_INVALID, E_STORED, E_RUN, E_NOT_DUE, E_SKIP, E_REFUSED, E_ENDED, E_TERMINAL, E_LATE,
	      E_RETRY, E_REQUEUE, E_TOOK, E_N };

static const enum jstate transitions[J_N][E_N] = {
	[J_VALIDATE] = { [E_VALID] = J_CLAIM_DB, [E_INVALID] = J_REJECT_DB },
	[J_REJECT_DB] = { [E_STORED] = J_ACK, [E_REFUSED] = J_REJECT_DB },
	[J_CLAIM_DB] = { [E_RUN] = J_RUN, [E_NOT_DUE] = J_DELAY, [E_SKIP] = J_ACK, [E_REFUSED] = J_REJECT_DB },
	[J_RUN] = { [E_ENDED] = J_RECORD },
	[J_RECORD] = { [E_TERMINAL] = J_ACK, [E_LATE] = J_ACK, [E_RETRY] = J_DELAY, [E_REQUEUE] = J_REQUEUE,
		       [E_REFUSED] = J_RECORD },
	[J_ACK] = { [E_TOOK] = J_DONE },
	[J_DELAY] = { [E_TOOK] = J_DONE },
	[J_REQUEUE] = { [E_TOOK] = J_DONE },
};
static const char *const state_names[] = { "none", "validate", "reject_db", "claim_db", "run", "record",
					   "ack", "delay", "requeue", "done" };

struct job_run {
	struct supervisor *sv;
	struct job_run *next;
	enum jstate state;
	char *entry;
	size_t entry_len;
	struct job job;
	char *job_id;                   /* the job's id, or invalid-<hash> */
	char *reject_msg;
	struct policies *pol;
	struct job_plan plan;
	int attempt;
	struct attempt *running;
	pid_t pid;                      /* the interpreter's, once started; for attempts.pid */
	struct outcome *outcome;
	int64_t next_at_ms;
	char token[48];
	struct timer *retry;
	int64_t retry_ms;
	int refusals;                   /* PostgreSQL refused what this job carries */
	bool slot_released;
	/* The attempt's lines on their way to taskexec.attempt_logs (see keep()). */
	json_t *logs;                   /* waiting for the next batch */
	size_t logs_bytes;
	int64_t log_seq;
	uint64_t log_stored, log_omitted_lines, log_omitted_bytes;
	struct timer *flush;
	/* The latest progress the task reported, not yet sent when dirty. */
	double progress;
	char *progress_msg;
	bool progress_dirty;
};

/* Lines go in batches, one statement each, never one per line: when this
 * many are waiting, or LOG_FLUSH_MS after the first of them.  Progress goes
 * with the next batch, at most PROGRESS_FLUSH_MS after it was reported. */
#define LOG_BATCH_LINES 256
#define LOG_BATCH_BYTES (64 * 1024)
#define LOG_FLUSH_MS 1000
#define PROGRESS_FLUSH_MS 500
#define PROGRESS_MSG_MAX 1024

/* After a refusal the step is sent again with less of the job's data: what
 * it sent, then also every other text it controls.  A refusal of the second
 * kind is the database's fault and is tried again like a lost connection. */
#define MAX_REFUSALS 2

/* A payload over the size limit is kept as this much of its start and a hash:
 * enough to see what it was, never 50 MB in a row (or in our memory). */
#define STORED_PAYLOAD_PREFIX 4096

static void step(struct job_run *jr);

/* The one place a job changes state. */
static void fire(struct job_run *jr, enum jevent ev)
{
	enum jstate next = transitions[jr->state][ev];

	if (next == J_NONE)
		abort();        /* an event its state cannot have: a bug here, not in the job */
	jr->state = next;
	jr->retry_ms = 0;
	step(jr);
}

static void on_retry(struct loop *l, void *arg)
{
	struct job_run *jr = arg;

	jr->retry = NULL;
	step(jr);
}

/* Redis or PostgreSQL did not take the step: try the same step again later. */
static void later(struct job_run *jr)
{
	jr->retry_ms = jr->retry_ms ? jr->retry_ms * 2 : 200;
	if (jr->retry_ms > 5000)
		jr->retry_ms = 5000;
	if (log_enabled(LOG_DEBUG))
		log_json(LOG_DEBUG, "job.step_deferred", json_pack("{s:s, s:s, s:I}", "job_id", jr->job_id,
								      "state", state_names[jr->state],
								      "retry_ms", (json_int_t)jr->retry_ms));
	jr->retry = loop_timer(jr->sv->h.loop, now_ms() + jr->retry_ms, on_retry, jr);
}

static json_t *job_fields(struct job_run *jr)
{
	json_t *f = json_pack("{s:s}", "job_id", jr->job_id);

	if (jr->attempt)
		json_object_set_new(f, "attempt", json_integer(jr->attempt));
	if (jr->job.task_type)
		json_object_set_new(f, "task_type", json_string(jr->job.task_type));
	return f;
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, p, n);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* ---- VALIDATE ---------------------------------------------------------------- */

static void validate(struct job_run *jr)
{
	struct supervisor *d = jr->sv;
	const char *prio, *payload;
	size_t plen, len;
	char *err = NULL;

	if (queue_entry_split(jr->entry, jr->entry_len, &prio, &plen, &payload, &len) < 0) {
		payload = jr->entry;
		len = jr->entry_len;
	}
	if (job_parse(payload, len, &jr->job, &err) < 0) {
		char hex[65];

		jr->job_id = job_id_of(payload, len);
		if (!jr->job_id) {
			sha256_hex(payload, len, hex);
			jr->job_id = xasprintf("invalid-%.16s", hex);
		}
		jr->reject_msg = err;
		fire(jr, E_INVALID);
		return;
	}
	jr->job_id = xstrdup(jr->job.job_id);
	if (d->h.cfg->require_signature && sign_verify(jr->job.doc, jr->job.signature, d->h.cfg->verify_keys, &err) < 0) {
		jr->reject_msg = err;
		fire(jr, E_INVALID);
		return;
	}
	jr->pol = d->h.policies(d->h.arg);
	if (job_prepare(&jr->job, d->h.cfg, &jr->pol->set, &jr->plan, &err) < 0) {
		jr->reject_msg = err;
		fire(jr, E_INVALID);
		return;
	}
	fire(jr, E_VALID);
}

/* ---- database steps ------------------------------------------------------------ */

/* PostgreSQL refused what the step carried: say so in the message the job
 * ends with, and send the step again with less (see MAX_REFUSALS). */
static bool refused_again(struct job_run *jr, const char *refused, const char *what, char **msg)
{
	char *m;

	if (!refused || jr->refusals >= MAX_REFUSALS)
		return false;
	jr->refusals++;
	m = xasprintf("%s not storable in PostgreSQL: %s", what, refused);
	metrics_count(jr->sv->h.metrics, "unstorable_total");
	log_json(LOG_WARN, "job.unstorable", json_pack("{s:s, s:s}", "job_id", jr->job_id, "error", m));
	free(*msg);
	*msg = m;
	fire(jr, E_REFUSED);
	return true;
}

static void on_rejected(void *arg, PGresult *res, const char *refused)
{
	struct job_run *jr = arg;

	if (!res) {
		if (!refused_again(jr, refused, "payload", &jr->reject_msg))
			later(jr);
		return;
	}
	jr->sv->counts.rejected++;
	metrics_job(jr->sv->h.metrics, jr->job.task_type, "rejected");
	log_json(LOG_WARN, "job.rejected", json_pack("{s:s, s:s}", "job_id", jr->job_id, "error", jr->reject_msg));
	fire(jr, E_STORED);
}

/* The payload as received, kept so `taskexec retry` can send it again
 * verbatim; one over the size limit as its start and its hash. */
static char *payload_text(const struct job_run *jr)
{
	const char *prio, *payload;
	size_t plen, len;
	char hex[65], *start, *r;

	if (queue_entry_split(jr->entry, jr->entry_len, &prio, &plen, &payload, &len) < 0) {
		payload = jr->entry;
		len = jr->entry_len;
	}
	if (len <= JOB_MAX_BYTES)
		return utf8_clean(payload, len);
	sha256_hex(payload, len, hex);
	start = utf8_clean(payload, STORED_PAYLOAD_PREFIX);
	r = xasprintf("%s\n[cut: the payload is %zu bytes; sha256 %s]", start, len, hex);
	free(start);
	return r;
}

/* Text the job controls, made storable: valid UTF-8 without NUL. */
static char *storable(const char *s)
{
	return s ? utf8_clean(s, strlen(s)) : NULL;
}

static void reject_db(struct job_run *jr)
{
	struct job *j = &jr->job;
	bool lean = jr->refusals > 0;
	char *params = j->parameters && !lean ? json_dumps(j->parameters, JSON_COMPACT) : NULL;
	char *payload = jr->refusals < MAX_REFUSALS ? payload_text(jr) : NULL;
	char *msg = storable(jr->reject_msg);
	const char *p[] = { jr->job_id, lean ? NULL : j->task_type, lean ? NULL : j->module_path,
			    lean ? NULL : j->class_name, lean ? NULL : j->method_name, params, msg, payload };

	store_query(jr->sv->h.store, "SELECT taskexec.reject($1, $2, $3, $4, $5, $6::jsonb, $7, $8)", 8, p, on_rejected,
		    jr);
	free(msg);
	free(payload);
	free(params);
}

static void on_claimed(void *arg, PGresult *res, const char *refused)
{
	struct job_run *jr = arg;
	const char *action;

	if (!res && refused) {
		/* Its parameters, as the claim stores them: reject the job instead. */
		jr->refusals = 1;
		metrics_count(jr->sv->h.metrics, "unstorable_total");
		free(jr->reject_msg);
		jr->reject_msg = xasprintf("payload not storable in PostgreSQL: %s", refused);
		fire(jr, E_REFUSED);
		return;
	}
	if (!res || PQntuples(res) != 1) {
		later(jr);
		return;
	}
	action = PQgetvalue(res, 0, 0);
	jr->attempt = atoi(PQgetvalue(res, 0, 1));
	if (!strcmp(action, "run")) {
		fire(jr, E_RUN);
	} else if (!strcmp(action, "delay")) {
		jr->next_at_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		fire(jr, E_NOT_DUE);
	} else {
		log_json(LOG_INFO, "job.skipped", json_pack("{s:s, s:s}", "job_id", jr->job_id, "reason",
							    !strcmp(action, "conflict")
							    ? "its job_id belongs to a different job that has run"
							    : "already terminal, cancelled or a duplicate"));
		fire(jr, E_SKIP);
	}
}

static void claim_db(struct job_run *jr)
{
	struct supervisor *d = jr->sv;
	struct job *j = &jr->job;
	char *params = json_dumps(j->parameters, JSON_COMPACT | JSON_SORT_KEYS);
	char retries[24], timeout[24], pid[24], alive[24], lost[24], hash[65];
	json_t *id = json_pack("{s:s, s:s, s:s?, s:s, s:O}", "t", j->task_type, "m", j->module_path, "c",
			       j->class_name, "f", j->method_name, "p", j->parameters);
	char *canon = json_dumps(id, JSON_COMPACT | JSON_SORT_KEYS);
	char *payload = payload_text(jr);
	const char *p[18];

	sha256_hex(canon, strlen(canon), hash);
	free(canon);
	json_decref(id);
	snprintf(retries, sizeof(retries), "%ld", jr->plan.max_retries);
	snprintf(timeout, sizeof(timeout), "%lld", (long long)(jr->plan.timeout_ms / 1000));
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	/* Unique to this start, not to id and pid: containers repeat both. */
	if (!jr->token[0])
		snprintf(jr->token, sizeof(jr->token), "%.16s-%.8s-%lld", d->h.cfg->executor_id,
			 queue_token(d->h.queue), (long long)++d->claim_token);
	p[0] = jr->job_id;
	p[1] = j->task_type;
	p[2] = j->module_path;
	p[3] = j->class_name;
	p[4] = j->method_name;
	p[5] = params;
	p[6] = j->idempotency_key;
	p[7] = jr->plan.priority;
	p[8] = retries;
	p[9] = timeout;
	p[10] = j->idempotency_key ? NULL : hash;
	p[11] = d->h.cfg->executor_id;
	p[12] = d->h.host;
	p[13] = pid;
	p[14] = jr->token;
	snprintf(lost, sizeof(lost), "%ld", jr->plan.policy->max_lost);
	p[15] = lost;
	p[16] = payload;
	/* An executor whose executors row was written within two heartbeats is alive. */
	snprintf(alive, sizeof(alive), "%lld", (long long)(2 * d->h.cfg->heartbeat_ms));
	p[17] = alive;
	store_query(d->h.store,
		    "SELECT action, attempt, next_at_ms FROM taskexec.claim($1, $2, $3, $4, $5, $6::jsonb, $7, $8, "
		    "$9::int, $10::int, $11, $12, $13, $14::int, $15, $16::int, $17, $18::bigint)",
		    18, p, on_claimed, jr);
	free(params);
	free(payload);
}

/* What the job sent back cannot be stored: the attempt ends as unstorable,
 * not retried (the same code sends the same thing), with the reason; the
 * second time without any text the job controls. */
static void make_storable(struct outcome *o, int refusals)
{
	o->kind = OUT_UNSTORABLE;
	o->retryable = false;
	free(o->result);
	o->result = NULL;
	if (refusals < MAX_REFUSALS)
		return;
	free(o->error_type);
	free(o->traceback);
	free(o->stdout_tail);
	free(o->stderr_tail);
	o->error_type = o->traceback = o->stdout_tail = o->stderr_tail = NULL;
}

static void on_recorded(void *arg, PGresult *res, const char *refused)
{
	struct job_run *jr = arg;
	struct supervisor *d = jr->sv;
	const char *status;
	json_t *f;

	if (!res && refused && jr->refusals < MAX_REFUSALS) {
		make_storable(jr->outcome, jr->refusals + 1);
		refused_again(jr, refused, "outcome", &jr->outcome->error);
		return;
	}
	if (!res || PQntuples(res) != 1) {
		later(jr);
		return;
	}
	status = PQgetvalue(res, 0, 0);
	if (strcmp(PQgetvalue(res, 0, 3), "t")) {
		/* Someone else owns it now (we were presumed lost): our write was
		 * refused, and nothing of it is counted. */
		f = job_fields(jr);
		json_object_set_new(f, "status", json_string(status));
		json_object_set_new(f, "outcome", json_string(outcome_name(jr->outcome->kind)));
		log_json(LOG_WARN, "job.late_outcome_ignored", f);
		fire(jr, E_LATE);
		return;
	}
	f = job_fields(jr);
	json_object_set_new(f, "status", json_string(status));
	json_object_set_new(f, "outcome", json_string(outcome_name(jr->outcome->kind)));
	if (jr->outcome->error)
		json_object_set_new(f, "error", json_string(jr->outcome->error));
	json_object_set_new(f, "duration_ms", json_integer(jr->outcome->duration_ms));
	metrics_attempt(d->h.metrics, jr->job.task_type, jr->outcome->kind, (double)jr->outcome->duration_ms / 1000.0);
	if (!strcmp(status, "COMPLETED")) {
		d->counts.completed++;
		metrics_job(d->h.metrics, jr->job.task_type, "completed");
		log_json(LOG_INFO, "job.completed", f);
		fire(jr, E_TERMINAL);
	} else if (!strcmp(status, "FAILED")) {
		d->counts.failed++;
		metrics_job(d->h.metrics, jr->job.task_type, "failed");
		log_json(LOG_WARN, "job.failed", f);
		fire(jr, E_TERMINAL);
	} else if (!strcmp(status, "QUEUED") && !PQgetisnull(res, 0, 2)) {
		d->counts.retried++;
		metrics_job(d->h.metrics, jr->job.task_type, "retried");
		jr->next_at_ms = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
		json_object_set_new(f, "next_attempt_in_ms", json_integer(jr->next_at_ms - wall_ms()));
		log_json(LOG_INFO, "job.retry_scheduled", f);
		fire(jr, E_RETRY);
	} else {
		log_json(LOG_INFO, "job.requeued", f);
		fire(jr, E_REQUEUE);
	}
}

static int64_t backoff_ms(const struct job_run *jr)
{
	const struct policy *p = jr->plan.policy;
	int64_t cap = p->backoff_base_ms;
	uint32_t r = randombytes_random();

	for (int i = 1; i < jr->attempt && cap < p->backoff_max_ms; i++)
		cap *= 2;
	if (cap > p->backoff_max_ms)
		cap = p->backoff_max_ms;
	/* full jitter: anywhere from 0 to the capped exponential */
	return cap ? (int64_t)(r % (uint64_t)(cap + 1)) : 0;
}

static void record(struct job_run *jr)
{
	struct outcome *o = jr->outcome;
	char attempt[24], exit_code[24], sig[24], cpu[24], rss[24], delay[24], pid[24];
	const char *result = o->result;
	char *error = storable(o->error), *etype = storable(o->error_type), *tb = storable(o->traceback);
	char *out = storable(o->stdout_tail), *err = storable(o->stderr_tail);
	const char *p[17];

	snprintf(attempt, sizeof(attempt), "%d", jr->attempt);
	snprintf(exit_code, sizeof(exit_code), "%d", o->exit_code);
	snprintf(sig, sizeof(sig), "%d", o->signal);
	snprintf(cpu, sizeof(cpu), "%lld", (long long)o->cpu_ms);
	snprintf(rss, sizeof(rss), "%lld", (long long)o->max_rss_kb);
	snprintf(delay, sizeof(delay), "%lld", (long long)backoff_ms(jr));
	snprintf(pid, sizeof(pid), "%d", (int)jr->pid);
	p[0] = jr->job_id;
	p[1] = attempt;
	p[2] = outcome_name(o->kind);
	p[3] = o->retryable ? "true" : "false";
	p[4] = result;
	p[5] = error;
	p[6] = etype;
	p[7] = tb;
	p[8] = o->exit_code >= 0 ? exit_code : NULL;
	p[9] = o->signal ? sig : NULL;
	p[10] = out;
	p[11] = err;
	p[12] = cpu;
	p[13] = rss;
	p[14] = o->landlock ? "true" : "false";
	p[15] = delay;
	p[16] = jr->pid > 0 ? pid : NULL;
	store_query(jr->sv->h.store,
		    "SELECT status, attempts, next_at_ms, applied FROM taskexec.finish($1, $2::int, $3, $4::boolean, "
		    "$5::jsonb, $6, $7, $8, $9::int, $10::int, $11, $12, $13::bigint, $14::bigint, $15::boolean, "
		    "$16::bigint, $17::int)",
		    17, p, on_recorded, jr);
	free(error);
	free(etype);
	free(tb);
	free(out);
	free(err);
}

/* ---- the attempt ------------------------------------------------------------------- */

static void on_flush(struct loop *l, void *arg);

static void flush_soon(struct job_run *jr, int64_t ms)
{
	if (!jr->flush)
		jr->flush = loop_timer(jr->sv->h.loop, now_ms() + ms, on_flush, jr);
}

/* Send what waits: the batch of lines (FINAL: with the counts of what was
 * left out) and the latest progress.  Replies are not awaited: a batch
 * PostgreSQL refuses is logged by store and lost, never the job's outcome,
 * and the statements run in order, so the attempt's last batch is in before
 * its finish() makes the job terminal. */
static void flush_logs(struct job_run *jr, bool final)
{
	struct store *st = jr->sv->h.store;
	char attempt[24], lines[24], bytes[24], prog[32];

	if (jr->flush) {
		loop_timer_cancel(jr->sv->h.loop, jr->flush);
		jr->flush = NULL;
	}
	/* PostgreSQL away: keep gathering (the lines are bounded, progress is
	 * one value) rather than queue a statement a second for the reconnect.
	 * The last batch is queued all the same, ahead of the finish. */
	if (!final && !store_up(st)) {
		flush_soon(jr, LOG_FLUSH_MS);
		return;
	}
	snprintf(attempt, sizeof(attempt), "%d", jr->attempt);
	if ((jr->logs && json_array_size(jr->logs)) || (final && jr->log_omitted_lines)) {
		char *batch = jr->logs ? json_dumps(jr->logs, JSON_COMPACT) : xstrdup("[]");
		const char *p[] = { jr->job_id, attempt, batch, final ? lines : NULL, final ? bytes : NULL };

		snprintf(lines, sizeof(lines), "%llu", (unsigned long long)jr->log_omitted_lines);
		snprintf(bytes, sizeof(bytes), "%llu", (unsigned long long)jr->log_omitted_bytes);
		store_query(st, "SELECT taskexec.append_logs($1, $2::int, $3::jsonb, $4::bigint, $5::bigint)", 5, p,
			    NULL, NULL);
		free(batch);
		json_array_clear(jr->logs);
		jr->logs_bytes = 0;
	}
	if (jr->progress_dirty) {
		const char *p[] = { jr->job_id, attempt, prog, jr->progress_msg };

		snprintf(prog, sizeof(prog), "%.6g", jr->progress);
		store_query(st, "SELECT taskexec.set_progress($1, $2::int, $3::real, $4)", 4, p, NULL, NULL);
		jr->progress_dirty = false;
	}
}

static void on_flush(struct loop *l, void *arg)
{
	struct job_run *jr = arg;

	jr->flush = NULL;
	flush_logs(jr, false);
}

/* One line for taskexec.attempt_logs, while the attempt's share lasts;
 * after that, as in attempt.c, every further line is only counted, so what
 * is stored is a prefix of what the task wrote. */
static void keep(struct job_run *jr, const char *stream, const char *level, const char *logger, const char *text,
		 size_t len)
{
	char *clean;

	if (jr->log_omitted_lines || len > ATTEMPT_LOG_STORED_BYTES - jr->log_stored) {
		jr->log_omitted_lines++;
		jr->log_omitted_bytes += len;
		return;
	}
	jr->log_stored += len;
	if (!jr->logs)
		jr->logs = json_array();
	clean = utf8_clean(text, len);
	json_array_append_new(jr->logs, json_pack("[I, I, s, s?, s?, s]", (json_int_t)jr->log_seq++,
						  (json_int_t)wall_ms(), stream, level, logger, clean));
	free(clean);
	jr->logs_bytes += len;
	if (json_array_size(jr->logs) >= LOG_BATCH_LINES || jr->logs_bytes >= LOG_BATCH_BYTES)
		flush_logs(jr, false);
	else
		flush_soon(jr, LOG_FLUSH_MS);
}

static void on_line(void *ctx, int stream, const char *line, size_t len)
{
	struct job_run *jr = ctx;
	char *clean;
	json_t *f;

	keep(jr, stream == PROC_STDOUT ? "stdout" : "stderr", NULL, NULL, line, len);
	if (!log_enabled(LOG_INFO))
		return;
	clean = utf8_clean(line, len);
	f = job_fields(jr);
	json_object_set_new(f, "stream", json_string(stream == PROC_STDOUT ? "stdout" : "stderr"));
	json_object_set_new(f, "line", json_string(clean));
	log_json(LOG_INFO, "job.output", f);
	free(clean);
}

/* A progress record: only the latest counts, sent within PROGRESS_FLUSH_MS.
 * taskexec_task.progress() validates and throttles; a task that writes fd 4
 * itself gets no further than a record ignored. */
static void take_progress(struct job_run *jr, json_t *rec)
{
	json_t *v = json_object_get(rec, "progress"), *m = json_object_get(rec, "msg");
	double x = json_number_value(v);

	if (!json_is_number(v) || !(x >= 0.0 && x <= 1.0) || (m && !json_is_null(m) && !json_is_string(m)))
		return;
	jr->progress = x;
	free(jr->progress_msg);
	jr->progress_msg = json_is_string(m) ? utf8_clean(json_string_value(m),
							  utf8_prefix(json_string_value(m), PROGRESS_MSG_MAX))
					     : NULL;
	jr->progress_dirty = true;
	flush_soon(jr, PROGRESS_FLUSH_MS);
}

static void on_event(void *ctx, const char *line, size_t len)
{
	struct job_run *jr = ctx;
	json_t *rec = json_loadb(line, len, 0, NULL), *f;

	if (json_is_object(rec) && json_object_get(rec, "progress")) {
		take_progress(jr, rec);
		json_decref(rec);
		return;
	}
	if (json_is_object(rec) && json_is_string(json_object_get(rec, "msg"))) {
		const char *msg = json_string_value(json_object_get(rec, "msg"));
		const char *exc = json_string_value(json_object_get(rec, "exc"));
		char *text = exc ? xasprintf("%s\n%s", msg, exc) : NULL;

		keep(jr, "log", json_string_value(json_object_get(rec, "level")),
		     json_string_value(json_object_get(rec, "logger")), text ? text : msg, strlen(text ? text : msg));
		free(text);
	} else {
		keep(jr, "log", NULL, NULL, line, len);
	}
	if (!log_enabled(LOG_INFO)) {
		json_decref(rec);
		return;
	}
	f = job_fields(jr);
	if (json_is_object(rec)) {
		json_object_set(f, "task_level", json_object_get(rec, "level"));
		json_object_set(f, "logger", json_object_get(rec, "logger"));
		json_object_set(f, "msg", json_object_get(rec, "msg"));
		if (json_object_get(rec, "exc"))
			json_object_set(f, "exc", json_object_get(rec, "exc"));
	} else {
		char *clean = utf8_clean(line, len);

		json_object_set_new(f, "msg", json_string(clean));
		free(clean);
	}
	json_decref(rec);
	log_json(LOG_INFO, "job.log", f);
}

static void on_done(void *ctx, struct outcome *o)
{
	struct job_run *jr = ctx;

	if (o->suppressed_lines) {
		json_t *f = job_fields(jr);

		json_object_set_new(f, "lines", json_integer((json_int_t)o->suppressed_lines));
		json_object_set_new(f, "bytes", json_integer((json_int_t)o->suppressed_bytes));
		json_object_set_new(f, "output_bytes", json_integer((json_int_t)jr->plan.policy->output_bytes));
		log_json(LOG_WARN, "job.output_truncated", f);
	}
	jr->running = NULL;
	jr->outcome = o;
	jr->log_omitted_lines += o->suppressed_lines;
	jr->log_omitted_bytes += o->suppressed_bytes;
	flush_logs(jr, true);
	/* A launch that failed in the child (its namespaces, mounts, uid, the
	 * filter) is ours too; any other end means an attempt ran. */
	jr->sv->h.fault(jr->sv->h.arg, o->kind == OUT_EXECUTOR_FAULT ? o->error : NULL);
	fire(jr, E_ENDED);
}

static const struct attempt_ops ops = { .line = on_line, .event = on_event, .done = on_done, .cap_output = true };

static void run(struct job_run *jr)
{
	struct supervisor *d = jr->sv;
	struct launch launch;
	char *envelope, *err = NULL;
	size_t len;
	json_t *f;

	envelope = job_envelope(&jr->job, jr->attempt, d->h.cfg, jr->plan.policy, &len);
	launch = (struct launch){ .policy = jr->plan.policy, .roots = d->h.cfg->tasks_path,
				  .packages = d->h.cfg->allowed_modules, .input = envelope,
				  .input_len = len, .job_id = jr->job_id };
	d->counts.started++;
	metrics_job(d->h.metrics, jr->job.task_type, "started");
	{
		const char *enq = json_string_value(json_object_get(jr->job.doc, "enqueued_at"));
		int64_t at;

		if (jr->attempt == 1 && enq && parse_iso8601_ms(enq, &at) == 0)
			metrics_queue_latency(d->h.metrics, (double)(wall_ms() - at) / 1000.0);
	}
	jr->pid = 0;
	jr->running = attempt_start(d->h.loop, d->h.sandbox, &launch, jr->plan.timeout_ms, d->h.cfg->result_max, &ops,
				    jr, &err);
	free(envelope);
	if (!jr->running) {
		/* Ours, not the job's: recorded, uncharged, back to its queue. */
		jr->outcome = outcome_new(OUT_EXECUTOR_FAULT, NULL);
		jr->outcome->error = xasprintf("launch failed: %s", err);
		jr->outcome->retryable = true;
		d->h.fault(d->h.arg, jr->outcome->error);
		free(err);
		fire(jr, E_ENDED);
		return;
	}
	jr->pid = attempt_pid(jr->running);
	f = job_fields(jr);
	json_object_set_new(f, "pid", json_integer(jr->pid));
	json_object_set_new(f, "module_path", json_string(jr->job.module_path));
	log_json(LOG_INFO, "job.started", f);
}

/* ---- Redis steps --------------------------------------------------------------------- */

static void on_acked(void *arg, redisReply *reply)
{
	struct job_run *jr = arg;

	if (!reply) {
		later(jr);
		return;
	}
	if (jr->state == J_DELAY)
		jr->sv->h.retry_due(jr->sv->h.arg, jr->next_at_ms);
	fire(jr, E_TOOK);
}

static void finish_job(struct job_run *jr)
{
	struct supervisor *d = jr->sv;

	for (struct job_run **p = &d->jobs; *p; p = &(*p)->next)
		if (*p == jr) {
			*p = jr->next;
			break;
		}
	if (!jr->slot_released)
		d->busy--;
	if (jr->flush)
		loop_timer_cancel(d->h.loop, jr->flush);
	json_decref(jr->logs);
	free(jr->progress_msg);
	if (jr->pol)
		policies_unref(jr->pol);
	job_free(&jr->job);
	outcome_free(jr->outcome);
	free(jr->job_id);
	free(jr->reject_msg);
	free(jr->entry);
	free(jr);
	d->h.slot_freed(d->h.arg);
}

static void step(struct job_run *jr)
{
	struct queue *q = jr->sv->h.queue;
	int r = 0;

	switch (jr->state) {
	case J_VALIDATE:
		validate(jr);
		return;
	case J_REJECT_DB:
		reject_db(jr);
		return;
	case J_CLAIM_DB:
		claim_db(jr);
		return;
	case J_RUN:
		run(jr);
		return;
	case J_RECORD:
		record(jr);
		return;
	case J_ACK:
		r = queue_ack(q, jr->entry, jr->entry_len, on_acked, jr);
		break;
	case J_DELAY:
		r = queue_delay(q, jr->entry, jr->entry_len, jr->next_at_ms, on_acked, jr);
		break;
	case J_REQUEUE:
		r = queue_requeue(q, jr->entry, jr->entry_len, on_acked, jr);
		break;
	case J_DONE:
		finish_job(jr);
		return;
	case J_NONE:
	case J_N:
		abort();
	}
	if (r < 0) {
		later(jr);
		return;
	}
	/* The outcome is recorded and the interpreter gone: the slot is free.
	 * Claiming now puts the next claim on the wire right behind this
	 * command, one write and one reply read for both.  The entry still
	 * leaves Redis only once this command has run. */
	if (!jr->slot_released) {
		jr->slot_released = true;
		jr->sv->busy--;
		jr->sv->h.slot_freed(jr->sv->h.arg);
	}
}

void supervise_start(struct supervisor *d, const char *entry, size_t len)
{
	struct job_run *jr = xcalloc(1, sizeof(*jr));

	jr->sv = d;
	jr->entry = xmalloc(len + 1);
	memcpy(jr->entry, entry, len);
	jr->entry[len] = '\0';
	jr->entry_len = len;
	jr->next = d->jobs;
	d->jobs = jr;
	d->busy++;
	jr->state = J_VALIDATE;
	step(jr);
}

void supervise_cancel(struct supervisor *d, const char *job_id)
{
	for (struct job_run *jr = d->jobs; jr; jr = jr->next)
		if (jr->running && jr->job_id && !strcmp(jr->job_id, job_id)) {
			log_json(LOG_INFO, "job.cancelling", job_fields(jr));
			attempt_stop(jr->running, OUT_CANCELLED);
		}
}

void supervise_stop_all(struct supervisor *d, enum outcome_kind why)
{
	for (struct job_run *jr = d->jobs; jr; jr = jr->next)
		if (jr->running)
			attempt_stop(jr->running, why);
}

struct supervisor *supervisor_new(const struct supervise_host *h)
{
	struct supervisor *s = xcalloc(1, sizeof(*s));

	s->h = *h;
	return s;
}

void supervisor_free(struct supervisor *s)
{
	free(s);
}

int supervise_busy(const struct supervisor *s)
{
	return s->busy;
}

bool supervise_running(const struct supervisor *s, const char *job_id)
{
	for (const struct job_run *jr = s->jobs; jr; jr = jr->next)
		if (jr->job_id && !strcmp(jr->job_id, job_id))
			return true;
	return false;
}

bool supervise_idle(const struct supervisor *s)
{
	return !s->jobs;
}

const struct supervise_counts *supervise_counts(const struct supervisor *s)
{
	return &s->counts;
}
