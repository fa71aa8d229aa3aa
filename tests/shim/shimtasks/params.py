# SPDX-License-Identifier: ISC
"""Parameters: what `taskexec run ENTRY k=v …` passes as keyword arguments."""


def echo(**params):
    """Each parameter as [Python type name, value]."""
    return {k: [type(v).__name__, v] for k, v in params.items()}


def run(customer_id, full_rebuild=False):
    if not isinstance(customer_id, int) or isinstance(customer_id, bool):
        raise TypeError("customer_id arrived as %s" % type(customer_id).__name__)
    return {"next_id": customer_id + 1, "full_rebuild_is_true": full_rebuild is True}


def needs(a, b=1, *, c, d=4):
    print("needs was called")
    return [a, b, c, d]


def positional(a, /, b=2):
    print("positional was called")
    return [a, b]


def flexible(a, **rest):
    return {"a": a, "rest": rest}


def only_keywords(*, x):
    return x


class Greeter:
    def greet(self, name, punctuation="!"):
        print("greet was called")
        return "hello " + name + punctuation
