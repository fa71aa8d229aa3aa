/* SPDX-License-Identifier: ISC */
/* queue — the Redis side (taskexec-protocol(7)): claim, acknowledge, delay,
 * requeue, heartbeat and recovery, all on async connections in the event loop. */
#ifndef TASKEXEC_QUEUE_H
#define TASKEXEC_QUEUE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "loop.h"

struct queue;

struct queue_events {
	/* The blocking wait returned: marker = a producer (or a recovery) touched
	 * the wake marker; false after a timeout or a (re)connect. */
	void (*woken)(void *arg, bool marker);
	void (*cancel)(void *arg, const char *job_id);  /* `taskexec cancel` of a running job */
	void (*state)(void *arg, bool up);              /* the command connection came or went */
	/* The command connection is up on a new master (a Sentinel failover):
	 * writes the old one had not replicated may be gone. */
	void (*switched)(void *arg, const char *master);
};

/* Replies: NULL when the connection failed; the step should be tried again. */
typedef void (*queue_cb)(void *arg, redisReply *reply);

struct queue *queue_new(struct loop *l, const struct config *c, const struct queue_events *ev, void *arg);
void queue_free(struct queue *q);
bool queue_up(const struct queue *q);
/* While a connection is not up: the last failure logged (no password in
 * it), e.g. "Redis: authentication failed …"; else NULL. */
const char *queue_last_error(const struct queue *q);

/* Move the oldest job of the highest non-empty priority into our processing
 * list; the reply is the entry "<priority>|<payload>" or nil. */
int queue_claim(struct queue *q, queue_cb cb, void *arg);
/* Block (bounded) until a producer touches the wake marker. */
void queue_wait(struct queue *q, int64_t timeout_ms);
/* Drop an entry from our processing list: its outcome is in the database. */
int queue_ack(struct queue *q, const char *entry, size_t len, queue_cb cb, void *arg);
/* Drop it and park it in the delayed set until due_ms (wall clock). */
int queue_delay(struct queue *q, const char *entry, size_t len, int64_t due_ms, queue_cb cb, void *arg);
/* Drop it and put it back at the head of its queue (shutdown). */
int queue_requeue(struct queue *q, const char *entry, size_t len, queue_cb cb, void *arg);
/* Put every entry of EXECUTOR's processing list back at the head of its queue
 * (only when its heartbeat lapsed; with force, also while the heartbeat is
 * our own lease, never while another daemon's). */
int queue_recover(struct queue *q, const char *executor, bool force, queue_cb cb, void *arg);
/* Move due retries to their queues; reply: [next due time in ms or -1,
 * depth high, normal, low, delayed, entries moved to {P}:garbage, [keys of
 * the wrong type]]. */
int queue_promote(struct queue *q, int64_t now_ms, queue_cb cb, void *arg);
/* The heartbeat in one script: refresh our key and membership, recover
 * executors whose heartbeat lapsed (when may_sweep, and only one executor
 * per interval), promote due retries.  Reply: [entries recovered, then as
 * queue_promote]; or, when another daemon holds our executor id's lease, a
 * string: that lease.  DOC must carry "token": queue_token(). */
int queue_beat(struct queue *q, const char *doc, int64_t now_ms, bool may_sweep, queue_cb cb, void *arg);
/* The reconciliation sweep: one executor per period takes the lock (reply
 * OK, else nil), then sends the QUEUED rows PostgreSQL holds as entries
 * "<priority>|<payload>"; those Redis has nowhere are pushed again.  SWITCHED
 * takes the lock of the sweep after a failover ({P}:reconcile:switch) instead.  Reply:
 * the 1-based indices of the entries pushed. */
int queue_reconcile_lock(struct queue *q, int64_t period_ms, bool switched, queue_cb cb, void *arg);
int queue_reconcile(struct queue *q, char *const *entries, int n, queue_cb cb, void *arg);
/* Take the lease on our executor id ({P}:heartbeat:<id>) unless another
 * daemon holds it.  Reply: integer 1 when it is ours, else the string value
 * of the lease that is not. */
int queue_claim_id(struct queue *q, const char *doc, queue_cb cb, void *arg);
/* Random for each start: whose lease {P}:heartbeat:<id> is. */
const char *queue_token(const struct queue *q);
int queue_ping(struct queue *q, queue_cb cb, void *arg);
/* Clean exit: put back our processing list, remove our heartbeat and
 * membership, all only while the lease is ours.  Reply: entries put back. */
int queue_leave(struct queue *q, queue_cb cb, void *arg);

/* Split "<priority>|<payload>". */
int queue_entry_split(const char *entry, size_t len, const char **ret_prio, size_t *ret_prio_len,
		      const char **ret_payload, size_t *ret_payload_len);

/* URL parsing shared with the command-line tool.  redis+sentinel:// fills
 * master_name and the sentinel list; host and port are then the master the
 * sentinels named last (NULL until one did). */
struct redis_target {
	char *host, *path, *user, *password;
	int port, db;
	char *master_name;                      /* redis+sentinel:// only */
	char **sentinel_hosts;
	int *sentinel_ports, n_sentinels;
	char *sentinel_user, *sentinel_password;
};
int redis_url_parse(const char *url, struct redis_target *ret, char **ret_err);
void redis_target_free(struct redis_target *t);
/* Ask the sentinels in turn (blocking, each within TV) for T's master and
 * store it in t->host/t->port: 0, or -EHOSTUNREACH with the one-line reason
 * (no password in it) in *ret_err. */
int redis_sentinel_resolve(struct redis_target *t, struct timeval tv, char **ret_err);
/* A blocking connection to the master T names (through its sentinels for
 * redis+sentinel://), handshake done: the context, or NULL with the reason. */
redisContext *redis_connect_blocking(struct redis_target *t, struct timeval tv, char **ret_err);
/* "host:port" (or the socket path) of the master in use; NULL before one is known. */
const char *queue_master(const struct queue *q);

/* What every connection sends first, daemon and command-line tool alike:
 * AUTH when the URL carries a password, SELECT when it names a database
 * other than 0, then PING, so that a Redis that wants a password we lack
 * says so before any real command; through Sentinel, ROLE last, so that a
 * replica the sentinels still took for the master is never written to. */
enum { REDIS_HS_AUTH, REDIS_HS_SELECT, REDIS_HS_PING, REDIS_HS_ROLE, REDIS_HS_N };
/* The command of STEP into ret_argv (3 slots; ret_db holds the number):
 * its argc, 0 when the step does not apply, -ENOENT past the last. */
int redis_handshake_step(const struct redis_target *t, int step, const char **ret_argv, char ret_db[16]);
/* NULL when REPLY is what STEP wants, else the one-line error naming what
 * failed ("Redis: authentication failed …", "Redis: SELECT 99: …"), with no
 * password in it; the caller frees it. */
char *redis_handshake_check(const struct redis_target *t, int step, const redisReply *reply);
/* The whole handshake on a blocking context: 0, or -EIO / -EACCES with the
 * error line in *ret_err. */
int redis_handshake(redisContext *r, const struct redis_target *t, char **ret_err);

#endif
