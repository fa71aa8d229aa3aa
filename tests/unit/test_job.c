/* SPDX-License-Identifier: ISC */
/* Unit tests for executor/job.h: the job wire format (DESIGN.md §4), ENTRY and
 * k=v parsing, the module target check against the task roots, the canonical
 * form signatures cover, and the policy-bound checks of job_prepare. */
#include "unit.h"
#include "job.h"
#include "util.h"

#include <limits.h>
#include <strings.h>

#define VALID_JOB                                                                         \
	"{\"job_id\": \"01937c1e-5d2a-7b10-9a3e-2f4c1d9e8a77\", \"task_type\": \"etl\","  \
	" \"module_path\": \"tasks.f5portalupdate.main\", \"class_name\": null,"          \
	" \"method_name\": \"run\", \"parameters\": {\"customer_id\": 42, \"full_rebuild\": false}," \
	" \"idempotency_key\": \"f5portal-42-2026-11-26\", \"priority\": \"high\","      \
	" \"timeout_seconds\": 600, \"max_retries\": 2,"                                  \
	" \"enqueued_at\": \"2026-11-26T05:00:00.123Z\", \"signature\": \"c2ln\"}"

/* Parse TEXT; on failure return the error text (caller frees), else NULL. */
static char *parse_err(const char *text)
{
	struct job j = { 0 };
	char *err = NULL;
	int r = job_parse(text, strlen(text), &j, &err);

	job_free(&j);
	if (r == 0) {
		assert_null(err);
		return NULL;
	}
	assert_int_equal(r, -1);
	assert_non_null(err);
	assert_null(strchr(err, '\n'));         /* one line */
	return err;
}

/* VALID_JOB with FIELD set to the JSON text VALUE (NULL: removed). */
static char *variant(const char *field, const char *value)
{
	json_t *doc = json_loads(VALID_JOB, 0, NULL);
	char *s;

	assert_non_null(doc);
	if (value) {
		json_t *v = json_loads(value, JSON_DECODE_ANY, NULL);

		assert_non_null(v);
		json_object_set_new(doc, field, v);
	} else {
		json_object_del(doc, field);
	}
	s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return s;
}

static void expect_variant_rejected(const char *field, const char *value, const char *message)
{
	char *p = variant(field, value), *err = parse_err(p);

	if (!err)
		fail_msg("payload accepted: %s", p);
	assert_contains(err, message);
	free(err);
	free(p);
}

static void expect_variant_accepted(const char *field, const char *value)
{
	char *p = variant(field, value), *err = parse_err(p);

	if (err)
		fail_msg("payload %s refused: %s", p, err);
	free(p);
}

/* ---- job_parse: the happy path ---- */

static void full_payload_parses_every_field(void **state)
{
	struct job j = { 0 };
	char *err = NULL;

	assert_int_equal(job_parse(VALID_JOB, strlen(VALID_JOB), &j, &err), 0);
	assert_null(err);
	assert_string_equal(j.job_id, "01937c1e-5d2a-7b10-9a3e-2f4c1d9e8a77");
	assert_string_equal(j.task_type, "etl");
	assert_string_equal(j.module_path, "tasks.f5portalupdate.main");
	assert_null(j.class_name);
	assert_string_equal(j.method_name, "run");
	assert_true(json_is_object(j.parameters));
	assert_int_equal(json_integer_value(json_object_get(j.parameters, "customer_id")), 42);
	assert_true(json_is_false(json_object_get(j.parameters, "full_rebuild")));
	assert_string_equal(j.idempotency_key, "f5portal-42-2026-11-26");
	assert_string_equal(j.priority, "high");
	assert_int_equal(j.timeout_seconds, 600);
	assert_int_equal(j.max_retries, 2);
	assert_string_equal(j.signature, "c2ln");
	job_free(&j);
}

static void minimal_payload_gets_defaults(void **state)
{
	const char *p = "{\"job_id\":\"j1\",\"task_type\":\"ad_hoc\",\"module_path\":\"tasks.mod\","
			"\"method_name\":\"run\"}";
	struct job j = { 0 };
	char *err = NULL;

	assert_int_equal(job_parse(p, strlen(p), &j, &err), 0);
	assert_true(json_is_object(j.parameters));
	assert_int_equal(json_object_size(j.parameters), 0);
	assert_null(j.class_name);
	assert_null(j.idempotency_key);
	assert_null(j.priority);
	assert_null(j.signature);
	assert_int_equal(j.timeout_seconds, -1);
	assert_int_equal(j.max_retries, -1);
	/* the payload itself stays as sent: a signature covers exactly that */
	assert_null(json_object_get(j.doc, "parameters"));
	job_free(&j);
}

static void null_parameters_become_empty_object(void **state)
{
	expect_variant_accepted("parameters", "null");
}

static void class_name_is_kept(void **state)
{
	char *p = variant("class_name", "\"Portal\"");
	struct job j = { 0 };
	char *err = NULL;

	assert_int_equal(job_parse(p, strlen(p), &j, &err), 0);
	assert_string_equal(j.class_name, "Portal");
	job_free(&j);
	free(p);
}

/* ---- job_parse: required fields ---- */

static void missing_job_id_is_named(void **state)
{
	expect_variant_rejected("job_id", NULL, "job_id: required field is missing");
}

static void missing_task_type_is_named(void **state)
{
	expect_variant_rejected("task_type", NULL, "task_type: required field is missing");
}

static void missing_module_path_is_named(void **state)
{
	expect_variant_rejected("module_path", NULL, "module_path: required field is missing");
}

