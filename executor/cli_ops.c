/* cli_ops — the producer and inspection commands: submit, status, show, list,
 * retry, cancel, queues, keygen and sign.  Plain blocking clients: a command
 * does one thing and exits. */
#include "cli.h"
#include "cli_payload.h"
#include "job.h"
#include "queue.h"
#include "sign.h"
#include "store.h"
#include "util.h"

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
	PGconn *db = PQconnectdb(c->db_url);
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
	r = t.path ? redisConnectUnixWithTimeout(t.path, tv) : redisConnectWithTimeout(t.host, t.port, tv);
	if (!r || r->err) {
		fprintf(stderr, "taskexec: Redis: %s\n", r ? r->errstr : "out of memory");
		redisFree(r);
		redis_target_free(&t);
		return NULL;
	}
	fcntl(r->fd, F_SETFD, FD_CLOEXEC);
	redisSetTimeout(r, tv);
	if (redis_handshake(r, &t, &err) < 0) {
		fprintf(stderr, "taskexec: %s\n", err);
		free(err);
		redisFree(r);
		r = NULL;
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

/* Wait for a terminal status: LISTEN for the daemon's NOTIFY, with a slow
 * re-check in case a notification was missed. */
static int wait_terminal(PGconn *db, const struct config *c, const char *job_id)
{
	const char *p[] = { job_id };

	PQclear(PQexec(db, "LISTEN taskexec_job"));
	for (;;) {
		PGresult *r = db_exec(db, c, "SELECT status, result, error FROM taskexec.jobs WHERE job_id = $1", 1, p);
		struct pollfd pfd = { PQsocket(db), POLLIN, 0 };

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
		PQclear(r);
		if (poll(&pfd, 1, 5000) < 0 && errno != EINTR)
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
	rc = cp.wait ? wait_terminal(db, &c, j.job_id) : EXIT_DONE;
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

int cli_status(int argc, char **argv, bool full)
{
	static const char status_sql[] =
		"SELECT job_id, status, attempts, COALESCE(error, '') FROM taskexec.jobs WHERE job_id = $1";
	static const char show_sql[] =
		"SELECT jsonb_pretty((to_jsonb(j) - 'claim_token' - 'payload' - 'retry_base') || jsonb_build_object("
		"'attempts', COALESCE((SELECT jsonb_agg(to_jsonb(a) - 'job_id' ORDER BY a.attempt) "
		"FROM taskexec.attempts a WHERE a.job_id = j.job_id), '[]'::jsonb))) "
		"FROM taskexec.jobs j WHERE job_id = $1";
	const char *p[1];
	struct config c;
	PGconn *db;
	PGresult *r;
	int rc;

	if (argc != 2)
		return cli_usage_error("usage: taskexec %s JOB_ID", full ? "show" : "status");
	if ((rc = with_db(&c, &db)))
		return rc;
	p[0] = argv[1];
	r = db_exec(db, &c, full ? show_sql : status_sql, 1, p);
	rc = EXIT_FAILED;
	if (r && PQntuples(r) == 0)
		fprintf(stderr, "taskexec: no job %s\n", argv[1]);
	else if (r && full) {
		print_safe("", PQgetvalue(r, 0, 0), TERM_JSON | TERM_KEEP_NL);
		rc = EXIT_DONE;
	} else if (r) {
		char *id = term_escape_str(PQgetvalue(r, 0, 0), 0), *err = term_escape_str(PQgetvalue(r, 0, 3), 0);

		printf("%s %s attempts=%s%s%s\n", id, PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), *err ? " error=" : "",
		       err);
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
	const char *status = NULL, *type = NULL, *limit = "20";
	const char *p[3];
	struct config c;
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
		else
			return cli_usage_error("unknown option %s (see taskexec --help)", argv[i]);
	}
	if (parse_int(limit, 1, 100000, &n) < 0)
		return cli_usage_error("--limit: '%s' is not a whole number from 1 to 100000", limit);
	if (status && strcmp(status, "QUEUED") && strcmp(status, "RUNNING") && strcmp(status, "COMPLETED") &&
	    strcmp(status, "FAILED"))
		return cli_usage_error("--status: '%s' is not QUEUED, RUNNING, COMPLETED or FAILED", status);
	if ((rc = with_db(&c, &db)))
		return rc;
	p[0] = status;
	p[1] = type;
	p[2] = limit;
	r = db_exec(db, &c,
		    "SELECT job_id, status, task_type, attempts, to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS'), "
		    "COALESCE(left(error, 60), '') FROM taskexec.jobs WHERE ($1::text IS NULL OR status = $1) AND "
		    "($2::text IS NULL OR task_type = $2) ORDER BY created_at DESC LIMIT $3::int",
		    3, p);
	if (r) {
		printf("%-38s %-9s %-16s %-8s %-19s %s\n", "JOB_ID", "STATUS", "TASK_TYPE", "ATTEMPTS", "CREATED",
		       "ERROR");
		for (int i = 0; i < PQntuples(r); i++) {
			char *f[6];

			for (int k = 0; k < 6; k++)
				f[k] = term_escape_str(PQgetvalue(r, i, k), 0);
			printf("%-38s %-9s %-16s %-8s %-19s %s\n", f[0], f[1], f[2], f[3], f[4], f[5]);
			for (int k = 0; k < 6; k++)
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
	struct config c;
	redisContext *r;
	redisReply *rep, *execs = NULL;
	int rc = EXIT_FAILED;

	if (argc != 1)
		return cli_usage_error("usage: taskexec queues");
	if (cli_config(&c) < 0)
		return EXIT_USAGE;
	r = redis_connect(&c);
	if (!r) {
		config_free(&c);
		return EXIT_FAILED;
	}
	/* Every reply is checked: an error is not a zero. */
	printf("%-24s %s\n", "QUEUE", "JOBS");
	for (size_t i = 0; i < ARRAY_SIZE(prios); i++) {
		rep = redis_expect(r, redisCommand(r, "LLEN {%s}:queue:%s", c.queue_prefix, prios[i]),
				   REDIS_REPLY_INTEGER);
		if (!rep)
			goto out;
		printf("%-24s %lld\n", prios[i], rep->integer);
		freeReplyObject(rep);
	}
	rep = redis_expect(r, redisCommand(r, "ZCARD {%s}:delayed", c.queue_prefix), REDIS_REPLY_INTEGER);
	if (!rep)
		goto out;
	printf("%-24s %lld\n", "delayed retries", rep->integer);
	freeReplyObject(rep);
	execs = redis_expect(r, redisCommand(r, "SMEMBERS {%s}:executors", c.queue_prefix), REDIS_REPLY_ARRAY);
	if (!execs)
		goto out;
	printf("\n%-40s %-8s %s\n", "EXECUTOR", "HOLDING", "HEARTBEAT");
	for (size_t i = 0; i < execs->elements; i++) {
		const char *id = execs->element[i]->str;
		redisReply *n = redis_expect(r, redisCommand(r, "LLEN {%s}:processing:%s", c.queue_prefix, id),
					     REDIS_REPLY_INTEGER);
		redisReply *ttl = n ? redis_expect(r, redisCommand(r, "PTTL {%s}:heartbeat:%s", c.queue_prefix, id),
						   REDIS_REPLY_INTEGER)
				    : NULL;

		if (ttl) {
			char *safe = term_escape_str(id, 0);    /* anyone with Redis access can add one */

			printf("%-40s %-8lld %s\n", safe, n->integer,
			       ttl->integer > 0 ? "live" : "lapsed (jobs are recovered by the others)");
			free(safe);
		}
		freeReplyObject(n);
		if (!ttl)
			goto out;
		freeReplyObject(ttl);
	}
	rc = EXIT_DONE;
out:
	freeReplyObject(execs);
	redisFree(r);
	config_free(&c);
	return rc;
}
