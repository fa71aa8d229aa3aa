# SPDX-License-Identifier: ISC
"""Exceptions: type, message, traceback and whether a retry is offered."""
from taskexec_task import NonRetryableError


class QuotaExceeded(Exception):
    pass


class UnknownCustomer(NonRetryableError):
    pass


class Outer:
    class Failure(Exception):
        pass


def value_error(customer_id):
    raise ValueError("unknown customer %d" % customer_id)  # the raising line


def custom():
    raise QuotaExceeded("quota of 5 used")


def nested_custom():
    raise Outer.Failure("inner failure")


def non_retryable():
    raise NonRetryableError("customer_id must be positive")


def non_retryable_subclass():
    raise UnknownCustomer("no customer 7")


def system_exit():
    raise SystemExit(3)


def raise_named(name, message="boom"):
    """Raise the builtin exception called `name`."""
    import builtins

    raise getattr(builtins, name)(message)


def chained():
    try:
        {}["missing"]
    except KeyError as exc:
        raise RuntimeError("lookup failed") from exc