static void missing_method_name_is_named(void **state)
{
	expect_variant_rejected("method_name", NULL, "method_name: required field is missing");
}

static void null_required_field_counts_as_missing(void **state)
{
	expect_variant_rejected("method_name", "null", "method_name: required field is missing");
}

static void non_string_field_is_named(void **state)
{
	expect_variant_rejected("job_id", "5", "job_id: must be a string");
	expect_variant_rejected("task_type", "[\"etl\"]", "task_type: must be a string");
	expect_variant_rejected("idempotency_key", "7", "idempotency_key: must be a string");
	expect_variant_rejected("enqueued_at", "5", "enqueued_at: must be a string");
}

/* ---- job_parse: job_id ---- */

static void job_id_with_bad_characters_rejected(void **state)
{
	expect_variant_rejected("job_id", "\"a b\"", "job_id: must be 1-64 characters");
	expect_variant_rejected("job_id", "\"a/b\"", "job_id: must be 1-64 characters");
	expect_variant_rejected("job_id", "\"caf\\u00e9\"", "job_id: must be 1-64 characters");
	expect_variant_rejected("job_id", "\"x;rm\"", "job_id: must be 1-64 characters");
	expect_variant_rejected("job_id", "\"\"", "job_id: must be 1-64 characters");
}

static void job_id_length_limit_is_64(void **state)
{
	char v[80];

	v[0] = '"';
	memset(v + 1, 'a', 64);
	strcpy(v + 65, "\"");
	expect_variant_accepted("job_id", v);
	v[0] = '"';
	memset(v + 1, 'b', 65);
	strcpy(v + 66, "\"");
	expect_variant_rejected("job_id", v, "job_id: must be 1-64 characters");
}

static void job_id_allows_documented_punctuation(void **state)
{
	expect_variant_accepted("job_id", "\"A-z_0.9:x\"");
}

/* ---- job_parse: module, class and method names ---- */

static void module_path_with_underscore_component_rejected(void **state)
{
	expect_variant_rejected("module_path", "\"tasks.__init__\"",
				"module_path: 'tasks.__init__' is not a dotted name");
	expect_variant_rejected("module_path", "\"tasks._private\"", "module_path: 'tasks._private'");
	expect_variant_rejected("module_path", "\"_tasks.mod\"", "module_path: '_tasks.mod'");
}

static void module_path_with_empty_component_rejected(void **state)
{
	expect_variant_rejected("module_path", "\"tasks..x\"", "module_path: 'tasks..x' is not a dotted name");
	expect_variant_rejected("module_path", "\"tasks.\"", "module_path: 'tasks.' is not a dotted name");
	expect_variant_rejected("module_path", "\".tasks\"", "module_path: '.tasks' is not a dotted name");
	expect_variant_rejected("module_path", "\"\"", "module_path: '' is not a dotted name");
}

static void module_path_non_identifier_rejected(void **state)
{
	expect_variant_rejected("module_path", "\"tasks.1x\"", "module_path: 'tasks.1x'");
	expect_variant_rejected("module_path", "\"tasks-x\"", "module_path: 'tasks-x'");
	expect_variant_rejected("module_path", "\"tasks/x\"", "module_path: 'tasks/x'");
	expect_variant_rejected("module_path", "\"tasks.x y\"", "module_path: 'tasks.x y'");
	expect_variant_rejected("module_path", "\"tasks.caf\\u00e9\"", "module_path:");
	expect_variant_accepted("module_path", "\"tasks.m1.x_2\"");
}

static void class_and_method_with_dunder_rejected(void **state)
{
	expect_variant_rejected("method_name", "\"__init__\"", "method_name: '__init__' is not a dotted name");
	expect_variant_rejected("method_name", "\"_helper\"", "method_name: '_helper'");
	expect_variant_rejected("class_name", "\"_Hidden\"", "class_name: '_Hidden' is not a dotted name");
	expect_variant_rejected("class_name", "\"A..B\"", "class_name: 'A..B'");
}

/* ---- job_parse: other fields ---- */

static void unknown_field_rejected_naming_it(void **state)
{
	expect_variant_rejected("foo", "1", "foo: unknown field");
	expect_variant_rejected("Job_Id", "\"x\"", "Job_Id: unknown field");
}

static void parameters_not_an_object_rejected(void **state)
{
	expect_variant_rejected("parameters", "[1, 2]", "parameters: must be a JSON object");
	expect_variant_rejected("parameters", "\"customer_id=42\"", "parameters: must be a JSON object");
	expect_variant_rejected("parameters", "42", "parameters: must be a JSON object");
}

static void parameter_key_not_identifier_rejected(void **state)
{
	expect_variant_rejected("parameters", "{\"1bad\": 1}",
				"parameters.1bad: not a valid Python keyword argument name");
	expect_variant_rejected("parameters", "{\"a-b\": 1}", "parameters.a-b: not a valid Python keyword");
	expect_variant_rejected("parameters", "{\"\": 1}", "parameters.: not a valid Python keyword");
	expect_variant_rejected("parameters", "{\"a b\": 1}", "parameters.a b:");
}

static void priority_must_be_high_normal_or_low(void **state)
{
	expect_variant_rejected("priority", "\"urgent\"", "priority: must be high, normal or low");
	expect_variant_rejected("priority", "\"HIGH\"", "priority: must be high, normal or low");
	expect_variant_accepted("priority", "\"low\"");
	expect_variant_accepted("priority", "\"normal\"");
}

