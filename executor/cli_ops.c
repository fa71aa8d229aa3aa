/* SPDX-License-Identifier: ISC */
/* cli_ops — the producer and inspection commands: submit, status, show, list,
 * retry, cancel, queues, keygen and sign.  Plain blocking clients: a command
 * does one thing and exits. */
#include "attempt.h"
#include "cli.h"
#include "cli_payload.h"
#include "job.h"
#include "queue.h"
#include "sign.h"
#include "store.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- connections ------------------------------------------------------------------ */

static PGconn *db_connect(const struct config *c)
{
	PGconn *db = store_connect(c->db_url);
	char *masked;

	if (PQstatus(db) == CONNECTION_OK) {
		PQclear(PQexec(db, "SET client_min_messages = warning"));
		return db;
	}
	masked = config_mask_url(c->db_url);
	fprintf(stderr, "taskexec: PostgreSQL at %s: %s", masked, PQerrorMessage(db));
	free(masked);
	PQfinish(db);
	return NULL;
}

static redisContext *redis_connect(const struct config *c)
{
	struct redis_target t;
	struct timeval tv = { 5, 0 };
	redisContext *r;
	char *err = NULL;

	if (redis_url_parse(c->redis_url, &t, &err) < 0) {
		fprintf(stderr, "taskexec: %s\n", err);
		free(err);
		return NULL;
	}
	r = redis_connect_blocking(&t, tv, &err);
	/* Redis Cluster: every key shares one hash slot, so one MOVED names the
	 * node for all of them (a slot moved twice meanwhile: follow again). */
	for (int hops = 0; r && hops < 3; hops++) {
		redisReply *rep = redisCommand(r, "EXISTS {%s}:wake", c->queue_prefix);
		char host[256];
		int slot, port;

		if (!rep || rep->type != REDIS_REPLY_ERROR || strncmp(rep->str, "MOVED ", 6) ||
		    sscanf(rep->str + 6, "%d %255[^:]:%d", &slot, host, &port) != 3) {
			freeReplyObject(rep);
			break;
		}
		freeReplyObject(rep);
		redisFree(r);
		free(t.host);
		t.host = xstrdup(host);
		t.port = port;
		r = redis_connect_blocking(&t, tv, &err);
	}
	if (!r) {
		fprintf(stderr, "taskexec: %s\n", err);
		free(err);
	}
	redis_target_free(&t);
	return r;
}

/* A reply of the type the caller expects, or NULL after saying why. */
static redisReply *redis_expect(redisContext *r, redisReply *rep, int type)
{
	if (rep && rep->type == type)
		return rep;
	if (!rep)
		fprintf(stderr, "taskexec: Redis: %s\n", r->errstr);
	else if (rep->type == REDIS_REPLY_ERROR)
		fprintf(stderr, "taskexec: Redis: %s\n", rep->str);
	else
		fprintf(stderr, "taskexec: Redis: unexpected reply type %d\n", rep->type);
	freeReplyObject(rep);
	return NULL;
}

/* A statement that names the schema: create it first if this is a new database. */
static PGresult *db_exec(PGconn *db, const struct config *c, const char *sql, int n, const char *const *p)
{
	PGresult *r = PQexecParams(db, sql, n, NULL, p, NULL, NULL, 0);
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	char *err = NULL;

	/* No table, schema or function: a database the daemon has not migrated yet. */
	if (state && (!strcmp(state, "42P01") || !strcmp(state, "3F000") || !strcmp(state, "42883"))) {
		PQclear(r);
		if (store_migrate(c->db_url, &err) < 0) {
			fprintf(stderr, "taskexec: %s\n", err);
			free(err);
			return NULL;
		}
		r = PQexecParams(db, sql, n, NULL, p, NULL, NULL, 0);
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK && PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "taskexec: PostgreSQL: %s", PQresultErrorMessage(r));
		PQclear(r);
		return NULL;
	}
	return r;
}

/* due_ms > 0: a delayed job, due then (epoch ms), parked in {P}:delayed as
 * "<priority>|<payload>" until an executor promotes it to its queue. */
static int enqueue(redisContext *r, const struct config *c, const char *priority, const char *payload,
		   int64_t due_ms)
{
	char *queue = due_ms > 0 ? xasprintf("{%s}:delayed", c->queue_prefix)
				 : xasprintf("{%s}:queue:%s", c->queue_prefix, priority);
	char *wake = xasprintf("{%s}:wake", c->queue_prefix);
	redisReply *rep;
	bool said = false;
	int rc = -1;

	/* The documented producer step (taskexec-protocol(7)): one MULTI block.
	 * A delayed job wakes an executor too, so that it learns the new due
	 * time now rather than at its next heartbeat. */
	redisAppendCommand(r, "MULTI");
	if (due_ms > 0)
		redisAppendCommand(r, "ZADD %s %lld %s|%s", queue, (long long)due_ms, priority, payload);
	else
		redisAppendCommand(r, "RPUSH %s %s", queue, payload);
	redisAppendCommand(r, "ZADD %s 0 w", wake);
	redisAppendCommand(r, "EXEC");
	for (int i = 0; i < 4; i++) {
		if (redisGetReply(r, (void **)&rep) != REDIS_OK) {
			fprintf(stderr, "taskexec: Redis: %s\n", r->errstr);
			goto out;
		}
		if (rep->type == REDIS_REPLY_ERROR && !said) {
			fprintf(stderr, "taskexec: Redis: %s\n", rep->str);
			said = true;
		}
		/* Inside EXEC each command has its own reply: the job is queued
		 * when the RPUSH took.  A failed wake-up costs the daemon at most
		 * one heartbeat; say so and go on. */
		if (i == 3 && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
			if (rep->element[0]->type == REDIS_REPLY_ERROR) {
				fprintf(stderr, "taskexec: Redis: %s: %s\n", queue, rep->element[0]->str);
				said = true;
			} else {
				rc = 0;
			}
			if (!rc && rep->element[1]->type == REDIS_REPLY_ERROR)
				fprintf(stderr, "taskexec: warning: Redis: %s: %s (the job is queued; a daemon "
					"finds it within a heartbeat)\n", wake, rep->element[1]->str);
		}
		freeReplyObject(rep);
	}
	if (rc < 0 && !said)
		fprintf(stderr, "taskexec: Redis refused the enqueue transaction\n");
out:
	free(queue);
	free(wake);
	return rc;
}

/* ---- signing ------------------------------------------------------------------------ */

static int read_key(const char *path, unsigned char key[SIGN_SECRET_KEY_BYTES])
{
	int r = sign_load_secret_key(path, key);

	if (r == -EBADMSG)
		fprintf(stderr, "taskexec: %s: not a base64 Ed25519 key of %d bytes\n", path, SIGN_SECRET_KEY_BYTES);
	else if (r < 0)
		fprintf(stderr, "taskexec: %s: %s\n", path, strerror(-r));
	return r;
}

