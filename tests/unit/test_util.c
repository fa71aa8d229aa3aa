/* SPDX-License-Identifier: ISC */
/* Unit tests for executor/util.h: the parsers every setting goes through,
 * split_list, the bounded output tail and job id generation. */
#include "unit.h"
#include "util.h"
#include "job.h"

#include <ctype.h>

/* ---- parse_duration_ms ---- */

static int64_t dur_ok(const char *s)
{
	int64_t ms = -12345;

	if (parse_duration_ms(s, &ms) != 0)
		fail_msg("parse_duration_ms(\"%s\") was refused", s);
	return ms;
}

static void dur_bad(const char *s)
{
	int64_t ms = -12345;

	if (parse_duration_ms(s, &ms) != -EINVAL)
		fail_msg("parse_duration_ms(\"%s\") was accepted as %lld ms", s, (long long)ms);
	assert_int_equal(ms, -12345);   /* untouched on error */
}

static void duration_accepts_each_unit(void **state)
{
	assert_int_equal(dur_ok("500ms"), 500);
	assert_int_equal(dur_ok("30s"), 30000);
	assert_int_equal(dur_ok("5m"), 300000);
	assert_int_equal(dur_ok("2h"), 7200000);
	assert_int_equal(dur_ok("7d"), 604800000);
	assert_int_equal(dur_ok("0s"), 0);
}

static void duration_plain_number_is_seconds(void **state)
{
	assert_int_equal(dur_ok("10"), 10000);
	assert_int_equal(dur_ok("0"), 0);
}

static void duration_accepts_fractions(void **state)
{
	assert_int_equal(dur_ok("1.5s"), 1500);
	assert_int_equal(dur_ok("0.5m"), 30000);
	assert_int_equal(dur_ok("1.5h"), 5400000);
}

static void duration_rejects_empty_negative_and_bad_units(void **state)
{
	dur_bad("");
	dur_bad(NULL);
	dur_bad("-1s");
	dur_bad("-1");
	dur_bad("5x");
	dur_bad("s");
	dur_bad("ms");
	dur_bad("5 s");
	dur_bad("5S");
	dur_bad("5sec");
	dur_bad("inf");
	dur_bad("1e300s");
}

static void duration_rejects_not_a_number(void **state)
{
	dur_bad("nan");
	dur_bad("nans");
	dur_bad("NaNms");
}

/* ---- parse_size ---- */

static uint64_t size_ok(const char *s)
{
	uint64_t b = 12345;

	if (parse_size(s, &b) != 0)
		fail_msg("parse_size(\"%s\") was refused", s);
	return b;
}

static void size_bad(const char *s)
{
	uint64_t b = 12345;

	if (parse_size(s, &b) != -EINVAL)
		fail_msg("parse_size(\"%s\") was accepted as %llu", s, (unsigned long long)b);
	assert_int_equal(b, 12345);
}

static void size_accepts_suffixes_and_plain_bytes(void **state)
{
	assert_int_equal(size_ok("512K"), 512 * 1024);
	assert_int_equal(size_ok("1M"), 1024 * 1024);
	assert_int_equal(size_ok("2G"), 2ULL << 30);
	assert_int_equal(size_ok("1T"), 1ULL << 40);
	assert_int_equal(size_ok("10240"), 10240);
	assert_int_equal(size_ok("0"), 0);
	assert_int_equal(size_ok("64m"), 64ULL << 20);
	assert_int_equal(size_ok("1KB"), 1024);
}

static void size_rejects_negative_unknown_suffix_empty(void **state)
{
	size_bad("-1");
	size_bad("-1K");
	size_bad("2Q");
	size_bad("");
	size_bad(NULL);
	size_bad("K");
	size_bad("1KK");
	size_bad("1.5G");
	size_bad("12 K");
}

static void size_rejects_overflow(void **state)
{
	size_bad("18446744073709551616");       /* 2^64 */
	size_bad("99999999999999999999999");
	size_bad("16777216T");                  /* 2^24 * 2^40 = 2^64 */
	size_bad("17179869184G");               /* 2^34 * 2^30 = 2^64 */
	assert_int_equal(size_ok("18446744073709551615"), UINT64_MAX);
}

static void size_rejects_negative_after_blank(void **state)
{
	size_bad(" -1");
	size_bad("\t-1K");
}

/* ---- parse_int / parse_bool ---- */

