# SPDX-License-Identifier: ISC
"""Issue 9, the Redis side: no identity clash, no garbage in Redis and no
wrong credential may wedge the executor or black-hole a job.

Each test asserts what a user sees (exit codes and their one-line errors,
log events, /metrics and /healthz, job rows) and that the next good job
still completes.
"""
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

from testlib import spare_port
from ithelpers import describe, wait_for

TASKEXECD = Path(os.environ.get("ITEST_TASKEXECD", Path(__file__).resolve().parents[2] / "build" / "taskexecd"))


def jobs_with_key(db, key):
    """Rows of jobs with this idempotency key (none yet when no daemon made the schema)."""
    try:
        return db.query("SELECT status FROM taskexec.jobs WHERE idempotency_key = %s", (key,))
    except psycopg2.errors.UndefinedTable:
        return []


def events(d, name):
    return [l for l in d.log_lines() if l.get("event") == name]


def heartbeats(d):
    return len(events(d, "heartbeat"))


def http_get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def metric(port, name):
    """The value of taskexec_<name> in /metrics, or None."""
    status, body = http_get(port, "/metrics")
    if status != 200:
        return None
    m = re.search(r"^taskexec_%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), body, re.M)
    return float(m.group(1)) if m else None


def redis_url_with(url, password=None, user=None, db=None):
    u = urlsplit(url)
    host = u.hostname + (":%d" % u.port if u.port else "")
    if password is not None:
        host = "%s:%s@%s" % (user or "", password, host)
    path = "/%d" % db if db is not None else u.path
    return urlunsplit((u.scheme, host, path, "", ""))


@pytest.fixture
def acl_user(rds):
    """An ACL user with a password of its own: (name, password); removed afterwards."""
    name, password = "it-%s" % uuid.uuid4().hex[:8], uuid.uuid4().hex
    rds.execute_command("ACL", "SETUSER", name, "on", ">" + password, "~*", "&*", "+@all")
    yield name, password
    rds.execute_command("ACL", "DELUSER", name)


# ------------------------------------------------------------ 6. executor identity


def test_a_second_daemon_with_a_live_executor_id_is_refused_and_the_job_runs_once(
        ctx, daemon, submit, wait_status, wait_terminal, db, rds):
    a = daemon()
    job = submit("itasks.basic:sleep", "seconds=3")
    wait_status(job, "RUNNING")
    b = daemon(executor_id=a.executor_id, wait_ready=False)
    wait_for(lambda: not b.alive(), 15, "the second daemon with id %s to exit" % a.executor_id)
    b.expected_exit = True
    assert b.proc.returncode != 0, b.tail()
    refused = events(b, "executor.id_in_use")
    assert len(refused) == 1 and a.executor_id in refused[0]["msg"], b.tail()
    # The first daemon keeps its job: not put back, not run a second time.
    row = wait_terminal(job, 20)[job]
    assert row["status"] == "COMPLETED" and row["attempts"] == 1, describe(db, job)
    assert [x["executor_id"] for x in db.attempts(job)] == [a.executor_id], describe(db, job)
    assert not events(b, "executor.recovered_own"), b.tail()
    nxt = submit("itasks.basic:noop")
    assert wait_terminal(nxt, 15)[nxt]["status"] == "COMPLETED", describe(db, nxt)
    assert a.alive(), a.tail()


def test_a_daemon_restarted_after_a_crash_takes_back_its_id_once_the_lease_lapsed(
        ctx, daemon, submit, wait_status, wait_terminal, db):
    a = daemon()
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=60")
    wait_status(job, "RUNNING")
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 10, "the first run to start")
    a.kill()
    # Same explicit id at once, while the crashed one's lease is still live.
    b = daemon(executor_id=a.executor_id, wait_ready=False)
    row = wait_terminal(job, 30)[job]
    assert row["status"] == "COMPLETED", describe(db, job) + b.tail()
    assert b.alive(), b.tail()
    assert events(b, "executor.recovered_own"), b.tail()


def _unavailable(reason):
    """Skip on a developer's machine; fail under CI, whose bootstrap installs
    util-linux and whose kernel has pid namespaces: a skip there would hide
    a missing install step."""
    if os.environ.get("CI"):
        pytest.fail("CI: " + reason)
    pytest.skip(reason)


