/* SPDX-License-Identifier: ISC */
/* store — the PostgreSQL side: schema migration, and queries sent without
 * blocking the event loop, replayed after a reconnect. */
#include "store.h"
#include "log.h"
#include "schema.sql.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

/* libpq prints server notices (and "terminating connection" FATALs) on
 * stderr by default; they belong in the JSON log. */
static void on_notice(void *arg, const char *msg)
{
	char *m = xstrdup(msg);

	m[strcspn(m, "\n")] = '\0';
	log_msg(LOG_WARN, "postgres.notice", "PostgreSQL: %s", m);
	free(m);
}

/* Our defaults go before the caller's conninfo, which libpq expands in
 * place: whatever the operator's URL sets wins.  Keepalives and
 * tcp_user_timeout find a peer that vanished without a reset within about
 * ten seconds, idle or busy; the reply deadline in on_deadline finds one
 * that is there but does not answer.  target_session_attrs=read-write makes
 * libpq walk the hosts of a multi-host URL until one accepts writes: a
 * standby is never taken for the primary, even with a single host. */
static const char *const conn_keys[] = {
	"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
	"tcp_user_timeout", "target_session_attrs", "application_name", "options", "dbname", NULL,
};
#define STR_(x) #x
#define STR(x) STR_(x)
static const char statement_timeout[] = "-c statement_timeout=" STR(STORE_STATEMENT_TIMEOUT_MS);
static const char *const conn_values[] = {
	"10", "1", "5", "2", "3", "10000", "read-write", "taskexecd", statement_timeout, NULL /* the conninfo */, NULL,
};

static PGconn *connect_start(const char *conninfo, bool async)
{
	const char *values[ARRAY_SIZE(conn_values)];

	memcpy(values, conn_values, sizeof(values));
	values[ARRAY_SIZE(values) - 2] = conninfo;
	return async ? PQconnectStartParams(conn_keys, values, 1) : PQconnectdbParams(conn_keys, values, 1);
}

/* The server we talk to is no longer the primary, or is going away: a
 * standby promoted elsewhere leaves the old primary read-only (25006) or
 * shutting down (57P01-57P03), and a lost link is class 08.  The statement
 * is not the caller's failure: reconnect (libpq walks to the new primary)
 * and send it again.  Every statement here is replay-safe (store_query). */
bool store_failover_state(const char *state)
{
	return state && (!strcmp(state, "25006") || !strncmp(state, "08", 2) || !strcmp(state, "57P01") ||
			 !strcmp(state, "57P02") || !strcmp(state, "57P03"));
}

PGconn *store_connect(const char *conninfo)
{
	static const char *const keys[] = { "connect_timeout", "target_session_attrs", "dbname", NULL };
	const char *values[] = { "10", "read-write", conninfo, NULL };

	return PQconnectdbParams(keys, values, 1);
}

/* PostgreSQL refused the data, not the connection: see store_cb. */
static bool refused_for_data(const PGresult *res)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	return state && (!strncmp(state, "22", 2) || !strncmp(state, "54", 2));
}

