/* SPDX-License-Identifier: ISC */
/* Unit tests for the TASKEXEC_REDIS_URL forms of executor/queue.h: redis://,
 * unix://, redis+sentinel://, their one-line errors, and the handshake's
 * ROLE check that keeps a replica from being written to. */
#include "unit.h"
#include "queue.h"

#include <stdlib.h>
#include <string.h>

static struct redis_target parse_ok(const char *url)
{
	struct redis_target t;
	char *err = NULL;

	if (redis_url_parse(url, &t, &err) != 0)
		fail_msg("redis_url_parse(\"%s\") was refused: %s", url, err);
	return t;
}

static char *parse_err(const char *url)
{
	struct redis_target t;
	char *err = NULL;

	if (redis_url_parse(url, &t, &err) == 0)
		fail_msg("redis_url_parse(\"%s\") was accepted", url);
	assert_non_null(err);
	assert_null(strchr(err, '\n'));         /* one line */
	return err;
}

static void plain_url_keeps_its_parts(void **state)
{
	struct redis_target t = parse_ok("redis://app:s3cret@redis.internal:6380/2");

	assert_string_equal(t.host, "redis.internal");
	assert_int_equal(t.port, 6380);
	assert_int_equal(t.db, 2);
	assert_string_equal(t.user, "app");
	assert_string_equal(t.password, "s3cret");
	assert_null(t.master_name);
	assert_int_equal(t.n_sentinels, 0);
	redis_target_free(&t);
}

static void unix_url_keeps_path_and_db(void **state)
{
	struct redis_target t = parse_ok("unix:///run/redis.sock?db=3");

	assert_string_equal(t.path, "/run/redis.sock");
	assert_int_equal(t.db, 3);
	redis_target_free(&t);
}

static void sentinel_url_lists_every_sentinel_with_default_port(void **state)
{
	struct redis_target t = parse_ok("redis+sentinel://s1:26380,s2,10.0.0.3:5000/mymaster/4");

	assert_int_equal(t.n_sentinels, 3);
	assert_string_equal(t.sentinel_hosts[0], "s1");
	assert_int_equal(t.sentinel_ports[0], 26380);
	assert_string_equal(t.sentinel_hosts[1], "s2");
	assert_int_equal(t.sentinel_ports[1], 26379);
	assert_string_equal(t.sentinel_hosts[2], "10.0.0.3");
	assert_int_equal(t.sentinel_ports[2], 5000);
	assert_string_equal(t.master_name, "mymaster");
	assert_int_equal(t.db, 4);
	assert_null(t.host);    /* the master: unknown until a sentinel names it */
	assert_null(t.password);
	redis_target_free(&t);
}

static void sentinel_url_db_defaults_to_zero(void **state)
{
	struct redis_target t = parse_ok("redis+sentinel://s1/mymaster");

	assert_int_equal(t.db, 0);
	assert_string_equal(t.master_name, "mymaster");
	redis_target_free(&t);
}

static void sentinel_url_separates_master_and_sentinel_credentials(void **state)
{
	struct redis_target t =
		parse_ok("redis+sentinel://app:m@st:er@s1:26379,s2:26379/mymaster/0?sentinel_user=watch&sentinel_password=sp");

	assert_string_equal(t.user, "app");
	assert_string_equal(t.password, "m@st:er");     /* the last '@' ends the credentials */
	assert_string_equal(t.sentinel_user, "watch");
	assert_string_equal(t.sentinel_password, "sp");
	assert_int_equal(t.n_sentinels, 2);
	redis_target_free(&t);
}

static void sentinel_url_password_alone_is_the_default_user(void **state)
{
	struct redis_target t = parse_ok("redis+sentinel://:pw@s1/mymaster?sentinel_password=x");

	assert_null(t.user);
	assert_string_equal(t.password, "pw");
	assert_null(t.sentinel_user);
	assert_string_equal(t.sentinel_password, "x");
	redis_target_free(&t);
}

