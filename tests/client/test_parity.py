# SPDX-License-Identifier: ISC
"""`taskexec submit` and Client.enqueue are two producers of one protocol:
for the same job they write rows and Redis entries that compare equal member
by member (job_id and enqueued_at aside), through taskexec.submit()."""
import json
import time

import pytest

from ithelpers import TASK_TYPE

# Differ by nature between two jobs, or by the instant they were made.
PER_JOB = {"job_id", "created_at", "queued_at", "payload", "next_attempt_at"}


@pytest.fixture
def schema(cli):
    r = cli("list")
    assert r.returncode == 0, r.stderr


def _entry(text):
    doc = json.loads(text)
    assert doc.pop("job_id") and doc.pop("enqueued_at").endswith("Z")
    return doc


def _row(db, job_id):
    row = db.job(job_id)
    payload = _entry(row["payload"])
    return {k: v for k, v in row.items() if k not in PER_JOB}, payload


def _submit(cli, *args):
    r = cli("submit", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0]


@pytest.mark.parametrize("options", [
    {},
    {"priority": "high", "timeout": 90, "max_retries": 1, "idempotency_key": "parity-k"},
])
def test_client_and_submit_write_the_same_row_and_queue_entry(schema, cli, client, db, rds, ctx, options):
    flags = []
    for name, value in options.items():
        flags += ["--" + name.replace("_", "-"), str(value)]
    cli_id = _submit(cli, "itasks.basic:echo", "customer_id=42", "full_rebuild=false", "name=acme",
                     "--task-type", TASK_TYPE, *flags)
    job = client.enqueue("itasks.basic:echo", TASK_TYPE,
                         parameters={"customer_id": 42, "full_rebuild": False, "name": "acme"}, **options)
    cli_row, cli_payload = _row(db, cli_id)
    py_row, py_payload = _row(db, job.id)
    assert py_row == cli_row
    assert py_payload == cli_payload
    assert list(py_payload) == list(cli_payload), "members in the same order"
    prio = options.get("priority", "normal")
    queued = [_entry(e) for e in rds.lrange(ctx.key("queue", prio), 0, -1)]
    assert queued == [cli_payload, py_payload]
    assert rds.zrange(ctx.key("wake"), 0, -1) == ["w"]
    assert cli_row["status"] == "QUEUED" and cli_row["priority"] == prio


def test_client_and_submit_in_park_the_same_delayed_entry(schema, cli, client, db, rds, ctx):
    t0 = time.time()
    cli_id = _submit(cli, "itasks.basic:noop", "--task-type", TASK_TYPE, "--in", "60s")
    job = client.enqueue("itasks.basic:noop", TASK_TYPE, delay=60)
    cli_row, cli_payload = _row(db, cli_id)
    py_row, py_payload = _row(db, job.id)
    assert py_row == cli_row and py_payload == cli_payload
    due = {json.loads(e.split("|", 1)[1])["job_id"]: (e.split("|", 1)[0], s)
           for e, s in rds.zrange(ctx.key("delayed"), 0, -1, withscores=True)}
    for job_id in (cli_id, job.id):
        prio, score = due[job_id]
        assert prio == "normal"
        assert t0 + 60 - 1 <= score / 1000 <= time.time() + 60
        assert abs(db.job(job_id)["next_attempt_at"].timestamp() - score / 1000) < 0.01
    assert not rds.llen(ctx.key("queue", "normal"))


def test_submit_in_runs_a_job_when_due_not_before(cli, daemon, db, wait_terminal):
    daemon(env={"TASKEXEC_HEARTBEAT_INTERVAL": "5s"})
    t0 = time.time()
    job_id = _submit(cli, "itasks.basic:noop", "--task-type", TASK_TYPE, "--in", "2s")
    r = cli("submit", "itasks.basic:noop", "--task-type", TASK_TYPE, "--in", "2s", "--wait", timeout=30)
    assert r.returncode == 0 and r.stdout.split()[1] == "COMPLETED", r.stdout + r.stderr
    wait_terminal(job_id)
    started = db.job(job_id)["started_at"].timestamp()
    assert t0 + 2 <= started <= t0 + 3.2, "started %.2fs after submit" % (started - t0)


def test_submit_at_takes_an_iso8601_time_with_its_zone(schema, cli, db):
    job_id = _submit(cli, "itasks.basic:noop", "--task-type", TASK_TYPE, "--at", "2099-01-01T06:00:00+01:00")
    assert db.job(job_id)["next_attempt_at"].timestamp() == 4070926800.0
    r = cli("submit", "itasks.basic:noop", "--task-type", TASK_TYPE, "--at", "2099-01-01T06:00:00")
    assert r.returncode == 2 and "--at" in r.stderr
    r = cli("submit", "itasks.basic:noop", "--task-type", TASK_TYPE, "--at", "2099-01-01T06:00:00Z", "--in", "5s")
    assert r.returncode == 2 and "not both" in r.stderr
    r = cli("submit", "itasks.basic:noop", "--task-type", TASK_TYPE, "--in", "soon")
    assert r.returncode == 2 and "--in" in r.stderr


def test_cancel_by_cli_and_by_client_end_the_same(schema, cli, client, db):
    a = _submit(cli, "itasks.basic:noop", "--task-type", TASK_TYPE)
    b = client.enqueue("itasks.basic:noop", TASK_TYPE)
    r = cli("cancel", a)
    assert r.returncode == 0 and "cancelled" in r.stdout
    assert b.cancel() == "cancelled"
    ra, rb = db.job(a), db.job(b.id)
    for k in ("status", "error", "cancel_requested", "next_attempt_at", "attempts"):
        assert ra[k] == rb[k], k
    assert ra["status"] == "FAILED" and ra["error"] == "cancelled"
    r = cli("cancel", b.id)
    assert r.returncode == 1 and "already FAILED" in r.stderr