static void timeout_seconds_must_be_positive_integer(void **state)
{
	expect_variant_rejected("timeout_seconds", "0", "timeout_seconds: must be a whole number from 1 to");
	expect_variant_rejected("timeout_seconds", "-5", "timeout_seconds: must be a whole number");
	expect_variant_rejected("timeout_seconds", "1.5", "timeout_seconds: must be a whole number");
	expect_variant_rejected("timeout_seconds", "\"600\"", "timeout_seconds: must be a whole number");
	expect_variant_rejected("timeout_seconds", "true", "timeout_seconds: must be a whole number");
	expect_variant_accepted("timeout_seconds", "1");
}

static void max_retries_bounds(void **state)
{
	expect_variant_rejected("max_retries", "-1", "max_retries: must be a whole number from 0 to 100");
	expect_variant_rejected("max_retries", "101", "max_retries: must be a whole number from 0 to 100");
	expect_variant_accepted("max_retries", "0");
}

static void idempotency_key_empty_rejected(void **state)
{
	expect_variant_rejected("idempotency_key", "\"\"", "idempotency_key: must be 1-256 characters");
}

static void task_type_must_be_a_name(void **state)
{
	expect_variant_rejected("task_type", "\"etl!\"", "task_type: 'etl!' is not a valid task type name");
	expect_variant_rejected("task_type", "\"../etc\"", "task_type:");
	expect_variant_rejected("task_type", "\"\"", "task_type:");
}

/* ---- job_parse: the document as a whole ---- */

static void invalid_json_says_so(void **state)
{
	char *err = parse_err("{\"job_id\": ");

	assert_non_null(err);
	assert_contains(err, "invalid JSON");
	assert_contains(err, "payload:");
	free(err);

	err = parse_err("");
	assert_contains(err, "invalid JSON");
	free(err);
}

static void payload_must_be_an_object(void **state)
{
	char *err = parse_err("[1, 2, 3]");

	assert_contains(err, "payload: must be a JSON object");
	free(err);
	err = parse_err("\"job\"");
	assert_non_null(err);   /* a bare string is not even accepted by the decoder */
	free(err);
}

static void duplicate_keys_rejected(void **state)
{
	const char *p = "{\"job_id\":\"a\",\"job_id\":\"b\",\"task_type\":\"etl\",\"module_path\":\"tasks.m\","
			"\"method_name\":\"run\"}";
	char *err = parse_err(p);

	assert_non_null(err);
	assert_contains(err, "duplicate");
	free(err);

	err = parse_err("{\"job_id\":\"a\",\"task_type\":\"etl\",\"module_path\":\"tasks.m\","
			"\"method_name\":\"run\",\"parameters\":{\"x\":1,\"x\":2}}");
	assert_contains(err, "duplicate");
	free(err);
}

/* A payload whose nesting depth is DEPTH, counting the top-level object as 1
 * and parameters as 2, then DEPTH - 2 nested arrays. */
static char *nested(int depth)
{
	size_t cap = 256 + 2 * (size_t)depth;
	char *s = malloc(cap), *q;

	assert_non_null(s);
	q = s + sprintf(s, "{\"job_id\":\"d\",\"task_type\":\"etl\",\"module_path\":\"tasks.m\","
			   "\"method_name\":\"run\",\"parameters\":{\"x\":");
	for (int i = 0; i < depth - 2; i++)
		*q++ = '[';
	*q++ = '1';
	for (int i = 0; i < depth - 2; i++)
		*q++ = ']';
	strcpy(q, "}}");
	return s;
}

static void depth_32_accepted(void **state)
{
	char *p = nested(32), *err = parse_err(p);

	if (err)
		fail_msg("depth 32 refused: %s", err);
	free(p);
}

static void depth_33_rejected(void **state)
{
	char *p = nested(33), *err = parse_err(p);

	assert_contains(err, "payload: nested deeper than 32 levels");
	free(err);
	free(p);
}

static void very_deep_payload_rejected_not_crashing(void **state)
{
	char *p = nested(5000), *err = parse_err(p);

	assert_non_null(err);
	assert_contains(err, "payload:");
	free(err);
	free(p);
}

/* A valid payload of exactly N bytes (padding in a string parameter). */
static char *sized(size_t n)
{
	const char *head = "{\"job_id\":\"big\",\"task_type\":\"etl\",\"module_path\":\"tasks.m\","
			   "\"method_name\":\"run\",\"parameters\":{\"pad\":\"";
	const char *tail = "\"}}";
	size_t h = strlen(head), t = strlen(tail);
	char *s = malloc(n + 1);

	assert_non_null(s);
	assert_true(n > h + t);
	memcpy(s, head, h);
	memset(s + h, 'x', n - h - t);
	memcpy(s + n - t, tail, t + 1);
	assert_int_equal(strlen(s), n);
	return s;
}

static void payload_of_exactly_1_mib_accepted(void **state)
{
	char *p = sized(1 << 20), *err = parse_err(p);

	if (err)
		fail_msg("1 MiB payload refused: %s", err);
	free(p);
}

static void payload_over_1_mib_rejected(void **state)
{
	char *p = sized((1 << 20) + 1), *err = parse_err(p);

	assert_contains(err, "payload: 1048577 bytes is over the limit of 1048576");
	free(err);
	free(p);
}

/* ---- entry_parse ---- */

static void entry_function(void **state)
{
	char *m = NULL, *c = (char *)"unset", *f = NULL, *err = NULL;

	assert_int_equal(entry_parse("tasks.f5portalupdate.main:run", &m, &c, &f, &err), 0);
	assert_string_equal(m, "tasks.f5portalupdate.main");
	assert_null(c);
	assert_string_equal(f, "run");
	free(m);
	free(f);
}