int store_migrate(const char *conninfo, char **ret_err)
{
	PGconn *c = connect_start(conninfo, false);

	PQsetNoticeProcessor(c, on_notice, NULL);
	PGresult *r = NULL;
	int version = 0, rc = -1;

	if (PQstatus(c) != CONNECTION_OK) {
		*ret_err = xasprintf("PostgreSQL: %s", PQerrorMessage(c));
		goto out;
	}
#define EXEC(sql)                                                                                 \
	do {                                                                                      \
		PQclear(r);                                                                       \
		r = PQexec(c, sql);                                                               \
		if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) { \
			*ret_err = xasprintf("schema migration: %s", PQerrorMessage(c));          \
			goto rollback;                                                            \
		}                                                                                 \
	} while (0)
	EXEC("SET client_min_messages = warning");
	/* 100 daemons starting at once wait here for each other's migration. */
	EXEC("SET statement_timeout = 0");
	EXEC("BEGIN");
	/* One daemon migrates at a time; the others wait here, then find it done. */
	EXEC("SELECT pg_advisory_xact_lock(7243512)");
	EXEC("CREATE SCHEMA IF NOT EXISTS taskexec");
	EXEC("CREATE TABLE IF NOT EXISTS taskexec.schema_version (version int PRIMARY KEY, "
	     "applied_at timestamptz NOT NULL DEFAULT now())");
	EXEC("SELECT COALESCE(max(version), 0) FROM taskexec.schema_version");
	version = atoi(PQgetvalue(r, 0, 0));
	if (version > (int)ARRAY_SIZE(schema_migrations)) {
		*ret_err = xasprintf("schema taskexec is at version %d, newer than this taskexecd knows (%zu)",
				     version, ARRAY_SIZE(schema_migrations));
		goto rollback;
	}
	for (size_t v = (size_t)version; v < ARRAY_SIZE(schema_migrations); v++) {
		char ins[96];

		EXEC(schema_migrations[v]);
		snprintf(ins, sizeof(ins), "INSERT INTO taskexec.schema_version (version) VALUES (%zu)", v + 1);
		EXEC(ins);
	}
	EXEC("COMMIT");
#undef EXEC
	rc = 0;
	goto out;
rollback:
	PQclear(r);
	r = PQexec(c, "ROLLBACK");
out:
	PQclear(r);
	PQfinish(c);
	return rc;
}

struct req {
	char *sql;
	int n;
	char **params;
	store_cb cb;
	void *arg;
	struct req *next;
};

struct store {
	struct loop *loop;
	char *conninfo;
	void (*state)(void *arg, bool up);
	void *state_arg;
	PGconn *conn;
	int fd;
	uint32_t events;
	bool up, sent;
	int64_t backoff_ms;
	struct timer *retry;
	struct req *head, *tail;
	PGresult *first;        /* the first result of the statement in flight */
	struct timer *deadline; /* for the reply to the statement in flight */
	char *server;           /* host:port of the primary last connected to */
	bool closing;
};

static void watch(struct store *s, int fd, uint32_t events);
static void start_connect(struct store *s);
static void pump(struct store *s);

static void on_retry(struct loop *l, void *arg)
{
	struct store *s = arg;

	s->retry = NULL;
	start_connect(s);
}

static void lost(struct store *s, const char *why)
{
	bool was = s->up;

	if (s->deadline) {
		loop_timer_cancel(s->loop, s->deadline);
		s->deadline = NULL;
	}
	watch(s, -1, 0);
	if (s->conn) {
		log_msg(LOG_WARN, "postgres.down", "PostgreSQL: %s", why);
		PQfinish(s->conn);
		s->conn = NULL;
	}
	PQclear(s->first);
	s->first = NULL;
	s->up = false;
	s->sent = false;        /* the statement in flight is sent again */
	if (was && s->state)
		s->state(s->state_arg, false);
	if (s->closing || s->retry)
		return;
	/* Capped at 2 s: a promoted standby is found within that of its promotion. */
	s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : 250;
	if (s->backoff_ms > 2000)
		s->backoff_ms = 2000;
	s->retry = loop_timer(s->loop, now_ms() + s->backoff_ms, on_retry, s);
}

static void on_io(struct loop *l, int fd, uint32_t events, void *arg);

static void watch(struct store *s, int fd, uint32_t events)
{
	if (s->fd >= 0 && (fd != s->fd || !events)) {
		loop_del(s->loop, s->fd);
		s->fd = -1;
		s->events = 0;
	}
	if (fd < 0 || !events)
		return;
	if (s->fd < 0) {
		if (loop_add(s->loop, fd, events, on_io, s) == 0) {
			s->fd = fd;
			s->events = events;
		}
	} else if (events != s->events) {
		loop_mod(s->loop, fd, events);
		s->events = events;
	}
}