static void sentinel_url_errors_name_what_is_wrong(void **state)
{
	char *e;

	e = parse_err("redis+sentinel://s1:26379");
	assert_contains(e, "names no master");
	free(e);
	e = parse_err("redis+sentinel://s1:26379/");
	assert_contains(e, "names no master");
	free(e);
	e = parse_err("redis+sentinel:///mymaster");
	assert_contains(e, "names no sentinel");
	free(e);
	e = parse_err("redis+sentinel://s1:99999/mymaster");
	assert_contains(e, "bad sentinel address 's1:99999'");
	free(e);
	e = parse_err("redis+sentinel://s1,,s2/mymaster");
	assert_contains(e, "bad sentinel address ''");
	free(e);
	e = parse_err("redis+sentinel://s1/mymaster/x");
	assert_contains(e, "database 'x' is not a number");
	free(e);
	e = parse_err("redis+sentinel://s1/mymaster?password=secret");
	assert_contains(e, "unknown option 'password'");
	assert_not_contains(e, "secret");
	free(e);
}

static void unknown_scheme_lists_every_form(void **state)
{
	char *e = parse_err("rediss://host");

	assert_contains(e, "redis://");
	assert_contains(e, "unix://");
	assert_contains(e, "redis+sentinel://");
	free(e);
}

static void errors_never_carry_the_password(void **state)
{
	char *e = parse_err("redis+sentinel://:hunter2@s1:0/mymaster");

	assert_not_contains(e, "hunter2");
	free(e);
}

/* ---- handshake ---- */

static redisReply *str_reply(int type, const char *s)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = type;
	r->str = strdup(s);
	r->len = strlen(s);
	return r;
}

static void role_is_asked_only_through_sentinel(void **state)
{
	struct redis_target plain = parse_ok("redis://h:1/0"), sent = parse_ok("redis+sentinel://s1/m");
	const char *argv[3];
	char db[16];

	assert_int_equal(redis_handshake_step(&plain, REDIS_HS_ROLE, argv, db), 0);
	assert_int_equal(redis_handshake_step(&sent, REDIS_HS_ROLE, argv, db), 1);
	assert_string_equal(argv[0], "ROLE");
	redis_target_free(&plain);
	redis_target_free(&sent);
}

static void role_of_a_replica_is_refused(void **state)
{
	struct redis_target t = parse_ok("redis+sentinel://s1/mymaster");
	redisReply role = { .type = REDIS_REPLY_ARRAY, .elements = 1 };
	redisReply *el[1];
	char *err;

	t.host = strdup("10.0.0.9");
	t.port = 6379;
	el[0] = str_reply(REDIS_REPLY_STRING, "slave");
	role.element = el;
	err = redis_handshake_check(&t, REDIS_HS_ROLE, &role);
	assert_non_null(err);
	assert_contains(err, "10.0.0.9:6379 is not the master of mymaster");
	free(err);
	free(el[0]->str);
	el[0]->str = strdup("master");
	assert_null(redis_handshake_check(&t, REDIS_HS_ROLE, &role));
	free(el[0]->str);
	free(el[0]);
	redis_target_free(&t);
}

static void auth_failure_hides_the_password(void **state)
{
	struct redis_target t = parse_ok("redis+sentinel://app:pa55@s1/m");
	redisReply *r = str_reply(REDIS_REPLY_ERROR, "WRONGPASS invalid username-password pair pa55");
	char *err = redis_handshake_check(&t, REDIS_HS_AUTH, r);

	assert_contains(err, "authentication failed for user app");
	assert_not_contains(err, "pa55");
	free(err);
	free(r->str);
	free(r);
	redis_target_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(plain_url_keeps_its_parts),
		cmocka_unit_test(unix_url_keeps_path_and_db),
		cmocka_unit_test(sentinel_url_lists_every_sentinel_with_default_port),
		cmocka_unit_test(sentinel_url_db_defaults_to_zero),
		cmocka_unit_test(sentinel_url_separates_master_and_sentinel_credentials),
		cmocka_unit_test(sentinel_url_password_alone_is_the_default_user),
		cmocka_unit_test(sentinel_url_errors_name_what_is_wrong),
		cmocka_unit_test(unknown_scheme_lists_every_form),
		cmocka_unit_test(errors_never_carry_the_password),
		cmocka_unit_test(role_is_asked_only_through_sentinel),
		cmocka_unit_test(role_of_a_replica_is_refused),
		cmocka_unit_test(auth_failure_hides_the_password),
	};

	return cmocka_run_group_tests_name("redis_url", tests, NULL, NULL);
}