static void entry_class_method(void **state)
{
	char *m = NULL, *c = NULL, *f = NULL, *err = NULL;

	assert_int_equal(entry_parse("tasks.mod:Portal.refresh", &m, &c, &f, &err), 0);
	assert_string_equal(m, "tasks.mod");
	assert_string_equal(c, "Portal");
	assert_string_equal(f, "refresh");
	free(m);
	free(c);
	free(f);
}

static void entry_without_colon_rejected(void **state)
{
	char *m = NULL, *c = NULL, *f = NULL, *err = NULL;

	assert_int_equal(entry_parse("tasks.mod.run", &m, &c, &f, &err), -1);
	assert_contains(err, "ENTRY: 'tasks.mod.run' is not module.path:function or module.path:Class.method");
	free(err);
}

static void entry_with_two_colons_rejected(void **state)
{
	char *m = NULL, *c = NULL, *f = NULL, *err = NULL;

	assert_int_equal(entry_parse("tasks.mod:Cls:run", &m, &c, &f, &err), -1);
	assert_contains(err, "ENTRY: 'tasks.mod:Cls:run'");
	free(err);
}

static void entry_with_dunder_method_rejected(void **state)
{
	char *m = NULL, *c = NULL, *f = NULL, *err = NULL;

	assert_int_equal(entry_parse("tasks.mod:Portal.__init__", &m, &c, &f, &err), -1);
	assert_contains(err, "method_name: 'Portal.__init__' is not a dotted name");
	free(err);
	err = NULL;
	assert_int_equal(entry_parse("tasks.mod:__import__", &m, &c, &f, &err), -1);
	assert_contains(err, "method_name: '__import__'");
	free(err);
}

static void entry_with_bad_module_rejected(void **state)
{
	char *m = NULL, *c = NULL, *f = NULL, *err = NULL;

	assert_int_equal(entry_parse("tasks.__init__:run", &m, &c, &f, &err), -1);
	assert_contains(err, "module_path: 'tasks.__init__' is not a dotted name");
	free(err);
	err = NULL;
	assert_int_equal(entry_parse(":run", &m, &c, &f, &err), -1);
	assert_contains(err, "module_path: ''");
	free(err);
	err = NULL;
	assert_int_equal(entry_parse("tasks.mod:", &m, &c, &f, &err), -1);
	assert_contains(err, "method_name: ''");
	free(err);
}

/* ---- kv_parse ---- */

static json_t *kv1(const char *arg, char **ret_err)
{
	char *args[] = { (char *)arg };
	json_t *o = json_object();

	*ret_err = NULL;
	if (kv_parse(args, 1, o, ret_err) < 0) {
		json_decref(o);
		return NULL;
	}
	assert_null(*ret_err);
	return o;
}

static void kv_integer_value(void **state)
{
	char *err;
	json_t *o = kv1("customer_id=42", &err);

	assert_non_null(o);
	assert_true(json_is_integer(json_object_get(o, "customer_id")));
	assert_int_equal(json_integer_value(json_object_get(o, "customer_id")), 42);
	json_decref(o);
}

static void kv_boolean_value(void **state)
{
	char *err;
	json_t *o = kv1("full_rebuild=true", &err);

	assert_true(json_is_true(json_object_get(o, "full_rebuild")));
	json_decref(o);
}

static void kv_plain_word_is_string(void **state)
{
	char *err;
	json_t *o = kv1("name=acme", &err);

	assert_true(json_is_string(json_object_get(o, "name")));
	assert_string_equal(json_string_value(json_object_get(o, "name")), "acme");
	json_decref(o);

	o = kv1("path=a=b", &err);      /* only the first '=' splits */
	assert_string_equal(json_string_value(json_object_get(o, "path")), "a=b");
	json_decref(o);

	o = kv1("empty=", &err);
	assert_string_equal(json_string_value(json_object_get(o, "empty")), "");
	json_decref(o);
}

static void kv_json_object_value(void **state)
{
	char *err;
	json_t *o = kv1("x={\"a\":1}", &err), *x;

	x = json_object_get(o, "x");
	assert_true(json_is_object(x));
	assert_int_equal(json_integer_value(json_object_get(x, "a")), 1);
	json_decref(o);

	o = kv1("quoted=\"42\"", &err);
	assert_string_equal(json_string_value(json_object_get(o, "quoted")), "42");
	json_decref(o);
}

static void kv_several_arguments(void **state)
{
	char *args[] = { (char *)"customer_id=42", (char *)"full_rebuild=false", (char *)"name=acme" };
	json_t *o = json_object();
	char *err = NULL;

	assert_int_equal(kv_parse(args, 3, o, &err), 0);
	assert_int_equal(json_object_size(o), 3);
	assert_true(json_is_false(json_object_get(o, "full_rebuild")));
	json_decref(o);
}

static void kv_without_key_or_value_rejected(void **state)
{
	char *err;

	assert_null(kv1("=v", &err));
	assert_contains(err, "'=v': parameters are written key=value");
	free(err);
	assert_null(kv1("novalue", &err));
	assert_contains(err, "'novalue': parameters are written key=value");
	free(err);
}

static void kv_key_not_identifier_rejected(void **state)
{
	char *err;

	assert_null(kv1("1bad=2", &err));
	assert_contains(err, "parameters.1bad: not a valid Python keyword argument name");
	free(err);
	assert_null(kv1("a-b=2", &err));
	assert_contains(err, "parameters.a-b:");
	free(err);
}

/* ---- job_check_target ---- */