/* Which host of a multi-host URL libpq settled on; a change is a failover
 * (or an operator's move), worth a line of its own. */
static void note_server(struct store *s)
{
	const char *h = PQhost(s->conn), *p = PQport(s->conn);
	char *now = xasprintf("%s:%s", h && *h ? h : "localhost", p && *p ? p : "5432");

	if (s->server && strcmp(s->server, now))
		log_json(LOG_WARN, "postgres.primary_changed",
			 json_pack("{s:s, s:s, s:s}", "from", s->server, "to", now, "msg",
				   "PostgreSQL primary changed: statements in flight are sent again"));
	free(s->server);
	s->server = now;
}

/* While connecting, libpq may close its socket and open another, to the
 * next host of a multi-host URL or after a standby refused read-write, and
 * the new one often gets the same number: the kernel dropped the old one
 * from epoll, so it is registered afresh at every step. */
static void watch_connect(struct store *s, uint32_t events)
{
	watch(s, -1, 0);
	watch(s, PQsocket(s->conn), events);
}

static void on_deadline(struct loop *l, void *arg);

static void poll_connect(struct store *s)
{
	PostgresPollingStatusType st = PQconnectPoll(s->conn);

	if (st != PGRES_POLLING_READING && st != PGRES_POLLING_WRITING && s->deadline) {
		loop_timer_cancel(s->loop, s->deadline);
		s->deadline = NULL;
	}
	switch (st) {
	case PGRES_POLLING_READING:
		watch_connect(s, EPOLLIN);
		return;
	case PGRES_POLLING_WRITING:
		watch_connect(s, EPOLLOUT);
		return;
	case PGRES_POLLING_OK:
		note_server(s);
		PQsetnonblocking(s->conn, 1);
		watch(s, PQsocket(s->conn), EPOLLIN);
		s->up = true;
		if (s->backoff_ms)
			log_msg(LOG_INFO, "postgres.up", "PostgreSQL connection restored");
		s->backoff_ms = 0;
		if (s->state)
			s->state(s->state_arg, true);
		pump(s);
		return;
	default:
		lost(s, PQerrorMessage(s->conn));
		return;
	}
}

static void start_connect(struct store *s)
{
	s->conn = connect_start(s->conninfo, true);
	if (s->conn)
		PQsetNoticeProcessor(s->conn, on_notice, NULL);
	if (!s->conn || PQstatus(s->conn) == CONNECTION_BAD) {
		lost(s, s->conn ? PQerrorMessage(s->conn) : "out of memory");
		return;
	}
	/* A connection that never completes (a host that swallows packets)
	 * must not stop the reconnecting: the same bound as for a reply. */
	s->deadline = loop_timer(s->loop, now_ms() + STORE_REPLY_DEADLINE_MS, on_deadline, s);
	poll_connect(s);
}

static void finish_req(struct store *s, PGresult *res)
{
	struct req *r = s->head;
	bool ok = PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK;
	char *refused = NULL;

	s->head = r->next;
	if (!s->head)
		s->tail = NULL;
	s->sent = false;
	if (s->deadline) {
		loop_timer_cancel(s->loop, s->deadline);
		s->deadline = NULL;
	}
	if (!ok) {
		const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

		log_msg(LOG_ERROR, "postgres.error", "PostgreSQL: %s", PQresultErrorMessage(res));
		if (refused_for_data(res))
			refused = xstrdup(msg && *msg ? msg : "refused");
	}
	if (r->cb)
		r->cb(r->arg, ok ? res : NULL, refused);
	free(refused);
	PQclear(res);
	for (int i = 0; i < r->n; i++)
		free(r->params[i]);
	free(r->params);
	free(r->sql);
	free(r);
}

