# SPDX-License-Identifier: ISC
"""The Python client (package taskexec) against real Redis, PostgreSQL and
taskexecd: what a producer sees."""
import json
import time
from datetime import datetime, timedelta, timezone

import pytest

import taskexec
from ithelpers import TASK_TYPE


@pytest.fixture
def schema(cli):
    """The taskexec schema, made by the CLI (which migrates a new database) for
    tests that enqueue before any daemon runs."""
    r = cli("list")
    assert r.returncode == 0, r.stderr


def test_enqueue_wait_returns_completed_and_result(daemon, client):
    daemon()
    job = client.enqueue("itasks.basic:echo", TASK_TYPE, parameters={"customer_id": 42, "name": "acme"})
    assert job.wait(timeout=30) == "COMPLETED"
    assert job.status() == "COMPLETED"
    assert job.result == {"customer_id": 42, "name": "acme"}
    assert job.error is None and job.traceback is None
    assert job.attempts == 1


def test_failed_job_carries_error_and_traceback(daemon, client):
    daemon()
    job = client.enqueue("itasks.basic:fail_always", TASK_TYPE, max_retries=0)
    assert job.wait(timeout=30) == "FAILED"
    assert "boom" in job.error
    assert "Traceback" in job.traceback and "ValueError" in job.traceback
    assert job.result is None


def test_wait_on_a_job_nobody_runs_raises_timeout_error(schema, client):
    job = client.enqueue("itasks.basic:noop", TASK_TYPE)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        job.wait(timeout=0.5)
    assert 0.5 <= time.monotonic() - t0 < 2
    assert job.status() == "QUEUED"


def test_cancel_of_queued_job_fails_it_and_it_never_runs(schema, daemon, client, db):
    job = client.enqueue("itasks.basic:noop", TASK_TYPE)
    assert job.cancel() == "cancelled"
    assert job.status() == "FAILED" and job.error == "cancelled"
    d = daemon()
    # The daemon drops the entry unrun when it claims it.
    d.wait_event("job.skipped", where=lambda e: e.get("job_id") == job.id)
    assert job.attempts == 0 and db.job(job.id)["status"] == "FAILED"
    with pytest.raises(taskexec.JobStateError):
        job.cancel()


def test_cancel_of_running_job_kills_it(daemon, client, wait_status):
    daemon()
    job = client.enqueue("itasks.basic:sleep", TASK_TYPE, parameters={"seconds": 30})
    wait_status(job.id, "RUNNING")
    assert job.cancel() == "cancelling"
    assert job.wait(timeout=20) == "FAILED"
    assert job.error == "cancelled"


def test_retry_of_failed_job_runs_it_again(ctx, daemon, client):
    daemon()
    job = client.enqueue("itasks.basic:fail_then_succeed", TASK_TYPE,
                         parameters={"marker_dir": ctx.marker_dir(), "times": 1}, max_retries=0)
    assert job.wait(timeout=30) == "FAILED"
    assert job.retry() is job
    assert job.wait(timeout=30) == "COMPLETED"
    assert job.result == {"runs": 2} and job.attempts == 2
    with pytest.raises(taskexec.JobStateError) as e:
        job.retry()
    assert e.value.status == "COMPLETED"


def test_job_by_id_and_unknown_id(daemon, client):
    daemon()
    job = client.enqueue("itasks.basic:noop", TASK_TYPE)
    assert client.job(job.id).wait(timeout=30) == "COMPLETED"
    with pytest.raises(taskexec.JobNotFound):
        client.job("no-such-job")


def test_idempotency_key_of_completed_job_gives_its_result_without_running(daemon, client, db):
    daemon()
    first = client.enqueue("itasks.basic:echo", TASK_TYPE, parameters={"n": 1}, idempotency_key="client-k1")
    assert first.wait(timeout=30) == "COMPLETED"
    second = client.enqueue("itasks.basic:echo", TASK_TYPE, parameters={"n": 2}, idempotency_key="client-k1")
    assert second.wait(timeout=30) == "COMPLETED"
    assert second.result == {"n": 1} and second.attempts == 0
    row = db.job(second.id)
    assert row["is_duplicate"] and row["duplicate_of"] == first.id


def _started(db, job_id):
    return db.job(job_id)["started_at"].timestamp()