/* Add "signature" to the payload; returns the new text or NULL. */
static char *sign_payload(const char *payload, const char *key_file)
{
	unsigned char sk[SIGN_SECRET_KEY_BYTES];
	json_t *doc = json_loads(payload, 0, NULL);
	char *err = NULL, *out = NULL;

	if (!json_is_object(doc)) {
		fprintf(stderr, "taskexec: sign: the payload is not a JSON object\n");
		json_decref(doc);
		return NULL;
	}
	if (read_key(key_file, sk) < 0)
		goto out;
	if (sign_job(doc, sk, &err) < 0) {
		fprintf(stderr, "taskexec: %s\n", err);
		free(err);
		goto out;
	}
	out = json_dumps(doc, JSON_COMPACT);
out:
	sign_wipe(sk, sizeof(sk));
	json_decref(doc);
	return out;
}

int cli_keygen(int argc, char **argv)
{
	char pk64[SIGN_PUBLIC_KEY_TEXT], sk64[SIGN_SECRET_KEY_TEXT];
	int fd;

	if (argc != 3)
		return cli_usage_error("usage: taskexec keygen SECRET_FILE PUBLIC_FILE");
	if (sign_init() < 0)
		return EXIT_FAILED;
	sign_keygen(pk64, sk64);
	fd = open(argv[1], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", sk64) < 0 || close(fd) < 0) {
		fprintf(stderr, "taskexec: %s: %s\n", argv[1], strerror(errno));
		return EXIT_FAILED;
	}
	fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || dprintf(fd, "%s\n", pk64) < 0 || close(fd) < 0) {
		fprintf(stderr, "taskexec: %s: %s\n", argv[2], strerror(errno));
		return EXIT_FAILED;
	}
	sign_wipe(sk64, sizeof(sk64));
	printf("secret key: %s (keep it with the producers)\npublic key: %s (list it in TASKEXEC_VERIFY_KEYS)\n",
	       argv[1], argv[2]);
	return EXIT_DONE;
}

int cli_sign(int argc, char **argv)
{
	char *payload = NULL, *signed_;
	const char *src = argc > 2 ? argv[2] : "-";
	int r;

	if (argc < 2 || argc > 3)
		return cli_usage_error("usage: taskexec sign SECRET_FILE [PAYLOAD_FILE|-]");
	if (sign_init() < 0)
		return EXIT_FAILED;
	r = read_file(strcmp(src, "-") ? src : "/dev/stdin", JOB_MAX_BYTES, &payload, NULL);
	if (r < 0)
		return cli_usage_error("%s: %s", src, strerror(-r));
	signed_ = sign_payload(payload, argv[1]);
	free(payload);
	if (!signed_)
		return EXIT_FAILED;
	printf("%s\n", signed_);
	free(signed_);
	return EXIT_DONE;
}

/* ---- printing job-controlled text -------------------------------------------------------- */

/* Results, errors, tracebacks, tails and even ids come from jobs and
 * producers: printed through term_escape() so none of it reaches the
 * operator's terminal as a control sequence.  PostgreSQL's JSON escapes
 * only U+0000..U+001F; TERM_JSON escapes DEL and C1 as equal JSON. */
static void print_safe(const char *prefix, const char *text, unsigned flags)
{
	char *safe = term_escape_str(text, flags);

	printf("%s%s\n", prefix, safe);
	free(safe);
}

/* ---- submit ------------------------------------------------------------------------------- */

static bool terminal(const char *status)
{
	return !strcmp(status, "COMPLETED") || !strcmp(status, "FAILED");
}

/* How many executors of this queue prefix have a live heartbeat key, or -1
 * when Redis did not say.  The key, not the executors row: those rows are
 * shared by every prefix of the database, and only a daemon on this prefix
 * will ever claim the job. */
static int executors_alive(redisContext *r, const struct config *c)
{
	redisReply *ids = redis_expect(r, redisCommand(r, "SMEMBERS {%s}:executors", c->queue_prefix), REDIS_REPLY_ARRAY);
	int n = 0;

	if (!ids)
		return -1;
	for (size_t i = 0; i < ids->elements && n >= 0; i++) {
		redisReply *ttl = redis_expect(r, redisCommand(r, "PTTL {%s}:heartbeat:%s", c->queue_prefix,
							       ids->element[i]->str), REDIS_REPLY_INTEGER);

		n = !ttl ? -1 : n + (ttl->integer > 0);
		freeReplyObject(ttl);
	}
	freeReplyObject(ids);
	return n;
}

/* Wait for a terminal status: LISTEN for the daemon's NOTIFY, with a slow
 * re-check in case a notification was missed.  No executor alive means the
 * wait may never end: say so on stderr (each time they all go), rather than
 * wait in silence.  timeout_ms < 0: no bound. */
static int wait_terminal(PGconn *db, redisContext *rd, const struct config *c, const char *job_id,
			 int64_t timeout_ms, const char *timeout_text)
{
	const char *p[] = { job_id };
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	bool warned = false;

	PQclear(PQexec(db, "LISTEN taskexec_job"));
	for (;;) {
		PGresult *r = db_exec(db, c, "SELECT status, result, error FROM taskexec.jobs WHERE job_id = $1", 1, p);
		struct pollfd pfd = { PQsocket(db), POLLIN, 0 };
		int64_t wait = 5000, alive;

		if (!r)
			return EXIT_FAILED;
		if (PQntuples(r) == 1 && terminal(PQgetvalue(r, 0, 0))) {
			bool ok = !strcmp(PQgetvalue(r, 0, 0), "COMPLETED");

			printf("%s\n", PQgetvalue(r, 0, 0));
			if (ok)
				print_safe("", PQgetvalue(r, 0, 1), TERM_JSON);
			else
				print_safe("error: ", PQgetvalue(r, 0, 2), 0);
			PQclear(r);
			return ok ? EXIT_DONE : EXIT_FAILED;
		}
		if (deadline >= 0 && now_ms() >= deadline) {
			char *id = term_escape_str(job_id, 0);

			fprintf(stderr, "taskexec: gave up waiting after %s: job %s is still %s\n", timeout_text, id,
				PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "unknown");
			free(id);
			PQclear(r);
			return EXIT_WAIT_TIMEOUT;
		}
		PQclear(r);
		alive = executors_alive(rd, c);
		if (alive == 0 && !warned) {
			char *prefix = term_escape_str(c->queue_prefix, 0);

			fprintf(stderr, "taskexec: warning: no executor is alive on queue prefix %s (no live "
				"{%s}:heartbeat:* key); the job waits until a taskexecd starts\n", prefix, prefix);
			free(prefix);
		}
		warned = alive == 0 || (alive < 0 && warned);
		if (deadline >= 0 && deadline - now_ms() < wait)
			wait = deadline - now_ms() > 0 ? deadline - now_ms() : 0;
		if (poll(&pfd, 1, (int)wait) < 0 && errno != EINTR)
			return EXIT_FAILED;
		PQconsumeInput(db);
		for (PGnotify *n; (n = PQnotifies(db));)
			PQfreemem(n);
	}
}

