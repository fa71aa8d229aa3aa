# SPDX-License-Identifier: ISC
"""Parameters (taskexec(1), Entries and parameters; taskexec-tasks(7),
Parameters): each name=value is one keyword argument, its value parsed as
JSON when it is valid JSON and taken as a string otherwise; the parameters are
bound to the signature before the call and a mismatch fails, not retried."""
import json

import pytest

from shimlib import completed, failed, identical, rejected, run


def test_kv_values_arrive_with_json_types():
    result = completed(run(
        "shimtasks.params:echo",
        "n=42", "neg=-7", "f=1.5", "tiny=1e-5", "yes=true", "no=false", "nothing=null",
        "word=acme", 'quoted="42"', "spaced=hello world", "capital=True", "empty=",
        'l=[1,"a",null,2.5]', 'd={"a":{"b":[1,2.5]},"é":"日本"}', "uni=é日本🎉",
        "eq=a=b", "colon=x:y",
    ))
    identical(result, {
        "n": ["int", 42], "neg": ["int", -7], "f": ["float", 1.5], "tiny": ["float", 1e-5],
        "yes": ["bool", True], "no": ["bool", False], "nothing": ["NoneType", None],
        "word": ["str", "acme"], "quoted": ["str", "42"], "spaced": ["str", "hello world"],
        "capital": ["str", "True"], "empty": ["str", ""],
        "l": ["list", [1, "a", None, 2.5]], "d": ["dict", {"a": {"b": [1, 2.5]}, "é": "日本"}],
        "uni": ["str", "é日本🎉"], "eq": ["str", "a=b"], "colon": ["str", "x:y"],
    })


def test_typed_parameters_reach_the_function():
    identical(completed(run("shimtasks.params:run", "customer_id=42", "full_rebuild=true")),
              {"next_id": 43, "full_rebuild_is_true": True})


def test_json_payload_parameters_arrive_with_json_types():
    payload = {"module_path": "shimtasks.params", "method_name": "echo",
               "parameters": {"n": 1, "f": 0.5, "s": "x", "l": [1, [2]], "o": {"k": None}, "b": False}}
    identical(completed(run(None, stdin=json.dumps(payload))), {
        "n": ["int", 1], "f": ["float", 0.5], "s": ["str", "x"], "l": ["list", [1, [2]]],
        "o": ["dict", {"k": None}], "b": ["bool", False]})


def test_big_int_parameter_arrives_as_int_up_to_64_bits():
    identical(completed(run("shimtasks.params:echo", f"big={2**63 - 1}", f"small={-2**63}")),
              {"big": ["int", 2**63 - 1], "small": ["int", -2**63]})


def test_defaults_apply():
    identical(completed(run("shimtasks.params:needs", "a=1", "c=3")), [1, 1, 3, 4])


def test_var_keyword_takes_unknown_parameters():
    identical(completed(run("shimtasks.params:flexible", "a=1", "zz=2", "yy=x")),
              {"a": 1, "rest": {"zz": 2, "yy": "x"}})


@pytest.mark.parametrize("entry, kv, message", [
    ("shimtasks.params:needs", ["a=1", "c=3", "x=9"], "needs() got an unexpected keyword argument 'x'"),
    ("shimtasks.params:needs", ["c=3"], "needs() missing a required argument: 'a'"),
    ("shimtasks.params:needs", ["a=1", "b=2"], "needs() missing a required argument: 'c'"),
    ("shimtasks.params:positional", ["a=1"], "positional() 'a' parameter is positional only, but was passed as a keyword"),
    ("shimtasks.params:only_keywords", ["x=1", "y=1"], "only_keywords() got an unexpected keyword argument 'y'"),
    ("shimtasks.params:only_keywords", [], "only_keywords() missing a required argument: 'x'"),
    ("shimtasks.params:Greeter.greet", [], "Greeter.greet() missing a required argument: 'name'"),
    ("shimtasks.params:Greeter.greet", ["name=x", "self=1"], "Greeter.greet() got an unexpected keyword argument 'self'"),
    ("shimtasks.params:flexible", ["zz=1"], "flexible() missing a required argument: 'a'"),
], ids=["unexpected", "missing", "missing-kwonly", "positional-only", "unexpected-kwonly", "missing-kwonly-only",
        "method-missing", "method-self", "var-keyword-missing"])
def test_parameter_mismatch_fails_without_retry_or_call(entry, kv, message):
    r = run(entry, *kv)
    s = failed(r, "exception", "TypeError: " + message, "TypeError", False)
    assert s["traceback"] is None, r.explain()
    assert "was called" not in r.stderr, "the task ran despite the mismatch" + r.explain()


def test_method_binds_without_self():
    assert completed(run("shimtasks.params:Greeter.greet", "name=world")) == "hello world!"


@pytest.mark.parametrize("kv, reason", [
    (["1x=3"], "parameters.1x: not a valid Python keyword argument name"),
    (["a-b=3"], "parameters.a-b: not a valid Python keyword argument name"),
    (["stray"], "'stray': parameters are written key=value"),
    (["=5"], "'=5': parameters are written key=value"),
    # JSON that cannot be carried faithfully is refused, never passed on as a string
    ([f"big={2**70}"], "parameters.big: number out of range (integers must fit in 64 bits, reals in a double)"),
    (["x=1e999"], "parameters.x: number out of range (integers must fit in 64 bits, reals in a double)"),
    (['d={"a":1,"a":2}'], "parameters.d: duplicate object key near '\"a\"'"),
    (['s="a\\u0000b"'], "parameters.s: a string cannot hold \\u0000"),
])
def test_malformed_kv_is_rejected(kv, reason):
    s = rejected(run("shimtasks.params:echo", *kv), reason)
    assert s["job_id"] is None
