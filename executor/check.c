/* SPDX-License-Identifier: ISC */
/* check — taskexecd --check --connect (see check.h). */
#include "check.h"
#include "queue.h"
#include "schema.sql.h"
#include "util.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_TIMEOUT_S 5

static int check_redis(const struct config *c, FILE *out, FILE *err)
{
	struct redis_target t;
	struct timeval tv = { CHECK_TIMEOUT_S, 0 };
	redisContext *r = NULL;
	char *masked = config_mask_url(c->redis_url), *why = NULL;
	int rc = -1;

	if (redis_url_parse(c->redis_url, &t, &why) < 0) {
		fprintf(err, "TASKEXEC_REDIS_URL: %s\n", why);
		free(why);
		free(masked);
		return -1;
	}
	r = t.path ? redisConnectUnixWithTimeout(t.path, tv) : redisConnectWithTimeout(t.host, t.port, tv);
	if (!r || r->err) {
		why = xstrdup(r ? r->errstr : "out of memory");
		goto out;
	}
	/* hiredis opens its socket without O_CLOEXEC; nothing is exec'd here,
	 * but the rule holds for every fd. */
	fcntl(r->fd, F_SETFD, FD_CLOEXEC);
	redisSetTimeout(r, tv);
	if (redis_handshake(r, &t, &why) < 0)
		goto out;
	fprintf(out, "# redis: ok (PING answered at %s)\n", masked);
	rc = 0;
out:
	if (rc < 0)
		fprintf(err, "TASKEXEC_REDIS_URL: Redis at %s: %s\n", masked,
			strncmp(why, "Redis: ", 7) ? why : why + 7);
	free(why);
	free(masked);
	redisFree(r);
	redis_target_free(&t);
	return rc;
}

/* libpq's message on one line, and without the password should a server
 * ever echo it. */
static char *pg_one_line(const char *msg, const char *conninfo)
{
	char *s = xstrdup(msg), *w = s, *pw = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	bool blank = false;

	for (const char *r = msg; *r; r++) {
		bool space = *r == '\n' || *r == '\t' || *r == ' ' || *r == '\r';

		if (space) {
			blank = w > s;
			continue;
		}
		if (blank)
			*w++ = ' ';
		blank = false;
		*w++ = *r;
	}
	*w = '\0';
	for (PQconninfoOption *o = opts; o && o->keyword; o++)
		if (!strcmp(o->keyword, "password") && o->val && *o->val)
			pw = o->val;
	for (char *at; pw && (at = strstr(s, pw));)
		memset(at, '*', strlen(pw));
	PQconninfoFree(opts);
	return s;
}

static int check_postgres(const struct config *c, FILE *out, FILE *err)
{
	static const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *values[] = { "5", "taskexecd --check", c->db_url, NULL };
	const size_t known = ARRAY_SIZE(schema_migrations);
	char *masked = config_mask_url(c->db_url), *why = NULL;
	PGconn *db = PQconnectdbParams(keys, values, 1);
	PGresult *res = NULL;
	int rc = -1;

	if (PQstatus(db) != CONNECTION_OK) {
		why = pg_one_line(PQerrorMessage(db), c->db_url);
		goto out;
	}
	res = PQexec(db, "SELECT to_regclass('taskexec.schema_version') IS NOT NULL, "
			 "has_database_privilege(current_database(), 'CREATE'), current_user, current_database()");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		why = pg_one_line(PQresultErrorMessage(res), c->db_url);
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t")) {
		/* The daemon creates the schema at start: the role must be allowed to. */
		if (strcmp(PQgetvalue(res, 0, 1), "t"))
			why = xasprintf("no schema taskexec yet, and role %s may not create one in database %s",
					PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3));
		else
			fprintf(out, "# postgres: ok (no schema taskexec yet: taskexecd creates it at start)\n");
		rc = why ? -1 : 0;
		goto out;
	}
	PQclear(res);
	res = PQexec(db, "SELECT COALESCE(max(version), 0) FROM taskexec.schema_version");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		why = pg_one_line(PQresultErrorMessage(res), c->db_url);
		goto out;
	}
	{
		size_t version = strtoul(PQgetvalue(res, 0, 0), NULL, 10);

		if (version > known)
			why = xasprintf("schema taskexec is at version %zu, newer than this taskexecd knows (%zu)",
					version, known);
		else if (version < known)
			fprintf(out, "# postgres: ok (schema taskexec at version %zu: taskexecd migrates it to %zu at start)\n",
				version, known);
		else
			fprintf(out, "# postgres: ok (schema taskexec at version %zu)\n", version);
	}
	rc = why ? -1 : 0;
out:
	if (why)
		fprintf(err, "TASKEXEC_DB_URL: PostgreSQL at %s: %s\n", masked, why);
	free(why);
	free(masked);
	PQclear(res);
	PQfinish(db);
	return rc;
}

int check_connect(const struct config *c, FILE *out, FILE *err)
{
	int failed = 0;

	failed += check_redis(c, out, err) < 0;
	failed += check_postgres(c, out, err) < 0;
	return failed;
}