struct tree {
	char *root, *outside, *outside_file;
};

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	char *p, *link;

	t->root = unit_mkdtemp();
	t->outside = unit_mkdtemp();
	t->outside_file = unit_write(t->outside, "outside.py", "print('escaped')\n");
	unit_write_free(t->outside, "m.py", "");
	unit_mkdir(t->root, "tasks");
	unit_write_free(t->root, "tasks/__init__.py", "");
	unit_write_free(t->root, "tasks/mod.py", "def run(): return 1\n");
	unit_mkdir(t->root, "tasks/pkg");
	unit_write_free(t->root, "tasks/pkg/__init__.py", "");
	unit_mkdir(t->root, "tasks/notpkg");         /* a directory without __init__.py */
	/* tasks/evil.py -> <outside>/outside.py */
	link = unit_path(t->root, "tasks/evil.py");
	assert_int_equal(symlink(t->outside_file, link), 0);
	free(link);
	/* tasks/outdir -> <outside> (directory symlink out of the root) */
	link = unit_path(t->root, "tasks/outdir");
	assert_int_equal(symlink(t->outside, link), 0);
	free(link);
	/* tasks/alias.py -> mod.py (a symlink that stays inside the root) */
	link = unit_path(t->root, "tasks/alias.py");
	assert_int_equal(symlink("mod.py", link), 0);
	free(link);
	/* tasks/dirmod.py is a directory, not a file */
	unit_mkdir(t->root, "tasks/dirmod.py");
	/* a sibling whose path has the root as a string prefix: <root>2 */
	p = NULL;
	assert_true(asprintf(&p, "%s2", t->root) > 0);
	assert_int_equal(mkdir(p, 0755), 0);
	unit_write_free(p, "sib.py", "");
	link = unit_path(t->root, "tasks/prefix.py");
	{
		char *target = unit_path(p, "sib.py");

		assert_int_equal(symlink(target, link), 0);
		free(target);
	}
	free(link);
	free(p);
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;
	char *p = NULL;

	assert_true(asprintf(&p, "%s2", t->root) > 0);
	unit_rm_rf(p);
	free(p);
	unit_rm_rf(t->root);
	unit_rm_rf(t->outside);
	free(t->root);
	free(t->outside);
	free(t->outside_file);
	free(t);
	return 0;
}

/* Run job_check_target for MODULE with allowed ["tasks"] and ROOTS. */
static int check(const char *module, char *const *roots, char **ret_file, char **ret_err)
{
	char *allowed[] = { (char *)"tasks", NULL };
	char *p = NULL;
	struct job j = { 0 };
	char *perr = NULL;
	int r;

	assert_true(asprintf(&p, "{\"job_id\":\"t\",\"task_type\":\"etl\",\"module_path\":\"%s\","
				 "\"method_name\":\"run\"}", module) > 0);
	if (job_parse(p, strlen(p), &j, &perr) < 0)
		fail_msg("job_parse(%s): %s", p, perr);
	*ret_file = NULL;
	*ret_err = NULL;
	r = job_check_target(&j, allowed, roots, ret_file, ret_err);
	job_free(&j);
	free(p);
	return r;
}

static char *real(const char *dir, const char *name)
{
	char *p = unit_path(dir, name), buf[PATH_MAX];

	assert_non_null(realpath(p, buf));
	free(p);
	return strdup(buf);
}

static void target_module_file_accepted_with_real_path(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err, *want = real(t->root, "tasks/mod.py");

	assert_int_equal(check("tasks.mod", roots, &file, &err), 0);
	assert_null(err);
	assert_string_equal(file, want);
	free(file);
	free(want);
}

static void target_package_resolves_to_init(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err, *want = real(t->root, "tasks/pkg/__init__.py");

	assert_int_equal(check("tasks.pkg", roots, &file, &err), 0);
	assert_string_equal(file, want);
	free(file);
	free(want);
}

static void target_outside_allowed_package_rejected(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err;

	assert_int_equal(check("os", roots, &file, &err), -1);
	assert_string_equal(err, "module_path: 'os' is not under an allowed package (tasks)");
	assert_null(file);
	free(err);
	/* a package whose name merely starts with an allowed one */
	assert_int_equal(check("tasksx.mod", roots, &file, &err), -1);
	assert_contains(err, "'tasksx.mod' is not under an allowed package");
	free(err);
}

static void target_lists_every_allowed_package(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *allowed[] = { (char *)"tasks", (char *)"abuse", NULL };
	char *err = NULL, *file = NULL, *perr = NULL;
	const char *p = "{\"job_id\":\"t\",\"task_type\":\"etl\",\"module_path\":\"subprocess\",\"method_name\":\"run\"}";
	struct job j = { 0 };

	assert_int_equal(job_parse(p, strlen(p), &j, &perr), 0);
	assert_int_equal(job_check_target(&j, allowed, roots, &file, &err), -1);
	assert_string_equal(err, "module_path: 'subprocess' is not under an allowed package (tasks, abuse)");
	free(err);
	job_free(&j);
}

static void target_missing_module_rejected(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err;

	assert_int_equal(check("tasks.missing", roots, &file, &err), -1);
	assert_string_equal(err, "module_path: 'tasks.missing' is not a module file under the task roots");
	free(err);
	/* a directory without __init__.py is not a module file */
	assert_int_equal(check("tasks.notpkg", roots, &file, &err), -1);
	assert_contains(err, "not a module file under the task roots");
	free(err);
	/* nor is a directory named like one */
	assert_int_equal(check("tasks.dirmod", roots, &file, &err), -1);
	assert_contains(err, "not a module file under the task roots");
	free(err);
}

