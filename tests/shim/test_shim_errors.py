# SPDX-License-Identifier: ISC
"""Exceptions (taskexec-tasks(7), Errors and retries; taskexec(1), THE RUN
SUMMARY): outcome exception, error_type the qualified type name (builtins
unqualified), error 'Type: message', the traceback, and retryable unless the
exception is one that a retry cannot fix."""
import pytest

from shimlib import failed, run

RAISING_LINE = 'raise ValueError("unknown customer %d" % customer_id)  # the raising line'


def test_exception_reports_type_message_and_traceback():
    r = run("shimtasks.errors:value_error", "customer_id=99")
    s = failed(r, "exception", "ValueError: unknown customer 99", "ValueError", True)
    tb = s["traceback"]
    assert tb.startswith("Traceback (most recent call last):"), r.explain()
    assert "shimtasks/errors.py" in tb and "in value_error" in tb, r.explain()
    assert RAISING_LINE in tb, r.explain()
    assert tb.rstrip("\n").endswith("ValueError: unknown customer 99"), r.explain()
    # the traceback is also printed on stderr, before the error line, each
    # line marked as the job's text (taskexec(1), THE RUN SUMMARY)
    shown = "\n".join("trace: " + line for line in tb.rstrip("\n").split("\n"))
    assert shown in r.stderr, r.explain()


@pytest.mark.parametrize("fn, error, error_type, retryable", [
    ("custom", "shimtasks.errors.QuotaExceeded: quota of 5 used", "shimtasks.errors.QuotaExceeded", True),
    ("nested_custom", "shimtasks.errors.Outer.Failure: inner failure", "shimtasks.errors.Outer.Failure", True),
    ("non_retryable", "taskexec_task.NonRetryableError: customer_id must be positive",
     "taskexec_task.NonRetryableError", False),
    ("non_retryable_subclass", "shimtasks.errors.UnknownCustomer: no customer 7",
     "shimtasks.errors.UnknownCustomer", False),
    ("system_exit", "SystemExit: 3", "SystemExit", False),
])
def test_exception_types_and_retries(fn, error, error_type, retryable):
    r = run(f"shimtasks.errors:{fn}")
    s = failed(r, "exception", error, error_type, retryable)
    assert f"in {fn}" in s["traceback"], r.explain()


@pytest.mark.parametrize("name, retryable", [
    ("RuntimeError", True),
    ("KeyError", True),
    ("OSError", True),
    ("PermissionError", False),
    ("ImportError", False),
    ("ModuleNotFoundError", False),
    ("AttributeError", False),
    ("KeyboardInterrupt", False),
])
def test_builtin_exceptions_retryable_as_documented(name, retryable):
    message = "'boom'" if name == "KeyError" else "boom"
    failed(run("shimtasks.errors:raise_named", f"name={name}"), "exception", f"{name}: {message}", name, retryable)


def test_memory_error_is_outcome_memory_and_retried():
    failed(run("shimtasks.errors:raise_named", "name=MemoryError", "message=synthetic"), "memory",
           "MemoryError: synthetic", "MemoryError", True)


def test_chained_exception_traceback_shows_the_cause():
    r = run("shimtasks.errors:chained")
    s = failed(r, "exception", "RuntimeError: lookup failed", "RuntimeError", True)
    assert "KeyError: 'missing'" in s["traceback"], r.explain()
    assert "The above exception was the direct cause of the following exception" in s["traceback"], r.explain()
