# SPDX-License-Identifier: ISC
"""Tasks that write logs, output and progress, for tests/joblogs.

A short pause between writes to different streams lets the executor read
each before the next: lines of stdout, stderr and fd 4 are stored in the
order the executor received them.
"""
import logging
import os
import sys
import time

import taskexec_task

log = logging.getLogger("itasks.joblogs")
GAP = 0.1


def chatter():
    print("out one", flush=True)
    time.sleep(GAP)
    log.info("info one")
    time.sleep(GAP)
    print("err one", file=sys.stderr, flush=True)
    time.sleep(GAP)
    log.warning("warn one")
    time.sleep(GAP)
    try:
        raise KeyError("inner")
    except KeyError:
        log.exception("error with trace")
    time.sleep(GAP)
    print("out two", flush=True)
    return {"ok": True}


def flood(lines, width=200):
    """Print `lines` lines of `width` bytes each (numbered), stdout only."""
    for i in range(lines):
        sys.stdout.write(("%06d " % i).ljust(width, "x") + "\n")
    sys.stdout.flush()
    return {"lines": lines}


def flaky():
    """Say which attempt this is; the first one fails."""
    print("this is attempt %d" % taskexec_task.attempt, flush=True)
    if taskexec_task.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"attempt": taskexec_task.attempt}


def ticking(count, every):
    for i in range(count):
        print("tick %d" % i, flush=True)
        time.sleep(every)
    print("last tick", flush=True)
    return {"ticks": count}


def _wait_for(path, limit=60):
    end = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError("no %s" % path)
        time.sleep(0.05)


def stepwise(marker_dir):
    """Report 25%, wait for marker_dir/go, then 75% and 100% at once."""
    taskexec_task.progress(0.25, "quarter")
    _wait_for(os.path.join(marker_dir, "go"))
    taskexec_task.progress(0.75, "three quarters")
    taskexec_task.progress(1.0, "done")       # within the throttle's 0.5 s: sent at the end
    return {"steps": 3}


def bad_progress(value):
    taskexec_task.progress(value)
    return {"reported": value}