int cli_submit(int argc, char **argv)
{
	struct cli_payload cp;
	struct config c;
	struct job j = { 0 };
	PGconn *db = NULL;
	redisContext *r = NULL;
	char *payload = NULL, *err = NULL, *params = NULL, due[64];
	const char *prio, *key;
	int rc;

	if ((rc = cli_payload_parse(argc, argv, &cp, true)))
		return rc;
	if (!cp.task_type && !cp.json_file) {
		cli_payload_free(&cp);
		return cli_usage_error("submit: --task-type is required");
	}
	if (cli_config(&c) < 0) {
		cli_payload_free(&cp);
		return EXIT_USAGE;
	}
	rc = EXIT_USAGE;
	payload = cli_payload_build(&cp, NULL, &err);
	if (!payload) {
		cli_usage_error("rejected: %s", err);
		goto out;
	}
	key = cp.signing_key ? cp.signing_key : getenv("TASKEXEC_SIGNING_KEY");
	if (key) {
		char *s;

		if (sign_init() < 0 || !(s = sign_payload(payload, key))) {
			rc = EXIT_FAILED;
			goto out;
		}
		free(payload);
		payload = s;
	}
	if (job_parse(payload, strlen(payload), &j, &err) < 0) {
		cli_usage_error("rejected: %s", err);
		goto out;
	}
	/* Which list decides the order: the job's priority, else its policy's. */
	prio = j.priority;
	if (!prio) {
		struct policy_set ps;
		struct policy_vars v = { c.state_dir, c.tasks_path[0] };
		char *perr = NULL;

		prio = "normal";
		if (policy_load_dir(c.policy_dir, &v, &ps, &perr) == 0) {
			const struct policy *p = policy_find(&ps, j.task_type);

			if (p && !strcmp(p->priority, "high"))
				prio = "high";
			else if (p && !strcmp(p->priority, "low"))
				prio = "low";
			policy_set_free(&ps);
		}
		free(perr);
	}
	rc = EXIT_FAILED;
	db = db_connect(&c);
	r = db ? redis_connect(&c) : NULL;
	if (!r)
		goto out;
	params = json_dumps(j.parameters, JSON_COMPACT);
	if (cp.due_ms > 0 && cp.due_ms <= wall_ms())
		cp.due_ms = 0;          /* --at in the past: due now */
	if (cp.due_ms > 0)
		iso8601_ms(cp.due_ms, due);
	{
		/* The row through taskexec.submit(), the function the Python client
		 * calls too: one path of truth for what a producer writes. */
		const char *p[] = { j.job_id, j.task_type, j.module_path, j.class_name, j.method_name, params,
				    j.idempotency_key, prio, payload, cp.due_ms > 0 ? due : NULL };
		PGresult *res = db_exec(db, &c,
					"SELECT created FROM taskexec.submit($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, "
					"$10::timestamptz)",
					10, p);

		if (!res)
			goto out;
		if (strcmp(PQgetvalue(res, 0, 0), "t")) {
			PQclear(res);
			cli_usage_error("submit: job %s exists already", j.job_id);
			rc = EXIT_USAGE;
			goto out;
		}
		PQclear(res);
	}
	if (enqueue(r, &c, prio, payload, cp.due_ms) < 0) {
		const char *p[] = { j.job_id };

		/* Not in Redis means it will never run: say so in its row (reject
		 * changes only a row still QUEUED). */
		PQclear(db_exec(db, &c, "SELECT taskexec.reject($1, NULL, NULL, NULL, NULL, NULL, 'enqueue failed', NULL)",
				1, p));
		goto out;
	}
	printf("%s\n", j.job_id);
	fflush(stdout);
	rc = cp.wait ? wait_terminal(db, r, &c, j.job_id, cp.wait_timeout_ms, cp.wait_timeout_s) : EXIT_DONE;
out:
	free(params);
	free(payload);
	free(err);
	job_free(&j);
	if (db)
		PQfinish(db);
	redisFree(r);
	config_free(&c);
	cli_payload_free(&cp);
	return rc;
}

/* ---- inspection --------------------------------------------------------------------------- */

static int with_db(struct config *c, PGconn **db)
{
	if (cli_config(c) < 0)
		return EXIT_USAGE;
	*db = db_connect(c);
	if (!*db) {
		config_free(c);
		return EXIT_FAILED;
	}
	return 0;
}

/* Times are shown in UTC with their zone, as ISO 8601, the form list --since
 * and submit --at take back; durations as the SQL below gives them, in ms. */
#define SQL_UTC(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define SQL_UTC_S(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define SQL_MS(from, to) "(extract(epoch FROM (" to ") - (" from ")) * 1000)::bigint"
#define SQL_ENTRY "module_path || ':' || COALESCE(class_name || '.', '') || method_name"

/* "850ms", "12.3s", "4m05s", "2h03m", "3d04h": short enough for a column. */
static const char *fmt_duration(const char *ms_text, char buf[32])
{
	long long ms = ms_text && *ms_text ? atoll(ms_text) : -1;

	if (ms < 0)
		snprintf(buf, 32, "-");
	else if (ms < 1000)
		snprintf(buf, 32, "%lldms", ms);
	else if (ms < 60000)
		snprintf(buf, 32, "%lld.%llds", ms / 1000, ms % 1000 / 100);
	else if (ms < 3600000)
		snprintf(buf, 32, "%lldm%02llds", ms / 60000, ms / 1000 % 60);
	else if (ms < 86400000)
		snprintf(buf, 32, "%lldh%02lldm", ms / 3600000, ms / 60000 % 60);
	else
		snprintf(buf, 32, "%lldd%02lldh", ms / 86400000, ms / 3600000 % 24);
	return buf;
}

/* A value of a row, NULL when SQL says NULL. */
static const char *val(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* "--json" anywhere among the arguments: removed, and said so.  The other
 * arguments keep their order. */
static bool take_json_flag(int *argc, char **argv)
{
	bool found = false;
	int k = 1;

	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--json"))
			found = true;
		else
			argv[k++] = argv[i];
	}
	*argc = k;
	return found;
}

static void show_field(const char *label, const char *text)
{
	char *safe = term_escape_str(text, 0);

	printf("%-13s%s\n", label, safe);
	free(safe);
}

/* Text of many lines (a traceback, an output tail, pretty JSON), each line
 * escaped on its own and indented under its heading, so that it reads as it
 * would in a terminal and none of it is a terminal command. */