static void int_within_bounds_accepted(void **state)
{
	long v = 0;

	assert_int_equal(parse_int("1", 1, 256, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(parse_int("256", 1, 256, &v), 0);
	assert_int_equal(v, 256);
	assert_int_equal(parse_int("-5", -10, 10, &v), 0);
	assert_int_equal(v, -5);
}

static void int_outside_bounds_or_garbage_refused(void **state)
{
	long v = 77;

	assert_int_equal(parse_int("0", 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int("257", 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int("zero", 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int("", 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int(NULL, 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int("5x", 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int("1.0", 1, 256, &v), -EINVAL);
	assert_int_equal(parse_int("99999999999999999999999", 0, 100, &v), -EINVAL);
	assert_int_equal(v, 77);
}

static void bool_accepts_common_spellings(void **state)
{
	const char *yes[] = { "1", "true", "TRUE", "yes", "Yes", "on" };
	const char *no[] = { "0", "false", "False", "no", "NO", "off" };
	const char *bad[] = { "", "2", "y", "n", "enabled", "truee" };
	bool b;

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		b = false;
		assert_int_equal(parse_bool(yes[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
		b = true;
		assert_int_equal(parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(parse_bool(bad[i], &b), -EINVAL);
}

/* ---- split_list ---- */

static void split_list_trims_blanks(void **state)
{
	char **v = split_list("a, b,c ,\td\t", ',');

	assert_int_equal(strv_len(v), 4);
	assert_string_equal(v[0], "a");
	assert_string_equal(v[1], "b");
	assert_string_equal(v[2], "c");
	assert_string_equal(v[3], "d");
	assert_null(v[4]);
	strv_free(v);
}

static void split_list_drops_empty_items(void **state)
{
	char **v = split_list(" , tasks,, ,abuse, ", ',');

	assert_int_equal(strv_len(v), 2);
	assert_string_equal(v[0], "tasks");
	assert_string_equal(v[1], "abuse");
	strv_free(v);

	v = split_list("", ',');
	assert_int_equal(strv_len(v), 0);
	assert_null(v[0]);
	strv_free(v);

	v = split_list(NULL, ',');
	assert_int_equal(strv_len(v), 0);
	strv_free(v);
}

static void split_list_other_separator_and_many_items(void **state)
{
	char **v = split_list("/opt/a:/opt/b::/opt/c", ':');

	assert_int_equal(strv_len(v), 3);
	assert_string_equal(v[2], "/opt/c");
	strv_free(v);

	/* more items than the initial capacity */
	v = split_list("1,2,3,4,5,6,7,8,9,10", ',');
	assert_int_equal(strv_len(v), 10);
	assert_string_equal(v[9], "10");
	assert_null(v[10]);
	strv_free(v);
}

/* ---- tail ---- */

static void tail_keeps_everything_under_the_cap(void **state)
{
	struct tail t;
	char *s;

	tail_init(&t, 16);
	tail_push(&t, "hello ", 6);
	tail_push(&t, "world", 5);
	s = tail_string(&t);
	assert_string_equal(s, "hello world");
	assert_int_equal(t.total, 11);
	free(s);
	tail_free(&t);
}

static void tail_keeps_last_bytes_and_marks_dropped(void **state)
{
	struct tail t;
	char *s;

	tail_init(&t, 8);
	tail_push(&t, "hello", 5);
	tail_push(&t, "world!", 6);
	assert_int_equal(t.len, 8);
	assert_int_equal(t.total, 11);
	s = tail_string(&t);
	assert_string_equal(s, "[... 3 bytes dropped]\nloworld!");
	free(s);
	tail_free(&t);
}

static void tail_push_larger_than_cap_keeps_its_end(void **state)
{
	struct tail t;
	char *s;

	tail_init(&t, 4);
	tail_push(&t, "ab", 2);
	tail_push(&t, "0123456789", 10);
	s = tail_string(&t);
	assert_string_equal(s, "[... 8 bytes dropped]\n6789");
	free(s);
	tail_free(&t);
}

static void tail_many_small_pushes_stay_bounded(void **state)
{
	struct tail t;
	char *s;

	tail_init(&t, 10);
	for (int i = 0; i < 100000; i++)
		tail_push(&t, i % 2 ? "b" : "a", 1);
	assert_int_equal(t.len, 10);
	assert_int_equal(t.total, 100000);
	s = tail_string(&t);
	assert_string_equal(s, "[... 99990 bytes dropped]\nababababab");
	free(s);
	tail_free(&t);
}

static void tail_empty_is_empty_string(void **state)
{
	struct tail t;
	char *s;

	tail_init(&t, 8);
	s = tail_string(&t);
	assert_string_equal(s, "");
	free(s);
	tail_free(&t);
}

/* ---- make_job_id ---- */

static void job_id_is_uuid_v7_shaped(void **state)
{
	char id[37];

	for (int n = 0; n < 50; n++) {
		memset(id, 'X', sizeof(id));
		make_job_id(id);
		assert_int_equal(strlen(id), 36);
		for (int i = 0; i < 36; i++) {
			if (i == 8 || i == 13 || i == 18 || i == 23)
				assert_int_equal(id[i], '-');
			else if (!isxdigit((unsigned char)id[i]) || isupper((unsigned char)id[i]))
				fail_msg("'%s': char %d is not a lower-case hex digit", id, i);
		}
		assert_int_equal(id[14], '7');                  /* version nibble */
		assert_non_null(strchr("89ab", id[19]));        /* RFC 4122 variant */
		assert_true(job_id_valid(id));
	}
}

static void job_id_starts_with_the_time_and_differs(void **state)
{
	char a[37], b[37], hex[13];
	unsigned long long ms;
	int64_t before = wall_ms(), after;

	make_job_id(a);
	make_job_id(b);
	after = wall_ms();
	assert_string_not_equal(a, b);
	memcpy(hex, a, 8);
	memcpy(hex + 8, a + 9, 4);
	hex[12] = '\0';
	ms = strtoull(hex, NULL, 16);
	assert_in_range(ms, (unsigned long long)before, (unsigned long long)after);
}

/* ---- term_escape ---- */

static void esc_is(const char *in, size_t n, unsigned flags, const char *want)
{
	char *got = term_escape(in, n, flags);

	assert_string_equal(got, want);
	free(got);
}

/* The literal's length, so embedded NULs count. */
#define ESC_IS(lit, flags, want) esc_is(lit, sizeof(lit) - 1, flags, want)

static void term_escape_leaves_no_control_for_a_terminal(void **state)
{
	ESC_IS("\x1b]0;pwned\x07", 0, "\\x1b]0;pwned\\x07");
	ESC_IS("a\rb\nc\td", 0, "a\\x0db\\x0ac\td");
	ESC_IS("a\nb", TERM_KEEP_NL, "a\nb");
	ESC_IS("\xc2\x9b" "2J\x7f", 0, "\\x9b2J\\x7f");           /* C1 CSI, DEL */
	ESC_IS("\x9b\xff", 0, "\\x9b\\xff");                    /* not UTF-8 */
	ESC_IS("nul\0x", 0, "nul\\x00x");
	ESC_IS("caf\xc3\xa9 \xe2\x82\xac \\x1b", 0, "caf\xc3\xa9 \xe2\x82\xac \\x1b");
	{
		char *empty = term_escape_str(NULL, 0);

		assert_string_equal(empty, "");
		free(empty);
	}
}

static void term_escape_json_stays_equal_json(void **state)
{
	ESC_IS("{\"t\":\"\xc2\x9b\x7f\"}", TERM_JSON, "{\"t\":\"\\u009b\\u007f\"}");
	ESC_IS("{\n  \"t\": \"\xff\"\n}", TERM_JSON | TERM_KEEP_NL, "{\n  \"t\": \"\\ufffd\"\n}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(duration_accepts_each_unit),
		cmocka_unit_test(duration_plain_number_is_seconds),
		cmocka_unit_test(duration_accepts_fractions),
		cmocka_unit_test(duration_rejects_empty_negative_and_bad_units),
		cmocka_unit_test(duration_rejects_not_a_number),
		cmocka_unit_test(size_accepts_suffixes_and_plain_bytes),
		cmocka_unit_test(size_rejects_negative_unknown_suffix_empty),
		cmocka_unit_test(size_rejects_overflow),
		cmocka_unit_test(size_rejects_negative_after_blank),
		cmocka_unit_test(int_within_bounds_accepted),
		cmocka_unit_test(int_outside_bounds_or_garbage_refused),
		cmocka_unit_test(bool_accepts_common_spellings),
		cmocka_unit_test(split_list_trims_blanks),
		cmocka_unit_test(split_list_drops_empty_items),
		cmocka_unit_test(split_list_other_separator_and_many_items),
		cmocka_unit_test(tail_keeps_everything_under_the_cap),
		cmocka_unit_test(tail_keeps_last_bytes_and_marks_dropped),
		cmocka_unit_test(tail_push_larger_than_cap_keeps_its_end),
		cmocka_unit_test(tail_many_small_pushes_stay_bounded),
		cmocka_unit_test(tail_empty_is_empty_string),
		cmocka_unit_test(term_escape_leaves_no_control_for_a_terminal),
		cmocka_unit_test(term_escape_json_stays_equal_json),
		cmocka_unit_test(job_id_is_uuid_v7_shaped),
		cmocka_unit_test(job_id_starts_with_the_time_and_differs),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