def test_default_executor_ids_differ_for_daemons_that_are_all_pid_1(ctx):
    if not shutil.which("unshare"):
        _unavailable("unshare(1) is not installed")
    env = {k: v for k, v in ctx.env.items() if k != "TASKEXEC_EXECUTOR_ID"}
    ids = []
    for _ in range(2):
        r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", str(TASKEXECD), "--check"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        m = re.search(r"^TASKEXEC_EXECUTOR_ID=(\S+)", r.stdout, re.M)
        if r.returncode != 0 and "unshare" in r.stderr:
            _unavailable("no pid namespaces here: %s" % r.stderr.strip())
        assert m, r.stdout + r.stderr
        ids.append(m.group(1))
    assert ids[0] != ids[1], "two containers that both run as pid 1 would share %s" % ids[0]


# ------------------------------------------------------------ 10. garbage in Redis


def test_a_malformed_delayed_member_is_moved_aside_and_retries_still_run(
        ctx, daemon, submit, wait_terminal, db, rds):
    port = spare_port()
    rds.zadd(ctx.key("delayed"), {"no separator here": 0})
    d = daemon(env={"TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % port})
    job = submit("itasks.basic:fail_then_succeed", "marker_dir=%s" % ctx.marker_dir(), "times=1")
    row = wait_terminal(job, 30)[job]
    assert row["status"] == "COMPLETED" and row["attempts"] == 2, describe(db, job) + d.tail()
    assert rds.lrange(ctx.key("garbage"), 0, -1) == ["no separator here"]
    assert rds.zcard(ctx.key("delayed")) == 0
    moved = events(d, "redis.malformed")
    assert moved and moved[0]["entries"] == 1, d.tail()
    wait_for(lambda: metric(port, "redis_malformed_total") == 1, 10, "taskexec_redis_malformed_total 1")
    nxt = submit("itasks.basic:noop")
    assert wait_terminal(nxt, 15)[nxt]["status"] == "COMPLETED", describe(db, nxt)


def test_queue_keys_of_the_wrong_type_are_reported_once_and_other_queues_served(
        ctx, daemon, submit, wait_terminal, db, rds):
    port = spare_port()
    rds.set(ctx.key("queue", "high"), "not a list")
    rds.hset(ctx.key("queue", "low"), "not", "a list")
    d = daemon(env={"TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % port})
    job = submit("itasks.basic:noop", priority="normal")
    assert wait_terminal(job, 15)[job]["status"] == "COMPLETED", describe(db, job) + d.tail()
    n = heartbeats(d)
    wait_for(lambda: heartbeats(d) >= n + 3, 15, "three more heartbeats")
    bad = events(d, "redis.bad_key")
    assert len(bad) == 1, "expected one report, not one per heartbeat or claim: %r" % bad
    assert ctx.key("queue", "high") in bad[0]["keys"] and ctx.key("queue", "low") in bad[0]["keys"], bad
    assert not events(d, "redis.error"), d.tail()
    assert metric(port, "redis_bad_keys") == 2
    # Nothing was lost or rewritten: the operator decides what the values were.
    assert rds.get(ctx.key("queue", "high")) == "not a list"
    rds.delete(ctx.key("queue", "high"))
    wait_for(lambda: events(d, "redis.bad_key_cleared") or metric(port, "redis_bad_keys") == 1, 15,
             "the report to follow the repair")
    high = submit("itasks.basic:noop", priority="high")
    assert wait_terminal(high, 15)[high]["status"] == "COMPLETED", describe(db, high)
    rds.delete(ctx.key("queue", "low"))


def test_a_wake_marker_of_the_wrong_type_does_not_spin_the_loop(ctx, daemon, submit, wait_terminal, db, rds):
    rds.set(ctx.key("wake"), "not a zset")
    d = daemon()

    def cpu_s():
        with open("/proc/%d/stat" % d.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0, n = cpu_s(), heartbeats(d)
    wait_for(lambda: heartbeats(d) >= n + 3, 15, "three more heartbeats")
    assert cpu_s() - c0 < 0.5, "taskexecd burnt %.2fs of CPU in three idle heartbeats" % (cpu_s() - c0)
    # Jobs still run: the heartbeat sees the queue depth and claims.
    job = submit("itasks.basic:noop")
    assert wait_terminal(job, 15)[job]["status"] == "COMPLETED", describe(db, job) + d.tail()
    rds.delete(ctx.key("wake"))


# ------------------------------------------------------------ 12. credentials and database


def test_cli_with_a_wrong_redis_password_fails_naming_authentication(ctx, cli, db, acl_user, services):
    user, password = acl_user
    bad = redis_url_with(services.redis_url, password="wrong-secret-123", user=user)
    r = cli("queues", env={"TASKEXEC_REDIS_URL": bad})
    assert r.returncode != 0, r.stdout
    assert "Redis: authentication failed" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "wrong-secret-123" not in r.stderr + r.stdout
    key = "k-%s" % uuid.uuid4().hex[:8]
    r = cli("submit", "itasks.basic:noop", "--task-type", "ad_hoc", "--idempotency-key", key,
            env={"TASKEXEC_REDIS_URL": bad})
    assert r.returncode != 0 and "Redis: authentication failed" in r.stderr, r.stdout + r.stderr
    assert jobs_with_key(db, key) == []
    good = redis_url_with(services.redis_url, password=password, user=user)
    r = cli("queues", env={"TASKEXEC_REDIS_URL": good})
    assert r.returncode == 0, r.stderr


def test_cli_submit_to_a_missing_redis_database_fails_and_queues_nothing(ctx, cli, db, rds, services):
    key = "k-%s" % uuid.uuid4().hex[:8]
    r = cli("submit", "itasks.basic:noop", "--task-type", "ad_hoc", "--idempotency-key", key,
            env={"TASKEXEC_REDIS_URL": redis_url_with(services.redis_url, db=99)})
    assert r.returncode != 0, r.stdout
    assert "Redis: SELECT 99:" in r.stderr, r.stderr
    assert jobs_with_key(db, key) == []
    assert rds.llen(ctx.key("queue", "normal")) == 0
    r = cli("queues", env={"TASKEXEC_REDIS_URL": redis_url_with(services.redis_url, db=99)})
    assert r.returncode != 0 and "Redis: SELECT 99:" in r.stderr, r.stdout + r.stderr


def test_daemon_with_a_wrong_redis_password_says_so_once_and_reports_redis_down(
        ctx, daemon, submit, wait_terminal, db, acl_user, services):
    user, _ = acl_user
    port = spare_port()
    bad = redis_url_with(services.redis_url, password="wrong-secret-123", user=user)
    d = daemon(env={"TASKEXEC_REDIS_URL": bad, "TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % port},
               wait_ready=False)
    wait_for(lambda: events(d, "redis.refused"), 15, "the daemon to say Redis refused it")
    n = heartbeats(d)
    wait_for(lambda: heartbeats(d) >= n + 3, 15, "three more heartbeats")
    refused = events(d, "redis.refused")
    # One line per cause, not one per connection and attempt.
    assert len(refused) == 1, refused
    assert "Redis: authentication failed" in refused[0]["msg"], refused
    assert "wrong-secret-123" not in d.log_path.read_text()
    assert metric(port, "redis_up") == 0
    status, body = http_get(port, "/healthz")
    assert status == 503 and json.loads(body)["redis"] == "error", (status, body)
    assert "Redis: authentication failed" in json.loads(body).get("redis_error", ""), body
    # It claims nothing as some other Redis user.
    job = submit("itasks.basic:noop")
    good = daemon()
    assert wait_terminal(job, 15)[job]["executor_id"] == good.executor_id, describe(db, job)


def test_a_redis_database_that_is_not_a_number_is_refused_not_read_as_0(cli, services):
    for url in (redis_url_with(services.redis_url) + "abc", "unix:///run/redis.sock?db=one"):
        r = cli("queues", env={"TASKEXEC_REDIS_URL": url})
        assert r.returncode != 0 and "TASKEXEC_REDIS_URL" in r.stderr, (url, r.stdout, r.stderr)