static void show_block(const char *heading, const char *text, unsigned flags)
{
	if (!text || !*text)
		return;
	printf("\n%s\n", heading);
	while (*text) {
		size_t n = strcspn(text, "\n");
		char *safe = term_escape(text, n, flags);

		printf("  %s\n", safe);
		free(safe);
		text += n + (text[n] == '\n');
	}
}

static void show_attempts(const PGresult *a)
{
	enum { N, EXEC, OUTCOME, MS, EXIT, SIG, ETYPE, EMSG };
	int rows = PQntuples(a), w = 8;
	char **exec = xcalloc((size_t)rows + 1, sizeof(char *));

	for (int i = 0; i < rows; i++) {
		exec[i] = term_escape_str(PQgetvalue(a, i, EXEC), 0);
		if ((int)strlen(exec[i]) > w)
			w = (int)strlen(exec[i]);
	}
	printf("\nattempts\n  %-3s %-*s %-15s %-9s %-11s %s\n", "N", w, "EXECUTOR", "OUTCOME", "DURATION",
	       "EXIT/SIGNAL", "ERROR");
	for (int i = 0; i < rows; i++) {
		char dur[32], code[32], *err;
		const char *type = val(a, i, ETYPE), *msg = val(a, i, EMSG);
		size_t tn = type ? strlen(type) : 0;
		/* The message often names its type already ("ValueError: boom"). */
		char *text = type && msg && strncmp(msg, type, tn) ? xasprintf("%s: %s", type, msg)
								   : xstrdup(msg ? msg : type ? type : "-");

		if (val(a, i, SIG))
			snprintf(code, sizeof(code), "signal=%s", PQgetvalue(a, i, SIG));
		else if (val(a, i, EXIT))
			snprintf(code, sizeof(code), "exit=%s", PQgetvalue(a, i, EXIT));
		else
			snprintf(code, sizeof(code), "-");
		err = term_escape_str(text, 0);
		printf("  %-3s %-*s %-15s %-9s %-11s %s\n", PQgetvalue(a, i, N), w, exec[i], PQgetvalue(a, i, OUTCOME),
		       fmt_duration(val(a, i, MS), dur), code, err);
		free(err);
		free(text);
		free(exec[i]);
	}
	free(exec);
}

/* taskexec show: what an operator reads first (status, entry, when, how
 * long), then result and error, the attempts, and the traceback and output
 * tails as text. */
static int show_text(PGconn *db, const struct config *c, const char *job_id)
{
	static const char job_sql[] =
		"SELECT job_id, status, " SQL_ENTRY ", task_type, priority, attempts, max_retries, "
		SQL_UTC("created_at") ", " SQL_UTC("started_at") ", " SQL_UTC("finished_at") ", "
		SQL_UTC("next_attempt_at") ", " SQL_MS("created_at", "started_at") ", "
		SQL_MS("started_at", "COALESCE(finished_at, now())") ", jsonb_pretty(result), error, traceback, "
		"executor_id, idempotency_key, is_duplicate, duplicate_of, cancel_requested, "
		"round(progress * 100)::int, progress_msg, " SQL_UTC("progress_at") ", progress_attempt "
		"FROM taskexec.jobs WHERE job_id = $1";
	static const char attempts_sql[] =
		"SELECT attempt, executor_id, COALESCE(outcome, 'running'), "
		SQL_MS("started_at", "COALESCE(ended_at, now())") ", exit_code, signal, error_type, error_message, "
		"traceback, stdout_tail, stderr_tail FROM taskexec.attempts WHERE job_id = $1 ORDER BY attempt";
	enum { ID, STATUS, ENTRY, TYPE, PRIO, ATTEMPTS, MAXR, CREATED, STARTED, FINISHED, NEXT, WAITED, RAN, RESULT,
	       ERROR, TRACE, EXECUTOR, KEY, DUP, DUP_OF, CANCEL, PROGRESS, PROGRESS_MSG, PROGRESS_AT, PROGRESS_ATT };
	const char *p[] = { job_id };
	PGresult *j = db_exec(db, c, job_sql, 1, p), *a = NULL;
	char dur[32], *line, *heading;
	const char *trace;
	int last_tb = -1, last_out = -1;

	if (!j)
		return EXIT_FAILED;
	if (PQntuples(j) == 0) {
		char *id = term_escape_str(job_id, 0);

		fprintf(stderr, "taskexec: no job %s\n", id);
		free(id);
		PQclear(j);
		return EXIT_FAILED;
	}
	a = db_exec(db, c, attempts_sql, 1, p);
	if (!a) {
		PQclear(j);
		return EXIT_FAILED;
	}
	show_field("job", val(j, 0, ID));
	show_field("status", val(j, 0, STATUS));
	show_field("entry", val(j, 0, ENTRY));
	show_field("task type", val(j, 0, TYPE));
	show_field("priority", val(j, 0, PRIO));
	line = xasprintf("%s (max retries %s)", val(j, 0, ATTEMPTS), val(j, 0, MAXR));
	show_field("attempts", line);
	free(line);
	show_field("created", val(j, 0, CREATED));
	if (val(j, 0, STARTED)) {
		line = xasprintf("%s  (waited %s)", val(j, 0, STARTED), fmt_duration(val(j, 0, WAITED), dur));
		show_field("started", line);
		free(line);
	}
	if (val(j, 0, FINISHED)) {
		line = xasprintf("%s  (ran %s)", val(j, 0, FINISHED), fmt_duration(val(j, 0, RAN), dur));
		show_field("finished", line);
		free(line);
	} else if (!strcmp(val(j, 0, STATUS), "RUNNING")) {
		show_field("running for", fmt_duration(val(j, 0, RAN), dur));
	}
	if (val(j, 0, PROGRESS)) {
		line = xasprintf("%s%%%s%s  (attempt %s, at %s)", val(j, 0, PROGRESS), val(j, 0, PROGRESS_MSG) ? " " : "",
				 val(j, 0, PROGRESS_MSG) ? val(j, 0, PROGRESS_MSG) : "", val(j, 0, PROGRESS_ATT),
				 val(j, 0, PROGRESS_AT));
		show_field("progress", line);
		free(line);
	}
	if (val(j, 0, NEXT))
		show_field("next attempt", val(j, 0, NEXT));
	if (val(j, 0, EXECUTOR))
		show_field("executor", val(j, 0, EXECUTOR));
	if (val(j, 0, KEY))
		show_field("idempotency", val(j, 0, KEY));
	if (!strcmp(val(j, 0, DUP), "t")) {
		line = val(j, 0, DUP_OF) ? xasprintf("yes, of %s", val(j, 0, DUP_OF)) : xstrdup("possibly (see taskexec(1))");
		show_field("duplicate", line);
		free(line);
	}
	if (!strcmp(val(j, 0, CANCEL), "t"))
		show_field("cancel", "requested");
	show_block("result", val(j, 0, RESULT), TERM_JSON);
	/* One line, its newlines escaped, as in status and list: an error is
	 * the job's text and could otherwise forge lines of this summary. */
	if (val(j, 0, ERROR)) {
		char *err = term_escape_str(val(j, 0, ERROR), 0);

		printf("\nerror\n  %s\n", err);
		free(err);
	}
	if (PQntuples(a) > 0)
		show_attempts(a);
	for (int i = 0; i < PQntuples(a); i++) {
		if (val(a, i, 8))
			last_tb = i;
		if (val(a, i, 9) || val(a, i, 10))
			last_out = i;
	}
	/* The job's traceback is its last failure's; a job without one (a
	 * COMPLETED retry) may still have failed attempts worth reading. */
	trace = val(j, 0, TRACE);
	heading = xasprintf("traceback (attempt %s)", last_tb >= 0 ? PQgetvalue(a, last_tb, 0) : "?");
	show_block(trace || last_tb < 0 ? "traceback" : heading, trace ? trace : last_tb >= 0 ? val(a, last_tb, 8) : NULL, 0);
	free(heading);
	if (last_out >= 0) {
		heading = xasprintf("stdout (attempt %s, tail)", PQgetvalue(a, last_out, 0));
		show_block(heading, val(a, last_out, 9), 0);
		free(heading);
		heading = xasprintf("stderr (attempt %s, tail)", PQgetvalue(a, last_out, 0));
		show_block(heading, val(a, last_out, 10), 0);
		free(heading);
	}
	PQclear(a);
	PQclear(j);
	return EXIT_DONE;
}

