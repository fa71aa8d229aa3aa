# SPDX-License-Identifier: ISC
"""Return values (taskexec-tasks(7), Return value): the result on stdout is
what json.dumps makes of the return value, exactly; anything json.dumps
refuses, and NaN or infinity, fails the job at once; the compact UTF-8
encoding may be at most TASKEXEC_RESULT_MAX_BYTES."""
import math

import pytest

from shimlib import RESULT_MAX, completed, failed, identical, run

# What json.loads(json.dumps(value)) gives for shimtasks.results.RESULTS[name],
# written out: dict keys become strings, tuples lists.
EXPECTED = {
    "nested": {"a": [1, {"b": [None, True, False]}], "c": {}, "d": [[], [[]]], "e": ""},
    "unicode": {"fr": "é", "ja": "日本", "emoji": "🎉👍🏽", "key é日本🎉": "value"},
    "escapes": ["quote \" backslash \\ slash /", "nl\ncr\rtab\tbs\bff\f", "\x01\x1f\x7f", "\u2028\u2029"],
    "floats": [0.1, 1e300, -1e-300, 5e-324, 1.5, -2.25, 1e16, 123456789.12345679, math.pi, 2.0],
    "negative_zero": -0.0,
    "int64_edges": [9223372036854775807, -9223372036854775808, 0, -1],
    "bools_none": [True, False, None],
    "keys": {"2": "int", "1.5": "float", "true": "true", "false": "false", "null": "none", "s": "str"},
    "tuples": [1, [2, [3, "x"]], []],
    "scalar_int": 42,
    "scalar_str": "just a string",
    "scalar_true": True,
    "scalar_none": None,
    "scalar_float": 0.1,
    "empty_list": [],
    "empty_dict": {},
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_result_round_trips_exactly(name):
    result = completed(run("shimtasks.results:value", f"name={name}"))
    identical(result, EXPECTED[name])


def test_shared_references_are_not_circular():
    identical(completed(run("shimtasks.results:same_object_twice")), {"x": [1, 2], "y": [1, 2]})


def test_non_ascii_is_sent_as_utf8_not_escaped():
    r = run("shimtasks.results:value", "name=unicode")
    completed(r)
    assert "日本" in r.stdout and "🎉" in r.stdout and "\\u" not in r.stdout, r.explain()


# The value travels as the shim encoded it: integers of any size.
@pytest.mark.parametrize("name, want", [
    ("big_int", 2**70),
    ("big_ints", {"pos": 2**64, "neg": -(2**70), "huge": 10**40}),
])
def test_big_int_result_round_trips(name, want):
    identical(completed(run("shimtasks.results:value", f"name={name}")), want)


def test_nul_character_result_fails_without_retry():
    # PostgreSQL's jsonb cannot hold U+0000: refused with a reason, not a crash.
    failed(run("shimtasks.results:value", "name=nul_char"), "exception",
           "TypeError: result is not JSON-serialisable: a string holds the character U+0000, "
           "which PostgreSQL cannot store", "TypeError", False)


def test_backslash_u0000_text_is_not_a_nul():
    identical(completed(run("shimtasks.results:value", "name=backslash_u0000")), ["\\u0000", "x\\\\u0000"])


# --------------------------------------------------------------------------
# Not serialisable: TypeError, not retried

def not_serialisable(reason):
    return "TypeError: result is not JSON-serialisable: " + reason


@pytest.mark.parametrize("fn, type_name", [
    ("a_set", "set"),
    ("an_object", "Opaque"),
    ("some_bytes", "bytes"),
])
def test_unserialisable_result_fails_without_retry(fn, type_name):
    s = failed(run(f"shimtasks.results:{fn}"), "exception",
               not_serialisable(f"Object of type {type_name} is not JSON serializable"), "TypeError", False)
    assert s["traceback"] is None


def test_set_result_error_is_exact():
    failed(run("shimtasks.results:a_set"), "exception",
           "TypeError: result is not JSON-serialisable: Object of type set is not JSON serializable",
           "TypeError", False)


@pytest.mark.parametrize("fn", ["a_nan", "an_inf", "a_negative_inf"])
def test_out_of_range_float_result_fails(fn):
    prefix = not_serialisable("Out of range float values are not JSON compliant")
    failed(run(f"shimtasks.results:{fn}"), "exception", lambda e: e.startswith(prefix), "TypeError", False)


@pytest.mark.parametrize("fn", ["a_circular_list", "a_circular_dict"])
def test_circular_result_fails(fn):
    failed(run(f"shimtasks.results:{fn}"), "exception", not_serialisable("Circular reference detected"),
           "TypeError", False)


def test_tuple_key_result_fails():
    failed(run("shimtasks.results:a_tuple_key"), "exception",
           not_serialisable("keys must be str, int, float, bool or None, not tuple"), "TypeError", False)


def test_too_deeply_nested_result_fails_without_retry():
    failed(run("shimtasks.results:deeply_nested", "depth=5000"), "exception",
           lambda e: e.startswith(not_serialisable("maximum recursion depth exceeded")), "TypeError", False)


# --------------------------------------------------------------------------
# Size limit

@pytest.mark.parametrize("fill", ["x", "é日🎉"], ids=["ascii", "multibyte"])
def test_result_of_exactly_the_limit_completes(fill):
    r = run("shimtasks.results:sized", f"total={RESULT_MAX}", f"fill={fill}")
    result = completed(r)
    assert len(r.stdout.encode("utf-8")) == RESULT_MAX + 1  # and the newline
    assert result["floats"] == [] and result["pad"].startswith(fill)


@pytest.mark.parametrize("fill", ["x", "é日🎉"], ids=["ascii", "multibyte"])
def test_result_one_byte_over_the_limit_fails(fill):
    s = failed(run("shimtasks.results:sized", f"total={RESULT_MAX + 1}", f"fill={fill}"), "too_large",
               f"result too large: {RESULT_MAX + 1} bytes > {RESULT_MAX}", "ResultTooLarge", False)
    assert s["traceback"] is None


def test_limit_follows_result_max_setting():
    env = {"TASKEXEC_RESULT_MAX_BYTES": "100"}
    completed(run("shimtasks.results:sized", "total=100", env=env))
    failed(run("shimtasks.results:sized", "total=101", env=env), "too_large",
           "result too large: 101 bytes > 100", "ResultTooLarge", False)


def test_result_with_floats_at_the_limit_completes():
    result = completed(run("shimtasks.results:sized", f"total={RESULT_MAX}", "floats=100"))
    assert result["floats"] == [0.1] * 100
