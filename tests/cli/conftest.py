# SPDX-License-Identifier: ISC
"""Fixtures for the taskexec(1) tests: the integration harness
(tests/integration/conftest.py: real Redis, real PostgreSQL, real daemons),
taken from testlib, plus `bare` (taskexec with no services)
and `row` (a job row written straight into PostgreSQL, for states and texts a
daemon would take long to reach: old timestamps, control characters)."""
import json
import os
import subprocess
import uuid

import pytest

import testlib
from testlib import TASKEXEC

globals().update(testlib.integration_fixtures())


@pytest.fixture
def bare(tmp_path):
    """bare(*args, timeout=10) -> CompletedProcess: taskexec with no Redis, PostgreSQL or settings."""
    def run(*args, timeout=10):
        e = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
        return subprocess.run([str(TASKEXEC), *map(str, args)], env=e, cwd=str(tmp_path),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=timeout)
    return run


@pytest.fixture
def schema(cli):
    """The schema exists: taskexec migrates a new database on first use."""
    r = cli("list", "--limit", "1")
    assert r.returncode == 0, r.stderr


@pytest.fixture
def task_type(ctx):
    """A task type of this test alone: the jobs table is shared by every test."""
    return "t_" + uuid.uuid4().hex[:10]


@pytest.fixture
def row(db, schema, task_type):
    """row(status='COMPLETED', age='0', **columns) -> job_id: a jobs row of this test's task type,
    created `age` ago (an SQL interval) and, when terminal, started then and finished a second later."""
    def make(status="COMPLETED", age="0", attempts=(), **cols):
        job_id = "cli-%s" % uuid.uuid4()
        base = {"job_id": job_id, "task_type": task_type, "module_path": "itasks.basic", "class_name": None,
                "method_name": "noop", "status": status, "attempts": len(attempts)}
        base.update(cols)
        if "result" in base and base["result"] is not None:
            base["result"] = json.dumps(base["result"])
        names = list(base)
        terminal = status in ("COMPLETED", "FAILED")
        db.query("INSERT INTO taskexec.jobs (%s, created_at, started_at, finished_at) VALUES (%s, "
                 "now() - %%s::interval, %s, %s)" % (
                     ", ".join(names), ", ".join(["%s"] * len(names)),
                     "now() - %s::interval" if status != "QUEUED" else "NULL",
                     "now() - %s::interval + interval '1.5 s'" if terminal else "NULL"),
                 [base[n] for n in names] + [age] + ([age] if status != "QUEUED" else [])
                 + ([age] if terminal else []))
        for n, a in enumerate(attempts, 1):
            a = dict(a)
            a.setdefault("executor_id", "exec-1")
            names = ["job_id", "attempt", *a]
            db.query("INSERT INTO taskexec.attempts (%s, started_at, ended_at) VALUES (%s, "
                     "now() - %%s::interval, now() - %%s::interval + interval '0.25 s')" % (
                         ", ".join(names), ", ".join(["%s"] * len(names))),
                     [job_id, n, *a.values(), age, age])
        return job_id
    return make