static void target_symlink_escaping_root_rejected(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err;

	assert_int_equal(check("tasks.evil", roots, &file, &err), -1);
	assert_string_equal(err, "module_path: 'tasks.evil' is not a module file under the task roots");
	assert_null(file);
	free(err);
	/* through a symlinked directory */
	assert_int_equal(check("tasks.outdir.m", roots, &file, &err), -1);
	assert_contains(err, "not a module file under the task roots");
	free(err);
	/* into a sibling directory whose name has the root as a prefix */
	assert_int_equal(check("tasks.prefix", roots, &file, &err), -1);
	assert_contains(err, "not a module file under the task roots");
	free(err);
}

static void target_symlink_inside_root_accepted(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err, *want = real(t->root, "tasks/mod.py");

	assert_int_equal(check("tasks.alias", roots, &file, &err), 0);
	assert_string_equal(file, want);
	free(file);
	free(want);
}

static void target_found_in_second_root(void **state)
{
	struct tree *t = *state;
	char *empty = unit_mkdtemp();
	char *roots[] = { (char *)"/nonexistent-taskexec-root", empty, t->root, NULL }, *file, *err;
	char *want = real(t->root, "tasks/mod.py");

	assert_int_equal(check("tasks.mod", roots, &file, &err), 0);
	assert_string_equal(file, want);
	free(file);
	free(want);
	unit_rm_rf(empty);
	free(empty);
}

static void target_root_given_through_symlink_accepted(void **state)
{
	struct tree *t = *state;
	char *holder = unit_mkdtemp(), *link = unit_path(holder, "root"), *file, *err;
	char *roots[] = { link, NULL }, *want = real(t->root, "tasks/mod.py");

	assert_int_equal(symlink(t->root, link), 0);
	assert_int_equal(check("tasks.mod", roots, &file, &err), 0);
	assert_string_equal(file, want);
	free(file);
	free(want);
	unit_rm_rf(holder);
	free(holder);
	free(link);
}

/* Python's import system prefers a package directory (NAME/__init__.py) to a
 * module file (NAME.py) in the same directory.  The check must judge the file
 * Python will actually import. */
static void target_checks_the_package_python_would_import(void **state)
{
	struct tree *t = *state;
	char *roots[] = { t->root, NULL }, *file, *err, *link;

	unit_write_free(t->root, "tasks/both.py", "");
	unit_mkdir(t->root, "tasks/both");
	link = unit_path(t->root, "tasks/both/__init__.py");
	assert_int_equal(symlink(t->outside_file, link), 0);
	free(link);
	if (check("tasks.both", roots, &file, &err) == 0)
		fail_msg("accepted as %s, but python3 would import tasks/both/__init__.py -> %s", file,
			 t->outside_file);
	assert_contains(err, "not a module file under the task roots");
	free(err);
}

/* ---- job_canonical ---- */

static void canonical_sorts_keys_and_drops_signature(void **state)
{
	json_t *doc = json_loads("{\"b\": 1, \"signature\": \"xyz\", \"a\": {\"d\": [2, {\"z\": 1, \"y\": null}], \"c\": \"s\"}}",
				 0, NULL);
	char *err = NULL, *s = job_canonical(doc, &err);

	assert_non_null(s);
	assert_string_equal(s, "{\"a\":{\"c\":\"s\",\"d\":[2,{\"y\":null,\"z\":1}]},\"b\":1}");
	/* the input document keeps its signature */
	assert_non_null(json_object_get(doc, "signature"));
	free(s);
	json_decref(doc);
}

static void canonical_escapes_non_ascii(void **state)
{
	json_t *doc = json_loads("{\"name\": \"caf\\u00e9 \\ud83d\\ude00\"}", 0, NULL);
	char *err = NULL, *s = job_canonical(doc, &err);

	/* hex digit case is not part of the contract (jansson writes upper case) */
	assert_non_null(s);
	if (strcasecmp(s, "{\"name\":\"caf\\u00e9 \\ud83d\\ude00\"}"))
		fail_msg("canonical form %s", s);
	free(s);
	json_decref(doc);
}

static void canonical_independent_of_input_order(void **state)
{
	json_t *a = json_loads(VALID_JOB, 0, NULL);
	json_t *b = json_loads("{\"signature\":\"other\",\"max_retries\":2,\"timeout_seconds\":600,\"priority\":\"high\","
			       "\"idempotency_key\":\"f5portal-42-2026-11-26\",\"parameters\":{\"full_rebuild\":false,"
			       "\"customer_id\":42},\"method_name\":\"run\",\"class_name\":null,"
			       "\"module_path\":\"tasks.f5portalupdate.main\",\"task_type\":\"etl\","
			       "\"job_id\":\"01937c1e-5d2a-7b10-9a3e-2f4c1d9e8a77\",\"enqueued_at\":\"2026-11-26T05:00:00.123Z\"}",
			       0, NULL);
	char *err = NULL, *sa = job_canonical(a, &err), *sb = job_canonical(b, &err);

	assert_string_equal(sa, sb);
	assert_null(strchr(sa, ' '));
	assert_not_contains(sa, "signature");
	free(sa);
	free(sb);
	json_decref(a);
	json_decref(b);
}

static void canonical_refuses_reals(void **state)
{
	json_t *doc = json_loads("{\"parameters\": {\"deep\": [1, {\"ratio\": 0.5}]}}", 0, NULL);
	char *err = NULL, *s = job_canonical(doc, &err);

	assert_null(s);
	assert_contains(err, "signature: signed payloads may not contain fractional numbers");
	free(err);
	json_decref(doc);
}

