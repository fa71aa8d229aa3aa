/* SPDX-License-Identifier: ISC */
/* store — the PostgreSQL side: schema migration, and queries sent without
 * blocking the event loop, replayed after a reconnect. */
#ifndef TASKEXEC_STORE_H
#define TASKEXEC_STORE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "loop.h"

struct store;

/* RES is the result, or NULL when the statement did not succeed.  Then
 * REFUSED is NULL when it failed for the connection or the server's state
 * (the step should be tried again), or PostgreSQL's one-line reason when it
 * refused what the statement carries (SQLSTATE class 22, data exception, or
 * 54, program limit): sent again it would fail again. */
typedef void (*store_cb)(void *arg, PGresult *res, const char *refused);

/* A statement with no reply after this long means the connection hangs:
 * it is dropped and the statement sent again on a new one.  The server
 * cancels a statement after STORE_STATEMENT_TIMEOUT_MS (a lock held long by
 * someone else), which the caller sees as an ordinary failure. */
#define STORE_STATEMENT_TIMEOUT_MS 10000
#define STORE_REPLY_DEADLINE_MS 15000

/* Create or migrate schema taskexec; blocking, for start-up and tests. */
int store_migrate(const char *conninfo, char **ret_err);

/* A blocking connection with the daemon's guarantee that it is to a
 * primary (target_session_attrs=read-write unless CONNINFO says otherwise),
 * for the command-line tool. */
PGconn *store_connect(const char *conninfo);
/* SQLSTATE of a failover (read-only transaction, server shutting down,
 * connection failure): the statement is sent again after a reconnect. */
bool store_failover_state(const char *sqlstate);

struct store *store_new(struct loop *l, const char *conninfo, void (*state)(void *arg, bool up), void *arg);
void store_free(struct store *s);
bool store_up(const struct store *s);
/* "host:port" of the primary connected to last (NULL before the first). */
const char *store_server(const struct store *s);
/* Queue a parameterised statement; NULL params are SQL NULL.  Statements are
 * sent one at a time, in order; one interrupted by a lost connection is sent
 * again after the reconnect, so every statement must be safe to replay. */
void store_query(struct store *s, const char *sql, int n, const char *const *params, store_cb cb, void *arg);
/* Statements waiting or in flight. */
int store_pending(const struct store *s);

#endif
