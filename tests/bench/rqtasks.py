# SPDX-License-Identifier: ISC
"""The RQ equivalents of benchtasks.noop, for the side-by-side in bench.py.

RQ imports this module in its work-horse by name (`rqtasks.noop`); bench.py
puts tests/bench on PYTHONPATH for the rq workers.
"""
import time


def noop():
    return None


def stamp(tag):
    """A no-op that records the wall clock on entry (queue -> task code start),
    keyed by its job id, on the worker's own Redis connection."""
    t0 = time.time()
    from rq import get_current_job
    job = get_current_job()
    job.connection.rpush("bench:stamp:" + tag, "%s %r" % (job.id, t0))


def sleep_ms(ms):
    time.sleep(ms / 1000.0)
    return None