static void on_io(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct store *s = arg;

	if (!s->up) {
		poll_connect(s);
		return;
	}
	if (events & EPOLLOUT) {
		int f = PQflush(s->conn);

		if (f < 0) {
			lost(s, PQerrorMessage(s->conn));
			return;
		}
		watch(s, fd, f ? EPOLLIN | EPOLLOUT : EPOLLIN);
	}
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	if (!PQconsumeInput(s->conn)) {
		lost(s, PQerrorMessage(s->conn));
		return;
	}
	while (s->sent && !PQisBusy(s->conn)) {
		PGresult *res = PQgetResult(s->conn);

		if (res) {
			if (!s->first)
				s->first = res;
			else
				PQclear(res);
			continue;
		}
		res = s->first;
		s->first = NULL;
		if (res && PQresultStatus(res) == PGRES_FATAL_ERROR &&
		    store_failover_state(PQresultErrorField(res, PG_DIAG_SQLSTATE))) {
			const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
			char *why = xasprintf("%s (SQLSTATE %s): reconnecting to the primary", msg ? msg : "server error",
					      PQresultErrorField(res, PG_DIAG_SQLSTATE));

			PQclear(res);
			lost(s, why);
			free(why);
			return;
		}
		finish_req(s, res);
	}
	/* Drain notifications nobody listens to. */
	for (PGnotify *n; (n = PQnotifies(s->conn));)
		PQfreemem(n);
	if (PQstatus(s->conn) == CONNECTION_BAD) {
		lost(s, PQerrorMessage(s->conn));
		return;
	}
	pump(s);
}

static void on_deadline(struct loop *l, void *arg)
{
	struct store *s = arg;

	s->deadline = NULL;
	lost(s, "no reply within " STR(STORE_REPLY_DEADLINE_MS) " ms");
}

static void pump(struct store *s)
{
	struct req *r = s->head;
	int f;

	if (!s->up || s->sent || !r)
		return;
	if (!PQsendQueryParams(s->conn, r->sql, r->n, NULL, (const char *const *)r->params, NULL, NULL, 0)) {
		lost(s, PQerrorMessage(s->conn));
		return;
	}
	s->sent = true;
	s->deadline = loop_timer(s->loop, now_ms() + STORE_REPLY_DEADLINE_MS, on_deadline, s);
	f = PQflush(s->conn);
	if (f < 0)
		lost(s, PQerrorMessage(s->conn));
	else if (f > 0)
		watch(s, PQsocket(s->conn), EPOLLIN | EPOLLOUT);
}

struct store *store_new(struct loop *l, const char *conninfo, void (*state)(void *arg, bool up), void *arg)
{
	struct store *s = xcalloc(1, sizeof(*s));

	s->loop = l;
	s->conninfo = xstrdup(conninfo);
	s->state = state;
	s->state_arg = arg;
	s->fd = -1;
	start_connect(s);
	return s;
}

void store_free(struct store *s)
{
	if (!s)
		return;
	s->closing = true;
	watch(s, -1, 0);
	if (s->retry)
		loop_timer_cancel(s->loop, s->retry);
	if (s->deadline)
		loop_timer_cancel(s->loop, s->deadline);
	PQclear(s->first);
	if (s->conn)
		PQfinish(s->conn);
	while (s->head) {
		struct req *r = s->head;

		s->head = r->next;
		for (int i = 0; i < r->n; i++)
			free(r->params[i]);
		free(r->params);
		free(r->sql);
		free(r);
	}
	free(s->conninfo);
	free(s->server);
	free(s);
}

bool store_up(const struct store *s)
{
	return s->up;
}

const char *store_server(const struct store *s)
{
	return s->server;
}

int store_pending(const struct store *s)
{
	int n = 0;

	for (struct req *r = s->head; r; r = r->next)
		n++;
	return n;
}

void store_query(struct store *s, const char *sql, int n, const char *const *params, store_cb cb, void *arg)
{
	struct req *r = xcalloc(1, sizeof(*r));

	r->sql = xstrdup(sql);
	r->n = n;
	r->params = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++)
		r->params[i] = params[i] ? xstrdup(params[i]) : NULL;
	r->cb = cb;
	r->arg = arg;
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	pump(s);
}