int cli_status(int argc, char **argv, bool full)
{
	static const char status_sql[] =
		"SELECT job_id, status, attempts, COALESCE(error, ''), round(progress * 100)::int, "
		"to_jsonb(progress_msg)::text FROM taskexec.jobs WHERE job_id = $1";
	static const char status_json_sql[] =
		"SELECT jsonb_build_object('job_id', job_id, 'status', status, 'attempts', attempts, 'error', error, "
		"'progress', progress, 'progress_msg', progress_msg, 'progress_at', " SQL_UTC("progress_at") ") "
		"FROM taskexec.jobs WHERE job_id = $1";
	static const char show_json_sql[] =
		"SELECT jsonb_pretty((to_jsonb(j) - 'claim_token' - 'payload' - 'retry_base') || jsonb_build_object("
		"'attempts', COALESCE((SELECT jsonb_agg(to_jsonb(a) - 'job_id' ORDER BY a.attempt) "
		"FROM taskexec.attempts a WHERE a.job_id = j.job_id), '[]'::jsonb))) "
		"FROM taskexec.jobs j WHERE job_id = $1";
	bool json = take_json_flag(&argc, argv);
	const char *p[1];
	struct config c;
	PGconn *db;
	PGresult *r;
	int rc;

	if (argc != 2)
		return cli_usage_error("usage: taskexec %s JOB_ID [--json]", full ? "show" : "status");
	if ((rc = with_db(&c, &db)))
		return rc;
	if (full && !json) {
		rc = show_text(db, &c, argv[1]);
		PQfinish(db);
		config_free(&c);
		return rc;
	}
	p[0] = argv[1];
	r = db_exec(db, &c, json ? (full ? show_json_sql : status_json_sql) : status_sql, 1, p);
	rc = EXIT_FAILED;
	if (r && PQntuples(r) == 0) {
		char *id = term_escape_str(argv[1], 0);

		fprintf(stderr, "taskexec: no job %s\n", id);
		free(id);
	} else if (r && json) {
		print_safe("", PQgetvalue(r, 0, 0), TERM_JSON | TERM_KEEP_NL);
		rc = EXIT_DONE;
	} else if (r) {
		char *id = term_escape_str(PQgetvalue(r, 0, 0), 0), *err = term_escape_str(PQgetvalue(r, 0, 3), 0);
		/* The message as a JSON string: quoted, so that it cannot pass for
		 * the error that follows. */
		char *msg = val(r, 0, 5) ? term_escape_str(val(r, 0, 5), TERM_JSON) : NULL;
		char *prog = val(r, 0, 4) ? xasprintf(" progress=%s%%%s%s", val(r, 0, 4), msg ? " " : "", msg ? msg : "")
					  : xstrdup("");

		printf("%s %s attempts=%s%s%s%s\n", id, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), prog,
		       *err ? " error=" : "", err);
		free(prog);
		free(msg);
		free(id);
		free(err);
		rc = EXIT_DONE;
	}
	PQclear(r);
	PQfinish(db);
	config_free(&c);
	return rc;
}

