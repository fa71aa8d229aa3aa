# SPDX-License-Identifier: ISC
"""The Celery equivalents of benchtasks.noop, for the side-by-side in bench.py.

bench.py runs `/usr/bin/python3 -m celery -A celerytasks worker --pool=prefork
--concurrency=N` with tests/bench as the working directory and
BENCH_CELERY_BROKER set to a Redis URL (another DB number of the bench's
Redis).  There is no result backend: each task, in the pool process that runs
it, takes time.time() on entry and on exit and RPUSHes
"<enqueue time> <start> <end>" to bench:done:<tag> on the broker's Redis, the
enqueue time being the one the producer put into the arguments.  That one
round trip per task is the counterpart of the started_at/ended_at bookkeeping
RQ and taskexecd do in Redis and PostgreSQL.
"""
import os
import time

import redis
from celery import Celery

BROKER = os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:6379/2")

app = Celery("celerytasks", broker=BROKER)
app.conf.update(
    task_ignore_result=True,          # no result backend: the record below is the result
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_client = None
_client_pid = None


def _redis():
    """One connection per pool process (made after the fork)."""
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(BROKER)
        _client_pid = os.getpid()
    return _client


def _record(tag, t_enq, t0):
    t1 = time.time()
    _redis().rpush("bench:done:" + tag, "%r %r %r" % (t_enq, t0, t1))


@app.task(name="celerytasks.noop")
def noop(t_enq, tag):
    t0 = time.time()
    _record(tag, t_enq, t0)


@app.task(name="celerytasks.sleep_ms")
def sleep_ms(t_enq, tag, ms):
    t0 = time.time()
    time.sleep(ms / 1000.0)
    _record(tag, t_enq, t0)