def test_delayed_job_runs_when_due_not_before(daemon, client, db, rds, ctx):
    # A heartbeat of 5 s: on time only because the producer's wake-up makes
    # the daemon learn the due time at once.
    daemon(env={"TASKEXEC_HEARTBEAT_INTERVAL": "5s"})
    t0 = time.time()
    job = client.enqueue("itasks.basic:noop", TASK_TYPE, delay=2)
    row = db.job(job.id)
    assert row["status"] == "QUEUED"
    assert abs(row["next_attempt_at"].timestamp() - (t0 + 2)) < 0.5
    entries = rds.zrange(ctx.key("delayed"), 0, -1, withscores=True)
    assert len(entries) == 1 and entries[0][0].startswith("normal|")
    assert abs(entries[0][1] / 1000 - row["next_attempt_at"].timestamp()) < 0.01
    assert json.loads(entries[0][0].split("|", 1)[1])["job_id"] == job.id
    assert job.wait(timeout=15) == "COMPLETED"
    started = _started(db, job.id)
    assert t0 + 2 <= started <= t0 + 3.2, "started %.2fs after enqueue" % (started - t0)


def test_run_at_in_the_past_runs_at_once(daemon, client, db):
    daemon()
    job = client.enqueue("itasks.basic:noop", TASK_TYPE, run_at=datetime.now(timezone.utc) - timedelta(hours=1))
    assert db.job(job.id)["next_attempt_at"] is None
    assert job.wait(timeout=30) == "COMPLETED"


def test_delayed_job_claimed_early_waits_for_its_time(daemon, client, db, push):
    daemon()
    t0 = time.time()
    job = client.enqueue("itasks.basic:noop", TASK_TYPE, run_at=datetime.now(timezone.utc) + timedelta(seconds=3))
    # An early copy on the queue itself (a replay, a reconciliation): the
    # claim sees next_attempt_at ahead and parks it instead of running it.
    push(db.job(job.id)["payload"])
    assert job.wait(timeout=20) == "COMPLETED"
    assert _started(db, job.id) >= t0 + 3 - 0.05
    assert job.attempts == 1


def test_delay_and_run_at_are_refused_together_and_naive_times_refused(client):
    with pytest.raises(ValueError, match="not both"):
        client.enqueue("itasks.basic:noop", TASK_TYPE, delay=1, run_at=datetime.now(timezone.utc))
    with pytest.raises(ValueError, match="run_at"):
        client.enqueue("itasks.basic:noop", TASK_TYPE, run_at=datetime.now())


def test_bad_arguments_name_the_member(client):
    for kwargs, member in (({"entry": "itasks.basic:_private"}, "method_name"), ({"entry": "x"}, "ENTRY"),
                           ({"priority": "urgent"}, "priority"), ({"timeout": 0}, "timeout_seconds"),
                           ({"max_retries": 101}, "max_retries"), ({"parameters": {"not-ok": 1}}, "parameters")):
        args = {"entry": "itasks.basic:noop", "task_type": TASK_TYPE}
        args.update(kwargs)
        with pytest.raises(ValueError, match=member):
            client.enqueue(**args)


def test_signed_job_runs_where_signatures_are_required(ctx, cli, daemon, client):
    pytest.importorskip("nacl", reason="signing needs python3-nacl (scripts/bootstrap installs it)")
    sk, pk = ctx.dir / "producer.key", ctx.dir / "producer.pub"
    r = cli("keygen", sk, pk)
    assert r.returncode == 0, r.stderr
    daemon(env={"TASKEXEC_REQUIRE_SIGNATURE": "1", "TASKEXEC_VERIFY_KEYS": str(pk)})
    signed = client.enqueue("itasks.basic:echo", TASK_TYPE, parameters={"s": "caf\u00e9 \u2603"},
                            signing_key=str(sk))
    unsigned = client.enqueue("itasks.basic:noop", TASK_TYPE)
    assert signed.wait(timeout=30) == "COMPLETED", signed.error
    assert signed.result == {"s": "caf\u00e9 \u2603"}
    assert unsigned.wait(timeout=30) == "FAILED"
    assert unsigned.error.startswith("signature")


def test_from_env_reads_taskexec_variables_over_the_config_file(ctx, tmp_path, services):
    conf = tmp_path / "taskexec.conf"
    conf.write_text("# test\nTASKEXEC_QUEUE_PREFIX = 'from-file'\nTASKEXEC_DB_URL=postgresql:///nowhere\n")
    env = {"TASKEXEC_CONFIG": str(conf), "TASKEXEC_REDIS_URL": services.redis_url,
           "TASKEXEC_DB_URL": services.db_url}
    c = taskexec.Client.from_env(env)
    assert (c.prefix, c.db_url, c.redis_url) == ("from-file", services.db_url, services.redis_url)
    env["TASKEXEC_QUEUE_PREFIX"] = ctx.prefix
    assert taskexec.Client.from_env(env).key("wake") == "{%s}:wake" % ctx.prefix


def test_version_is_the_tree_version():
    from pathlib import Path
    assert taskexec.__version__ == (Path(__file__).resolve().parents[2] / "VERSION").read_text().strip()