int cli_list(int argc, char **argv)
{
	/* $1 status, $2 task type, $3 limit, $4 since a time, $5 since a
	 * duration ago (ms, measured on the database's clock like created_at). */
#define LIST_FROM                                                                                         \
	" FROM taskexec.jobs WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR task_type = $2) " \
	"AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz) "                                     \
	"AND ($5::bigint IS NULL OR created_at >= now() - $5::bigint * interval '1 millisecond') "           \
	"ORDER BY created_at DESC LIMIT $3::int"
	static const char text_sql[] =
		"SELECT job_id, status, task_type, " SQL_ENTRY ", attempts, " SQL_UTC_S("created_at") ", "
		SQL_MS("started_at", "COALESCE(finished_at, now())") ", COALESCE(round(progress * 100)::int || '%', '-'), "
		"COALESCE(left(error, 60), '')" LIST_FROM;
	static const char json_sql[] =
		"SELECT COALESCE(jsonb_agg(to_jsonb(x) - 'created' ORDER BY x.created DESC), '[]')::text FROM (SELECT created_at AS created, "
		"job_id, status, task_type, " SQL_ENTRY " AS entry, priority, attempts, error, "
		SQL_UTC("created_at") " AS created_at, " SQL_UTC("started_at") " AS started_at, "
		SQL_UTC("finished_at") " AS finished_at, " SQL_MS("started_at", "COALESCE(finished_at, now())")
		" AS duration_ms, progress, progress_msg" LIST_FROM ") x";
#undef LIST_FROM
	const char *status = NULL, *type = NULL, *limit = "20", *since = NULL;
	const char *p[5] = { 0 };
	char status_uc[16], since_at[64], since_ms[32];
	bool json = take_json_flag(&argc, argv);
	struct config c;
	int64_t ms;
	PGconn *db;
	PGresult *r;
	long n;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			return cli_usage_error("%s needs a value", argv[i]);
		if (!strcmp(argv[i], "--status"))
			status = argv[++i];
		else if (!strcmp(argv[i], "--task-type"))
			type = argv[++i];
		else if (!strcmp(argv[i], "--limit"))
			limit = argv[++i];
		else if (!strcmp(argv[i], "--since"))
			since = argv[++i];
		else
			return cli_usage_error("unknown option %s (see taskexec help list)", argv[i]);
	}
	if (parse_int(limit, 1, 100000, &n) < 0)
		return cli_usage_error("--limit: '%s' is not a whole number from 1 to 100000", limit);
	if (status) {
		size_t k;

		for (k = 0; status[k] && k + 1 < sizeof(status_uc); k++)
			status_uc[k] = (char)toupper((unsigned char)status[k]);
		status_uc[k] = '\0';
		if (status[k] || (strcmp(status_uc, "QUEUED") && strcmp(status_uc, "RUNNING") &&
				  strcmp(status_uc, "COMPLETED") && strcmp(status_uc, "FAILED")))
			return cli_usage_error("--status: '%s' is not QUEUED, RUNNING, COMPLETED or FAILED", status);
		p[0] = status_uc;
	}
	if (since && parse_duration_ms(since, &ms) == 0) {
		snprintf(since_ms, sizeof(since_ms), "%lld", (long long)ms);
		p[4] = since_ms;
	} else if (since && parse_iso8601_ms(since, &ms) == 0) {
		iso8601_ms(ms, since_at);
		p[3] = since_at;
	} else if (since) {
		return cli_usage_error("--since: '%s' is neither a duration (90s, 5m, 2h, 7d) nor a time like "
				       "2026-12-08T05:00:00Z", since);
	}
	if ((rc = with_db(&c, &db)))
		return rc;
	p[1] = type;
	p[2] = limit;
	r = db_exec(db, &c, json ? json_sql : text_sql, 5, p);
	if (r && json) {
		print_safe("", PQgetvalue(r, 0, 0), TERM_JSON);
	} else if (r) {
		printf("%-38s %-9s %-16s %-32s %-8s %-20s %-9s %-8s %s\n", "JOB_ID", "STATUS", "TASK_TYPE", "ENTRY",
		       "ATTEMPTS", "CREATED", "DURATION", "PROGRESS", "ERROR");
		for (int i = 0; i < PQntuples(r); i++) {
			char *f[9], dur[32];

			for (int k = 0; k < 9; k++)
				f[k] = term_escape_str(k == 6 ? fmt_duration(val(r, i, k), dur) : PQgetvalue(r, i, k), 0);
			printf("%-38s %-9s %-16s %-32s %-8s %-20s %-9s %-8s %s\n", f[0], f[1], f[2], f[3], f[4], f[5], f[6],
			       f[7], f[8]);
			for (int k = 0; k < 9; k++)
				free(f[k]);
		}
	}
	rc = r ? EXIT_DONE : EXIT_FAILED;
	PQclear(r);
	PQfinish(db);
	config_free(&c);
	return rc;
}

int cli_retry(int argc, char **argv)
{
	const char *p[1];
	struct config c;
	PGconn *db;
	PGresult *r;
	redisContext *rc_ = NULL;
	int rc;

	if (argc != 2)
		return cli_usage_error("usage: taskexec retry JOB_ID");
	if ((rc = with_db(&c, &db)))
		return rc;
	p[0] = argv[1];
	rc = EXIT_FAILED;
	/* A FAILED job gets a fresh budget of retries; a QUEUED one whose entry
	 * Redis lost is sent again (a second copy of a queued job is harmless:
	 * the claim runs a job once). */
	r = db_exec(db, &c, "SELECT status, priority, payload, requeue FROM taskexec.retry($1)", 1, p);
	if (r && PQntuples(r) == 0) {
		fprintf(stderr, "taskexec: no job %s\n", argv[1]);
	} else if (r && strcmp(PQgetvalue(r, 0, 3), "t")) {
		fprintf(stderr, "taskexec: retry: job %s is %s; only FAILED or QUEUED jobs with a stored payload "
			"can be retried\n", argv[1], PQgetvalue(r, 0, 0));
	} else if (r && (rc_ = redis_connect(&c)) && enqueue(rc_, &c, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), 0) == 0) {
		printf("%s QUEUED\n", argv[1]);
		rc = EXIT_DONE;
	} else if (r) {
		/* The row is QUEUED with its payload: the daemons' reconciliation
		 * sweep sends it once Redis answers.  Nothing to undo. */
		fprintf(stderr, "taskexec: retry: job %s is QUEUED but could not be sent to Redis now; the "
			"executors' reconciliation sweep will send it\n", argv[1]);
	}
	redisFree(rc_);
	PQclear(r);
	PQfinish(db);
	config_free(&c);
	return rc;
}

int cli_cancel(int argc, char **argv)
{
	const char *p[1];
	struct config c;
	PGconn *db;
	PGresult *r;
	int rc;

	if (argc != 2)
		return cli_usage_error("usage: taskexec cancel JOB_ID");
	if ((rc = with_db(&c, &db)))
		return rc;
	p[0] = argv[1];
	rc = EXIT_FAILED;
	r = db_exec(db, &c, "SELECT taskexec.cancel($1)", 1, p);
	if (r) {
		const char *s = PQgetvalue(r, 0, 0);

		if (!strcmp(s, "cancelled")) {
			printf("%s FAILED (cancelled)\n", argv[1]);
			rc = EXIT_DONE;
		} else if (!strcmp(s, "running")) {
			redisContext *rd = redis_connect(&c);
			char *chan = xasprintf("{%s}:cancel", c.queue_prefix);
			redisReply *rep = rd ? redis_expect(rd, redisCommand(rd, "PUBLISH %s %s", chan, argv[1]),
							    REDIS_REPLY_INTEGER)
					     : NULL;

			if (rep) {
				printf("%s cancelling (running on %lld executor(s) listening)\n", argv[1],
				       (long long)rep->integer);
				rc = EXIT_DONE;
			}
			freeReplyObject(rep);
			redisFree(rd);
			free(chan);
		} else if (!strcmp(s, "missing")) {
			fprintf(stderr, "taskexec: no job %s\n", argv[1]);
		} else {
			fprintf(stderr, "taskexec: cancel: job %s is already %s\n", argv[1], s);
		}
	}
	PQclear(r);
	PQfinish(db);
	config_free(&c);
	return rc;
}

