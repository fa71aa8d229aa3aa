"""Helpers every pytest suite here shares (tests/conftest.py puts this
directory on sys.path)."""
import socket
import time

import pytest


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns something truthy; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            pytest.fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def spare_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def failed_in_call(request):
    """Whether the test that `request` belongs to failed in its call phase."""
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed
