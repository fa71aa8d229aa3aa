# SPDX-License-Identifier: ISC
"""Fixtures for the taskexecd integration tests: real Redis, real PostgreSQL.

Session: `services` starts a throwaway Redis + PostgreSQL with scripts/services
(stopped at the end even when tests fail) and `policy_dir` copies <repo>/policy
with test tweaks to the ad_hoc type.

Per test (each gets its own queue prefix, so tests never see each other's
queues): `ctx` (prefix, key(), marker_dir(), its directory), `env` (the
TASKEXEC_* environment), `daemon` (factory for running build/taskexecd),
`cli` / `submit` (build/taskexec), `db` (PostgreSQL rows as dicts),
`wait_terminal`, `wait_status`, `rds` (redis-py client) and `push` (the
documented producer MULTI, for payloads the CLI would never write).
Plain helpers (job_payload, invalid_job_id, describe, wait_for) are in ithelpers.py.

Set ITEST_KEEP=1 to keep the temporary directory (logs, data) after the run.
(ITEST_*, not TASKEXEC_*: taskexecd refuses TASKEXEC_* names it does not know.)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import redis
import testlib
from testlib import DB, REPO, TASKEXEC, TASKEXECD, Daemon, Services, failed_in_call, stop_daemons

from ithelpers import (BACKOFF_BASE_S, BACKOFF_MAX_S, HEARTBEAT_S, TASK_TYPE, TERMINAL, ini_set,
                       processing_entries, wait_for)

HERE = Path(__file__).resolve().parent
TASKS_ROOT = HERE / "tasks_root"


# --------------------------------------------------------------------------
# session: services and directories


@pytest.fixture(scope="session")
def itest_root():
    # Under /tmp with 0755: the postgres user and the job user (nobody) must be
    # able to reach the cluster, the scratch dirs and the marker dirs.
    root = Path(tempfile.mkdtemp(prefix="taskexec-it-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    if not os.environ.get("ITEST_KEEP"):
        shutil.rmtree(root, ignore_errors=True)
    else:
        print("\nintegration test files kept in %s" % root)


@pytest.fixture(scope="session")
def services(itest_root):
    s = Services(itest_root / "services")
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="session")
def markers_root(itest_root):
    """A directory jobs may write (named in the test policy): per-test marker dirs."""
    d = itest_root / "markers"
    d.mkdir()
    d.chmod(0o1777)
    return d


@pytest.fixture(scope="session")
def policy_dir(itest_root, markers_root):
    """<repo>/policy, with the ad_hoc type made quick to retry and allowed to write markers."""
    d = itest_root / "policy"
    shutil.copytree(REPO / "policy", d)
    p = d / ("%s.policy" % TASK_TYPE)
    text = p.read_text() if p.exists() else ""
    text = ini_set(text, "job", "backoff_base", "%dms" % (BACKOFF_BASE_S * 1000))
    text = ini_set(text, "job", "backoff_max", "%dms" % (BACKOFF_MAX_S * 1000))
    text = ini_set(text, "job", "max_retries", "3")
    # Jobs may ask for any priority and up to 5 retries.
    text = ini_set(text, "job", "max_priority", "high")
    text = ini_set(text, "job", "retries_limit", "5")
    text = ini_set(text, "job", "timeout", "60s")
    text = ini_set(text, "job", "max_timeout", "5m")
    text = ini_set(text, "paths", "write", str(markers_root), merge_list=True)
    p.write_text(text)
    return d




# --------------------------------------------------------------------------
# per test: environment, CLI, daemon


class Ctx:
    """What one test works with: its queue prefix, directories and environment."""

    def __init__(self, name, root, services, policy_dir, markers_root):
        self.name = name
        self.prefix = "it-%s-%s" % (re.sub(r"[^A-Za-z0-9]+", "-", name)[:40].strip("-"), uuid.uuid4().hex[:6])
        self.dir = root / "tests" / self.prefix
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o755)
        for sub in ("state", "scratch"):
            (self.dir / sub).mkdir()
            (self.dir / sub).chmod(0o755)
        testlib.seed_exports(self.dir / "state")       # for the seed task's etl policy
        self.markers_root = markers_root
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("TASKEXEC_") and k != "ALLOWED_MODULES"}
        self.env.update({
            "TASKEXEC_REDIS_URL": services.redis_url,
            "TASKEXEC_DB_URL": services.db_url,
            "TASKEXEC_QUEUE_PREFIX": self.prefix,
            "TASKEXEC_HEARTBEAT_INTERVAL": "%gs" % HEARTBEAT_S,
            "TASKEXEC_HTTP_LISTEN": "off",
            # The repo first: policies expand ${TASKS_ROOT} to the first root
            # (etl finds the seed task's sample exports through it).
            "TASKEXEC_TASKS_PATH": "%s:%s" % (REPO, TASKS_ROOT),
            "TASKEXEC_ALLOWED_MODULES": "tasks,itasks",
            "TASKEXEC_POLICY_DIR": str(policy_dir),
            "TASKEXEC_STATE_DIR": str(self.dir / "state"),
            "TASKEXEC_SCRATCH_DIR": str(self.dir / "scratch"),
            "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
            "TASKEXEC_LOG_LEVEL": "debug",
        })

    def key(self, *parts):
        """A Redis key of this test's prefix: key('queue', 'high') -> '{P}:queue:high'."""
        return testlib.key(self.prefix, *parts)

    def marker_dir(self, name=None):
        """A fresh directory the jobs of this test may write (see fail_then_succeed)."""
        d = self.markers_root / ("%s-%s" % (self.prefix, name or uuid.uuid4().hex[:6]))
        d.mkdir()
        d.chmod(0o777)
        return str(d)


@pytest.fixture
def ctx(request, itest_root, services, policy_dir, markers_root):
    return Ctx(request.node.name, itest_root, services, policy_dir, markers_root)


@pytest.fixture
def env(ctx):
    """The TASKEXEC_* environment of this test (a dict; copy before changing)."""
    return ctx.env


@pytest.fixture
def cli(ctx):
    """cli(*args, env=None, timeout=60) -> CompletedProcess of build/taskexec (text)."""
    def run(*args, env=None, timeout=60, input=None):
        if not TASKEXEC.exists():
            pytest.fail("%s is not built (run make)" % TASKEXEC)
        e = dict(ctx.env)
        e.update(env or {})
        return subprocess.run([str(TASKEXEC), *map(str, args)], env=e, cwd=str(ctx.dir), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
    return run


@pytest.fixture
def submit(cli):
    """submit(entry, *kv, task_type=TASK_TYPE, idempotency_key=, priority=, timeout=,
    max_retries=, env=) -> job id.  Fails the test if the CLI does not exit 0."""
    def do(entry, *kv, task_type=TASK_TYPE, idempotency_key=None, priority=None, timeout=None,
           max_retries=None, env=None):
        args = ["submit", entry, *kv, "--task-type", task_type]
        for flag, value in (("--idempotency-key", idempotency_key), ("--priority", priority),
                            ("--timeout", timeout), ("--max-retries", max_retries)):
            if value is not None:
                args += [flag, value]
        r = cli(*args, env=env)
        assert r.returncode == 0, "taskexec %s -> exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(map(str, args)), r.returncode, r.stdout, r.stderr)
        job_id = r.stdout.strip().splitlines()[0].strip() if r.stdout.strip() else ""
        assert job_id, "taskexec submit printed no job id; stderr: %s" % r.stderr
        return job_id
    return do


@pytest.fixture
def client(ctx, services, policy_dir):
    """A taskexec.Client (the Python client) on this test's Redis prefix, PostgreSQL and policies.
    The package is <repo>/client/taskexec, or the copy under ITEST_CLIENT_PATH."""
    path = os.environ.get("ITEST_CLIENT_PATH", str(REPO / "client"))
    if path not in sys.path:
        sys.path.insert(0, path)
    import taskexec
    c = taskexec.Client(redis_url=services.redis_url, db_url=services.db_url, queue_prefix=ctx.prefix,
                        policy_dir=str(policy_dir))
    yield c
    c.close()


@pytest.fixture
def daemon(request, ctx, rds, db):
    """daemon(concurrency=1, executor_id=None, shutdown_timeout='5s', env=None, wait_ready=True) -> Daemon.

    Starts build/taskexecd with this test's environment and waits until its
    heartbeat key is in Redis and its taskexec.executors row exists (so the
    schema exists and it claims).  At
    teardown every daemon gets SIGTERM (SIGKILL if it hangs), a daemon that
    died on its own fails the test, and no job may be left in
    {P}:processing:*.
    """
    started = []

    def start(concurrency=1, executor_id=None, shutdown_timeout="5s", env=None, wait_ready=True):
        if not TASKEXECD.exists():
            pytest.fail("%s is not built (run make)" % TASKEXECD)
        executor_id = executor_id or "%s-d%d" % (ctx.prefix, len(started) + 1)
        e = dict(ctx.env)
        e.update({
            "TASKEXEC_EXECUTOR_ID": executor_id,
            "TASKEXEC_CONCURRENCY": str(concurrency),
            "TASKEXEC_SHUTDOWN_TIMEOUT": shutdown_timeout,
        })
        e.update(env or {})
        # A second daemon under the same id gets files of its own: sharing
        # one, each writes at its own offset over the other's lines.
        name = executor_id
        if any(x.executor_id == executor_id for x in started):
            name = "%s-%d" % (executor_id, len(started) + 1)
        d = Daemon(e, ctx.dir, ctx.dir / ("taskexecd-%s.log" % name), ctx.dir / ("taskexecd-%s.stderr" % name))
        started.append(d)
        if wait_ready:
            hb = ctx.key("heartbeat", executor_id)

            def ready():
                if not d.alive():
                    pytest.fail("taskexecd %s exited with %s at start\n%s" % (executor_id, d.proc.returncode, d.tail()))
                # The executors row also means the schema is there (the CLI needs it).
                if not rds.exists(hb):
                    return False
                try:
                    return db.executor(executor_id) is not None
                except psycopg2.errors.UndefinedTable:
                    return False
            wait_for(ready, 15, "taskexecd %s to publish its heartbeat (%s and its executors row)"
                     % (executor_id, hb))
        return d

    yield start

    failed = failed_in_call(request)
    problems = stop_daemons(started, failed)
    if started and not failed:
        left = processing_entries(rds, ctx)
        if left:
            problems.append("jobs left in processing lists after the daemons stopped: %r" % left)
    if problems:
        pytest.fail("\n\n".join(problems))


# --------------------------------------------------------------------------
# per test: PostgreSQL and Redis


@pytest.fixture
def db(services):
    d = DB(services.db_url)
    yield d
    d.close()


@pytest.fixture
def wait_terminal(db):
    """wait_terminal(job_ids, timeout=30) -> {job_id: row}, every job COMPLETED or FAILED."""
    def wait(job_ids, timeout=30):
        if isinstance(job_ids, str):
            job_ids = [job_ids]
        job_ids = list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            rows = {r["job_id"]: r for r in db.query(
                "SELECT * FROM taskexec.jobs WHERE job_id = ANY(%s)", (job_ids,))}
            pending = [j for j in job_ids if j not in rows or rows[j]["status"] not in TERMINAL]
            if not pending:
                return rows
            if time.monotonic() >= deadline:
                pytest.fail("after %ss these jobs are not terminal: %s" % (
                    timeout, ", ".join("%s=%s" % (j, rows[j]["status"] if j in rows else "no row") for j in pending)))
            time.sleep(0.1)
    return wait


@pytest.fixture
def wait_status(db):
    """wait_status(job_id, status, timeout=15, running_attempt=True) -> row.

    With status RUNNING it also waits for an attempt row still open
    (outcome NULL), so the interpreter has really been started."""
    def wait(job_id, status, timeout=15):
        def check():
            row = db.job(job_id)
            if not row or row["status"] != status:
                return None
            if status == "RUNNING":
                att = db.attempts(job_id)
                if not att or att[-1]["outcome"] is not None:
                    return None
            return row
        return wait_for(check, timeout, "job %s to be %s" % (job_id, status))
    return wait


@pytest.fixture
def rds(services):
    r = redis.Redis.from_url(services.redis_url, decode_responses=True, encoding_errors="replace",
                             socket_timeout=10)
    yield r
    r.close()


@pytest.fixture
def push(ctx, rds):
    """push(payload, priority='normal'): the producer step of taskexec-protocol(7).

    MULTI; RPUSH {P}:queue:<priority> payload; ZADD {P}:wake 0 w; EXEC.  A dict
    payload is dumped to JSON, str and bytes are sent as they are.  Returns
    what was sent."""
    return lambda payload, priority="normal": testlib.push(rds, ctx.prefix, payload, priority)