int cli_queues(int argc, char **argv)
{
	static const char *const prios[] = { "high", "normal", "low" };
	bool json = take_json_flag(&argc, argv);
	struct config c;
	redisContext *r;
	redisReply *rep, *execs = NULL;
	json_t *doc = json_object(), *queues = json_object(), *list = json_array();
	int rc = EXIT_FAILED;

	json_object_set_new(doc, "queues", queues);
	json_object_set_new(doc, "executors", list);
	if (argc != 1) {
		json_decref(doc);
		return cli_usage_error("usage: taskexec queues [--json]");
	}
	if (cli_config(&c) < 0) {
		json_decref(doc);
		return EXIT_USAGE;
	}
	r = redis_connect(&c);
	if (!r)
		goto out;
	/* Every reply is checked: an error is not a zero.  Gathered first,
	 * printed at the end: a failure half-way prints no half a table. */
	for (size_t i = 0; i < ARRAY_SIZE(prios); i++) {
		rep = redis_expect(r, redisCommand(r, "LLEN {%s}:queue:%s", c.queue_prefix, prios[i]),
				   REDIS_REPLY_INTEGER);
		if (!rep)
			goto out;
		json_object_set_new(queues, prios[i], json_integer(rep->integer));
		freeReplyObject(rep);
	}
	rep = redis_expect(r, redisCommand(r, "ZCARD {%s}:delayed", c.queue_prefix), REDIS_REPLY_INTEGER);
	if (!rep)
		goto out;
	json_object_set_new(doc, "delayed", json_integer(rep->integer));
	freeReplyObject(rep);
	execs = redis_expect(r, redisCommand(r, "SMEMBERS {%s}:executors", c.queue_prefix), REDIS_REPLY_ARRAY);
	if (!execs)
		goto out;
	for (size_t i = 0; i < execs->elements; i++) {
		const char *id = execs->element[i]->str;
		redisReply *n = redis_expect(r, redisCommand(r, "LLEN {%s}:processing:%s", c.queue_prefix, id),
					     REDIS_REPLY_INTEGER);
		redisReply *ttl = n ? redis_expect(r, redisCommand(r, "PTTL {%s}:heartbeat:%s", c.queue_prefix, id),
						   REDIS_REPLY_INTEGER)
				    : NULL;

		if (ttl)
			json_array_append_new(list, json_pack("{s:s, s:I, s:b}", "executor_id", id, "holding",
							      (json_int_t)n->integer, "live", ttl->integer > 0));
		freeReplyObject(n);
		if (!ttl)
			goto out;
		freeReplyObject(ttl);
	}
	if (json) {
		char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

		print_safe("", text, TERM_JSON | TERM_KEEP_NL);     /* anyone with Redis access can add an id */
		free(text);
	} else {
		size_t k;
		json_t *e;

		printf("%-24s %s\n", "QUEUE", "JOBS");
		for (size_t i = 0; i < ARRAY_SIZE(prios); i++)
			printf("%-24s %lld\n", prios[i], (long long)json_integer_value(json_object_get(queues, prios[i])));
		printf("%-24s %lld\n", "delayed retries", (long long)json_integer_value(json_object_get(doc, "delayed")));
		printf("\n%-40s %-8s %s\n", "EXECUTOR", "HOLDING", "HEARTBEAT");
		json_array_foreach(list, k, e) {
			char *safe = term_escape_str(json_string_value(json_object_get(e, "executor_id")), 0);

			printf("%-40s %-8lld %s\n", safe, (long long)json_integer_value(json_object_get(e, "holding")),
			       json_is_true(json_object_get(e, "live")) ? "live" : "lapsed (jobs are recovered by the others)");
			free(safe);
		}
	}
	rc = EXIT_DONE;
out:
	json_decref(doc);
	freeReplyObject(execs);
	redisFree(r);
	config_free(&c);
	return rc;
}

/* ---- prune -------------------------------------------------------------------------------- */

int cli_prune(int argc, char **argv)
{
	const char *older = NULL;
	bool dry_run = false;
	char ms_text[32];
	const char *p[2];
	struct config c;
	int64_t ms;
	PGconn *db;
	PGresult *r;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dry-run"))
			dry_run = true;
		else if (!strcmp(argv[i], "--older-than") && i + 1 < argc)
			older = argv[++i];
		else
			return cli_usage_error("usage: taskexec prune --older-than DURATION [--dry-run]");
	}
	if (!older)
		return cli_usage_error("prune: --older-than DURATION is required (such as 30d); there is no default, "
				       "so that nothing is deleted by accident");
	if (parse_duration_ms(older, &ms) < 0 || ms <= 0)
		return cli_usage_error("--older-than: '%s' is not a duration above zero such as 12h or 30d", older);
	if ((rc = with_db(&c, &db)))
		return rc;
	snprintf(ms_text, sizeof(ms_text), "%lld", (long long)ms);
	p[0] = ms_text;
	p[1] = dry_run ? "t" : "f";
	/* The guarded function decides what may go (terminal jobs, stopped
	 * executors), so a job retried or running meanwhile is never deleted. */
	r = db_exec(db, &c,
		    "SELECT jobs, attempts, executors, " SQL_UTC_S("cutoff")
		    " FROM taskexec.prune($1::bigint * interval '1 millisecond', $2::boolean)",
		    2, p);
	if (r) {
		printf("%s %s jobs (%s attempts) and %s stopped executor rows finished before %s\n",
		       dry_run ? "would delete" : "deleted", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2),
		       PQgetvalue(r, 0, 3));
		rc = EXIT_DONE;
	} else {
		rc = EXIT_FAILED;
	}
	PQclear(r);
	PQfinish(db);
	config_free(&c);
	return rc;
}

/* ---- logs --------------------------------------------------------------------------------- */

/* Rows fetched at a time: a job's 256 KiB a attempt could be thousands of
 * lines; memory stays bounded and --follow resumes after the last. */
#define LOGS_PAGE 2000
/* A NOTIFY wakes --follow at once; this bounds the wait should one be
 * missed (the connection's LISTEN is set before the first read). */
#define LOGS_FOLLOW_POLL_MS 2000

struct logs_cursor {
	const char *job_id, *attempt;   /* attempt NULL: every attempt */
	char last_attempt[24], last_seq[24];
	bool json;
};

/* A stored line, printed as "TIME N STREAM [LEVEL LOGGER:] text"; the
 * continuation lines of a record (a logged exception) are indented under
 * it.  Every piece is the job's text: escaped, none reaches the terminal as
 * a command. */
static void print_log_row(const PGresult *r, int i, bool json)
{
	enum { ATT, SEQ, TS, STREAM, LEVEL, LOGGER, LINE };
	const char *line = PQgetvalue(r, i, LINE);
	char *head;

	if (json) {
		json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:s?, s:s?, s:s}", "attempt",
				      (json_int_t)atoll(PQgetvalue(r, i, ATT)), "seq", (json_int_t)atoll(PQgetvalue(r, i, SEQ)),
				      "ts", PQgetvalue(r, i, TS), "stream", PQgetvalue(r, i, STREAM), "level", val(r, i, LEVEL),
				      "logger", val(r, i, LOGGER), "line", line);
		char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

		print_safe("", text, TERM_JSON);
		free(text);
		json_decref(o);
		return;
	}
	if (val(r, i, LEVEL) || val(r, i, LOGGER)) {
		char *lvl = term_escape_str(val(r, i, LEVEL) ? val(r, i, LEVEL) : "-", 0);
		char *name = term_escape_str(val(r, i, LOGGER) ? val(r, i, LOGGER) : "-", 0);

		head = xasprintf("%s %s %-6s %s %s: ", PQgetvalue(r, i, TS), PQgetvalue(r, i, ATT), PQgetvalue(r, i, STREAM),
				 lvl, name);
		free(lvl);
		free(name);
	} else {
		head = xasprintf("%s %s %-6s ", PQgetvalue(r, i, TS), PQgetvalue(r, i, ATT), PQgetvalue(r, i, STREAM));
	}
	for (bool first = true; first || *line; first = false) {
		size_t n = strcspn(line, "\n");
		char *safe = term_escape(line, n, 0);

		printf("%s%s\n", first ? head : "    ", safe);
		free(safe);
		line += n + (line[n] == '\n');
	}
	free(head);
}

