# SPDX-License-Identifier: ISC
"""Jobs whose output the ops tests look for in taskexecd's log.

Run as task type ad_hoc; tests/ops puts this directory on TASKEXEC_TASKS_PATH
and allows the package opstasks.
"""
import logging
import os
import sys
import time

log = logging.getLogger("opstasks.talk")


def chatter(tag: str) -> dict:
    """One stdout line, one stderr line, one logging record, each naming tag.

    It also prints its whole environment, so a secret leaking from the
    daemon into a job would show up in the job.output lines."""
    print("stdout says %s" % tag, flush=True)
    print("stderr says %s" % tag, file=sys.stderr, flush=True)
    log.warning("logging says %s", tag)
    for key in sorted(os.environ):
        print("env %s=%s" % (key, os.environ[key]), flush=True)
    return {"tag": tag}


def mark() -> dict:
    """Print OPS_MARK, which the test policy sets in [env]."""
    value = os.environ.get("OPS_MARK", "<unset>")
    print("OPS_MARK=%s" % value, flush=True)
    return {"mark": value}


def fail(why: str) -> dict:
    """Log, then raise: the attempt ends 'exception', the job FAILED."""
    log.error("about to fail: %s", why)
    raise ValueError("ops test failure: %s" % why)


def nap(seconds: float) -> dict:
    """Sleep, so a test can signal the daemon while a job runs."""
    print("napping %s s" % seconds, flush=True)
    time.sleep(seconds)
    print("woke up", flush=True)
    return {"slept": seconds}


def flood(seconds: float, line_bytes: int) -> dict:
    """Print lines of line_bytes as fast as they go, for seconds (or until killed)."""
    line = "f" * (line_bytes - 1) + "\n"
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        for _ in range(100):
            sys.stdout.write(line)
        n += 100
    sys.stdout.flush()
    return {"lines": n}


def spew(lines: int, line_bytes: int) -> dict:
    """Print exactly lines lines of line_bytes each (newline not counted), numbered."""
    for i in range(lines):
        head = "%08d " % i
        sys.stdout.write(head + "s" * (line_bytes - len(head)) + "\n")
    sys.stdout.flush()
    return {"lines": lines}