/* ---- job_prepare: the checks that need configuration ---- */

struct prep {
	struct tree tree;
	char *pdir;
	struct policy_set ps;
	struct config c;
};

/* The plan points into the job (priority), so the last prepared job stays
 * alive until the teardown. */
static struct job prepared;

static int prep_setup(void **state)
{
	struct prep *p = calloc(1, sizeof(*p));
	struct policy_vars vars = { "/var/lib/x", "/opt/t" };
	char *errors = NULL;
	void *ts = NULL;

	tree_setup(&ts);
	p->tree = *(struct tree *)ts;
	free(ts);
	p->pdir = unit_mkdtemp();
	unit_write_free(p->pdir, "etl.policy", "[job]\npriority = normal\ntimeout = 30m\nmax_timeout = 2h\n"
					       "max_retries = 2\nretries_limit = 4\n");
	unit_write_free(p->pdir, "maintenance.policy", "[job]\npriority = low\nmax_priority = low\n");
	if (policy_load_dir(p->pdir, &vars, &p->ps, &errors) < 0)
		fail_msg("policy_load_dir: %s", errors);
	p->c.allowed_modules = split_list("tasks", ',');
	p->c.tasks_path = split_list(p->tree.root, ':');
	p->c.max_retries = 3;
	p->c.result_max = 10240;
	*state = p;
	return 0;
}

static int prep_teardown(void **state)
{
	struct prep *p = *state;
	struct tree *t = malloc(sizeof(*t));
	void *ts = t;

	*t = p->tree;
	tree_teardown(&ts);
	policy_set_free(&p->ps);
	unit_rm_rf(p->pdir);
	free(p->pdir);
	strv_free(p->c.allowed_modules);
	strv_free(p->c.tasks_path);
	free(p);
	job_free(&prepared);
	return 0;
}

static int prepare(struct prep *p, const char *extra, struct job_plan *plan, char **ret_err)
{
	char *text = NULL, *perr = NULL;
	struct job *j = &prepared;
	int r;

	assert_true(asprintf(&text, "{\"job_id\":\"p\",\"module_path\":\"tasks.mod\",\"method_name\":\"run\"%s}",
			     extra) > 0);
	job_free(j);
	if (job_parse(text, strlen(text), j, &perr) < 0)
		fail_msg("job_parse(%s): %s", text, perr);
	*ret_err = NULL;
	r = job_prepare(j, &p->c, &p->ps, plan, ret_err);
	free(text);
	return r;
}

static void prepare_uses_policy_defaults(void **state)
{
	struct job_plan plan;
	char *err;

	assert_int_equal(prepare(*state, ",\"task_type\":\"etl\"", &plan, &err), 0);
	assert_string_equal(plan.policy->name, "etl");
	assert_int_equal(plan.timeout_ms, 30 * 60 * 1000);
	assert_string_equal(plan.priority, "normal");
	assert_int_equal(plan.max_retries, 2);
}

static void prepare_applies_overrides_within_bounds(void **state)
{
	struct job_plan plan;
	char *err;

	assert_int_equal(prepare(*state, ",\"task_type\":\"etl\",\"timeout_seconds\":7200,\"priority\":\"high\","
					 "\"max_retries\":4", &plan, &err), 0);
	assert_int_equal(plan.timeout_ms, 7200 * 1000);
	assert_string_equal(plan.priority, "high");
	assert_int_equal(plan.max_retries, 4);
}

static void prepare_falls_back_to_config_retries(void **state)
{
	struct job_plan plan;
	char *err;

	assert_int_equal(prepare(*state, ",\"task_type\":\"maintenance\"", &plan, &err), 0);
	assert_int_equal(plan.max_retries, 3);
	assert_string_equal(plan.priority, "low");
}

static void prepare_unknown_task_type_lists_known(void **state)
{
	struct job_plan plan;
	char *err;

	assert_int_equal(prepare(*state, ",\"task_type\":\"nope\"", &plan, &err), -1);
	assert_string_equal(err, "task_type: 'nope' is not a configured task type (etl, maintenance)");
	free(err);
}

static void prepare_refuses_overrides_beyond_policy(void **state)
{
	struct job_plan plan;
	char *err;

	assert_int_equal(prepare(*state, ",\"task_type\":\"etl\",\"timeout_seconds\":7201", &plan, &err), -1);
	assert_string_equal(err, "timeout_seconds: 7201 is over the etl policy's max_timeout of 7200s");
	free(err);
	assert_int_equal(prepare(*state, ",\"task_type\":\"maintenance\",\"priority\":\"normal\"", &plan, &err), -1);
	assert_string_equal(err, "priority: normal is above the maintenance policy's max_priority low");
	free(err);
	assert_int_equal(prepare(*state, ",\"task_type\":\"etl\",\"max_retries\":5", &plan, &err), -1);
	assert_string_equal(err, "max_retries: 5 is over the etl policy's retries_limit of 4");
	free(err);
}

static void prepare_checks_the_target(void **state)
{
	struct prep *p = *state;
	struct job_plan plan;
	char *text = "{\"job_id\":\"p\",\"task_type\":\"etl\",\"module_path\":\"tasks.evil\",\"method_name\":\"run\"}";
	char *err = NULL;
	struct job j = { 0 };

	assert_int_equal(job_parse(text, strlen(text), &j, &err), 0);
	assert_int_equal(job_prepare(&j, &p->c, &p->ps, &plan, &err), -1);
	assert_contains(err, "module_path: 'tasks.evil' is not a module file under the task roots");
	free(err);
	job_free(&j);
}

static void envelope_carries_job_roots_and_limits(void **state)
{
	struct prep *p = *state;
	const char *text = VALID_JOB;
	struct job j = { 0 };
	char *err = NULL, *env;
	size_t len;
	json_t *e;

	assert_int_equal(job_parse(text, strlen(text), &j, &err), 0);
	env = job_envelope(&j, 2, &p->c, policy_find(&p->ps, "etl"), &len);
	assert_int_equal(strlen(env), len);
	e = json_loads(env, 0, NULL);
	assert_non_null(e);
	assert_int_equal(json_integer_value(json_object_get(e, "attempt")), 2);
	assert_int_equal(json_integer_value(json_object_get(e, "result_max")), 10240);
	assert_string_equal(json_string_value(json_array_get(json_object_get(e, "roots"), 0)), p->tree.root);
	assert_string_equal(json_string_value(json_array_get(json_object_get(e, "allowed"), 0)), "tasks");
	assert_true(json_is_array(json_object_get(e, "python_path")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(e, "job"), "job_id")), j.job_id);
	json_decref(e);
	free(env);
	job_free(&j);
}

int main(void)
{
	const struct CMUnitTest parse_tests[] = {
		cmocka_unit_test(full_payload_parses_every_field),
		cmocka_unit_test(minimal_payload_gets_defaults),
		cmocka_unit_test(null_parameters_become_empty_object),
		cmocka_unit_test(class_name_is_kept),
		cmocka_unit_test(missing_job_id_is_named),
		cmocka_unit_test(missing_task_type_is_named),
		cmocka_unit_test(missing_module_path_is_named),
		cmocka_unit_test(missing_method_name_is_named),
		cmocka_unit_test(null_required_field_counts_as_missing),
		cmocka_unit_test(non_string_field_is_named),
		cmocka_unit_test(job_id_with_bad_characters_rejected),
		cmocka_unit_test(job_id_length_limit_is_64),
		cmocka_unit_test(job_id_allows_documented_punctuation),
		cmocka_unit_test(module_path_with_underscore_component_rejected),
		cmocka_unit_test(module_path_with_empty_component_rejected),
		cmocka_unit_test(module_path_non_identifier_rejected),
		cmocka_unit_test(class_and_method_with_dunder_rejected),
		cmocka_unit_test(unknown_field_rejected_naming_it),
		cmocka_unit_test(parameters_not_an_object_rejected),
		cmocka_unit_test(parameter_key_not_identifier_rejected),
		cmocka_unit_test(priority_must_be_high_normal_or_low),
		cmocka_unit_test(timeout_seconds_must_be_positive_integer),
		cmocka_unit_test(max_retries_bounds),
		cmocka_unit_test(idempotency_key_empty_rejected),
		cmocka_unit_test(task_type_must_be_a_name),
		cmocka_unit_test(invalid_json_says_so),
		cmocka_unit_test(payload_must_be_an_object),
		cmocka_unit_test(duplicate_keys_rejected),
		cmocka_unit_test(depth_32_accepted),
		cmocka_unit_test(depth_33_rejected),
		cmocka_unit_test(very_deep_payload_rejected_not_crashing),
		cmocka_unit_test(payload_of_exactly_1_mib_accepted),
		cmocka_unit_test(payload_over_1_mib_rejected),
		cmocka_unit_test(entry_function),
		cmocka_unit_test(entry_class_method),
		cmocka_unit_test(entry_without_colon_rejected),
		cmocka_unit_test(entry_with_two_colons_rejected),
		cmocka_unit_test(entry_with_dunder_method_rejected),
		cmocka_unit_test(entry_with_bad_module_rejected),
		cmocka_unit_test(kv_integer_value),
		cmocka_unit_test(kv_boolean_value),
		cmocka_unit_test(kv_plain_word_is_string),
		cmocka_unit_test(kv_json_object_value),
		cmocka_unit_test(kv_several_arguments),
		cmocka_unit_test(kv_without_key_or_value_rejected),
		cmocka_unit_test(kv_key_not_identifier_rejected),
		cmocka_unit_test(canonical_sorts_keys_and_drops_signature),
		cmocka_unit_test(canonical_escapes_non_ascii),
		cmocka_unit_test(canonical_independent_of_input_order),
		cmocka_unit_test(canonical_refuses_reals),
	};
	const struct CMUnitTest target_tests[] = {
		cmocka_unit_test_setup_teardown(target_module_file_accepted_with_real_path, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_package_resolves_to_init, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_outside_allowed_package_rejected, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_lists_every_allowed_package, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_missing_module_rejected, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_symlink_escaping_root_rejected, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_symlink_inside_root_accepted, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_found_in_second_root, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_root_given_through_symlink_accepted, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(target_checks_the_package_python_would_import, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(prepare_uses_policy_defaults, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(prepare_applies_overrides_within_bounds, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(prepare_falls_back_to_config_retries, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(prepare_unknown_task_type_lists_known, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(prepare_refuses_overrides_beyond_policy, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(prepare_checks_the_target, prep_setup, prep_teardown),
		cmocka_unit_test_setup_teardown(envelope_carries_job_roots_and_limits, prep_setup, prep_teardown),
	};
	int failed = 0;

	failed += cmocka_run_group_tests_name("job_parse, entry, kv, canonical", parse_tests, NULL, NULL);
	failed += cmocka_run_group_tests_name("job_check_target, job_prepare", target_tests, NULL, NULL);
	return failed;
}