/* Print every stored line after the cursor; 0, or -1 after saying why. */
static int logs_page(PGconn *db, const struct config *c, struct logs_cursor *cur)
{
	static const char sql[] =
		"SELECT attempt, seq, " SQL_UTC("ts") ", stream, level, logger, line FROM taskexec.attempt_logs "
		"WHERE job_id = $1 AND ($2::int IS NULL OR attempt = $2::int) AND (attempt, seq) > ($3::int, $4::int) "
		"ORDER BY attempt, seq LIMIT $5::int";
	char page[24];
	int n;

	snprintf(page, sizeof(page), "%d", LOGS_PAGE);
	do {
		const char *p[] = { cur->job_id, cur->attempt, cur->last_attempt, cur->last_seq, page };
		PGresult *r = db_exec(db, c, sql, 5, p);

		if (!r)
			return -1;
		n = PQntuples(r);
		for (int i = 0; i < n; i++)
			print_log_row(r, i, cur->json);
		if (n > 0) {
			snprintf(cur->last_attempt, sizeof(cur->last_attempt), "%s", PQgetvalue(r, n - 1, 0));
			snprintf(cur->last_seq, sizeof(cur->last_seq), "%s", PQgetvalue(r, n - 1, 1));
		}
		PQclear(r);
	} while (n == LOGS_PAGE);
	fflush(stdout);
	return 0;
}

/* What each attempt left out (past the stored share or the policy's
 * output_bytes), said after its lines so that nobody takes a prefix for the
 * whole. */
static int logs_omitted(PGconn *db, const struct config *c, const struct logs_cursor *cur)
{
	const char *p[] = { cur->job_id, cur->attempt };
	PGresult *r = db_exec(db, c,
			      "SELECT attempt, log_lines_omitted, log_bytes_omitted FROM taskexec.attempts WHERE job_id = $1 "
			      "AND ($2::int IS NULL OR attempt = $2::int) AND log_lines_omitted > 0 ORDER BY attempt",
			      2, p);

	if (!r)
		return -1;
	for (int i = 0; i < PQntuples(r); i++) {
		if (cur->json)
			printf("{\"attempt\":%s,\"omitted_lines\":%s,\"omitted_bytes\":%s}\n", PQgetvalue(r, i, 0),
			       PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
		else
			printf("[attempt %s: %s more lines (%s bytes) left out, over the %d KiB stored per attempt or "
			       "the policy's output_bytes]\n",
			       PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), ATTEMPT_LOG_STORED_BYTES / 1024);
	}
	PQclear(r);
	return 0;
}

int cli_logs(int argc, char **argv)
{
	static const char job_sql[] =
		"SELECT j.status, j.attempts, (SELECT a.ended_at IS NOT NULL FROM taskexec.attempts a "
		"WHERE a.job_id = j.job_id AND a.attempt = $2::int) FROM taskexec.jobs j WHERE j.job_id = $1";
	struct logs_cursor cur = { .last_attempt = "0", .last_seq = "-1" };
	const char *job_id = NULL;
	bool follow = false;
	struct config c;
	PGconn *db;
	long n;
	int rc;

	cur.json = take_json_flag(&argc, argv);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-f"))
			follow = true;
		else if (!strcmp(argv[i], "--attempt") && i + 1 < argc)
			cur.attempt = argv[++i];
		else if (argv[i][0] == '-' || job_id)
			return cli_usage_error("usage: taskexec logs JOB_ID [--attempt N] [--follow] [--json]");
		else
			job_id = argv[i];
	}
	if (!job_id)
		return cli_usage_error("usage: taskexec logs JOB_ID [--attempt N] [--follow] [--json]");
	if (cur.attempt && parse_int(cur.attempt, 1, 1000000, &n) < 0)
		return cli_usage_error("--attempt: '%s' is not a whole number from 1", cur.attempt);
	cur.job_id = job_id;
	if ((rc = with_db(&c, &db)))
		return rc;
	rc = EXIT_FAILED;
	/* Listening before the first read: a batch stored after it wakes us. */
	if (follow) {
		PQclear(PQexec(db, "LISTEN taskexec_log"));
		PQclear(PQexec(db, "LISTEN taskexec_job"));
	}
	for (;;) {
		const char *p[] = { job_id, cur.attempt };
		PGresult *j = db_exec(db, &c, job_sql, 2, p);
		bool over;

		if (!j)
			goto out;
		if (PQntuples(j) == 0) {
			char *id = term_escape_str(job_id, 0);

			fprintf(stderr, "taskexec: no job %s\n", id);
			free(id);
			PQclear(j);
			goto out;
		}
		if (cur.attempt && !follow && PQgetisnull(j, 0, 2)) {
			char *id = term_escape_str(job_id, 0);

			fprintf(stderr, "taskexec: job %s has no attempt %s (it has %s)\n", id, cur.attempt,
				PQgetvalue(j, 0, 1));
			free(id);
			PQclear(j);
			goto out;
		}
		/* Read after the status: a job terminal then has all its lines in,
		 * for the daemon stores an attempt's last batch before its outcome. */
		over = !follow || terminal(PQgetvalue(j, 0, 0)) ||
		       (cur.attempt && !PQgetisnull(j, 0, 2) && !strcmp(PQgetvalue(j, 0, 2), "t"));
		PQclear(j);
		if (logs_page(db, &c, &cur) < 0)
			goto out;
		if (over)
			break;
		{
			struct pollfd pfd = { PQsocket(db), POLLIN, 0 };

			if (poll(&pfd, 1, LOGS_FOLLOW_POLL_MS) < 0 && errno != EINTR)
				goto out;
			PQconsumeInput(db);
			for (PGnotify *nt; (nt = PQnotifies(db));)
				PQfreemem(nt);
		}
	}
	if (logs_omitted(db, &c, &cur) == 0)
		rc = EXIT_DONE;
out:
	PQfinish(db);
	config_free(&c);
	return rc;
}
