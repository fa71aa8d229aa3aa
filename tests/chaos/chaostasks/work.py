# SPDX-License-Identifier: ISC
"""The job mix of tests/chaos/chaos.py and the no-op of tests/chaos/scale.py.

Every successful run appends one line "<job_id> <attempt>" to
$CHAOS_MARKER_DIR/runs-<job_id> (the chaos policy makes that directory
writable and passes the variable), just before it returns.  The harness counts
those lines: a COMPLETED job with more than one of them ran twice, which is
allowed only when the job is flagged is_duplicate.

Every task takes `n`, the job's sequence number, so that no two jobs share a
payload (taskexecd flags identical payloads as possible duplicates).
"""
import os
import time

import taskexec_task


def _mark():
    d = os.environ.get("CHAOS_MARKER_DIR")
    if not d:
        return
    line = "%s %d\n" % (taskexec_task.job_id, taskexec_task.attempt)
    # 0o664: a rerun of this job runs under another uid and must append too
    # (taskexec-tasks(7), write paths are shared through the jobs' group).
    fd = os.open(os.path.join(d, "runs-" + taskexec_task.job_id), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o664)
    try:
        os.write(fd, line.encode())   # one short O_APPEND write: atomic
    finally:
        os.close(fd)


def quick(n):
    _mark()
    return {"n": n}


def slow(n, seconds):
    time.sleep(seconds)
    _mark()
    return {"n": n, "slept": seconds}


def flaky(n, fail_first):
    """Fail attempts 1..fail_first (taskexec_task.attempt counts lost attempts too), then succeed."""
    if taskexec_task.attempt <= fail_first:
        raise RuntimeError("planned failure on attempt %d of %d" % (taskexec_task.attempt, fail_first))
    _mark()
    return {"n": n, "attempt": taskexec_task.attempt}


def timeout(n, seconds):
    """Sleep past the job's timeout_seconds: every attempt ends `timeout`."""
    time.sleep(seconds)
    _mark()   # never reached when seconds > timeout_seconds
    return {"n": n}


def unstorable(n):
    """Send back, past the shim, a result jansson accepts and PostgreSQL's
    jsonb cannot hold: the attempt must end 'unstorable', never wedge a slot."""
    os.write(3, b'{"ok":true,"result":1E-20000}')
    os._exit(0)
