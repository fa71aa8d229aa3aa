# SPDX-License-Identifier: ISC
"""taskexecd against real Redis and PostgreSQL: what a user sees in the job rows.

Every test runs its own daemon(s) under its own queue prefix; the `daemon`
fixture also fails a test that leaves a job in {P}:processing:* or whose
daemon died on its own.
"""
import json
import os
import time

from testlib import spare_port
from ithelpers import (BACKOFF_BASE_S, BACKOFF_MAX_S, HEARTBEAT_S, TASK_TYPE, assert_rejected, describe,
                       invalid_job_id, job_payload, wait_for)

# Scheduling slack on a loaded 2-core VM: interpreter start, one heartbeat tick.
SLACK_S = 1.5
# A retry is due at next_attempt_at: allow only the claim and an interpreter start.
RETRY_SLACK_S = 0.6


def seconds(a, b):
    return (b - a).total_seconds()


def outcomes(db, job_id):
    return [a["outcome"] for a in db.attempts(job_id)]


def queued_job_ids(rds, key):
    ids = []
    for entry in rds.lrange(key, 0, -1):
        try:
            ids.append(json.loads(entry).get("job_id"))
        except ValueError:
            ids.append(entry)
    return ids


# ---------------------------------------------------------------- running jobs

def test_seed_etl_job_completes_with_updated_rows(daemon, submit, wait_terminal, db):
    daemon()
    job = submit("tasks.f5portalupdate.main:run", "customer_id=42", task_type="etl")
    row = wait_terminal(job, 60)[job]
    assert row["status"] == "COMPLETED", describe(db, job)
    assert row["result"]["customer_id"] == 42
    assert isinstance(row["result"]["updated_rows"], int) and row["result"]["updated_rows"] > 0, row["result"]
    assert outcomes(db, job) == ["completed"]
    assert row["finished_at"] >= row["started_at"]


def test_failing_task_is_retried_with_backoff_then_failed_with_traceback(daemon, submit, wait_terminal, db):
    daemon()
    job = submit("itasks.basic:fail_always", max_retries=3)
    row = wait_terminal(job, 40)[job]
    att = db.attempts(job)
    assert row["status"] == "FAILED", describe(db, job)
    assert "ValueError: boom" in row["error"]
    assert "Traceback" in row["traceback"] and "fail_always" in row["traceback"]
    assert row["attempts"] == 4
    assert [a["attempt"] for a in att] == [1, 2, 3, 4]
    assert [a["outcome"] for a in att] == ["exception"] * 4, describe(db, job)
    assert all(a["error_type"] == "ValueError" and "boom" in a["error_message"] and a["traceback"] for a in att)
    # Full jitter: retry n waits random(0, min(max, base * 2^(n-1))). Only the
    # ceilings are certain, so check each wait against its ceiling, plus the
    # time to start an interpreter (a retry starts at next_attempt_at, not at
    # the next heartbeat).
    gaps = [seconds(att[n - 1]["ended_at"], att[n]["started_at"]) for n in range(1, 4)]
    ceilings = [min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (n - 1)) for n in range(1, 4)]
    for n, (gap, ceiling) in enumerate(zip(gaps, ceilings), 1):
        assert 0 <= gap <= ceiling + RETRY_SLACK_S, "retry %d started %.2fs after attempt %d ended; its back-off " \
            "is at most %.2fs (all waits: %s)" % (n, gap, n, ceiling, ["%.2f" % g for g in gaps])
    span = seconds(att[0]["started_at"], att[3]["started_at"])
    assert span <= sum(ceilings) + 3 * (RETRY_SLACK_S + 0.5)


def test_failing_task_that_recovers_completes_on_a_later_attempt(ctx, daemon, submit, wait_terminal, db):
    daemon()
    job = submit("itasks.basic:fail_then_succeed", "marker_dir=%s" % ctx.marker_dir(), "times=2", max_retries=3)
    row = wait_terminal(job, 30)[job]
    assert row["status"] == "COMPLETED", describe(db, job)
    assert row["result"] == {"runs": 3}
    assert outcomes(db, job) == ["exception", "exception", "completed"]


def test_timeout_kills_the_attempt_and_retries_it(daemon, submit, wait_terminal, db):
    daemon()
    job = submit("itasks.basic:sleep", "seconds=5", timeout=1, max_retries=1)
    row = wait_terminal(job, 30)[job]
    att = db.attempts(job)
    assert row["status"] == "FAILED", describe(db, job)
    assert [a["outcome"] for a in att] == ["timeout", "timeout"], describe(db, job)
    # SIGTERM at the 1 s deadline, SIGKILL 2 s later at the latest.
    assert all(seconds(a["started_at"], a["ended_at"]) < 1 + 2 + SLACK_S for a in att)
    assert "timeout" in row["error"].lower()


def test_high_priority_job_runs_before_earlier_low_priority_job(daemon, submit, wait_status, wait_terminal, db):
    daemon(concurrency=1)
    blocker = submit("itasks.basic:sleep", "seconds=1.5")
    wait_status(blocker, "RUNNING")
    low = submit("itasks.basic:noop", priority="low")
    normal = submit("itasks.basic:noop", priority="normal")
    high = submit("itasks.basic:noop", priority="high")
    rows = wait_terminal([blocker, low, normal, high], 30)
    assert all(r["status"] == "COMPLETED" for r in rows.values()), [describe(db, j) for j in rows]
    assert rows[high]["started_at"] < rows[normal]["started_at"] < rows[low]["started_at"], \
        {j: str(rows[j]["started_at"]) for j in (high, normal, low)}


def test_concurrency_n_runs_n_jobs_at_once(daemon, submit, wait_terminal, db):
    daemon(concurrency=3)
    jobs = [submit("itasks.basic:sleep", "seconds=2") for _ in range(3)]
    rows = wait_terminal(jobs, 30)
    assert all(r["status"] == "COMPLETED" for r in rows.values()), [describe(db, j) for j in jobs]
    att = [db.attempts(j)[0] for j in jobs]
    last_start = max(a["started_at"] for a in att)
    first_end = min(a["ended_at"] for a in att)
    assert last_start < first_end, "the three attempts did not overlap: %s" % [
        (str(a["started_at"]), str(a["ended_at"])) for a in att]
    assert len({a["executor_id"] for a in att}) == 1


def test_idempotency_key_of_completed_job_records_duplicate_without_running(daemon, submit, wait_terminal, db, ctx):
    daemon()
    key = "it-key-" + ctx.prefix
    first = submit("itasks.basic:echo", "n=1", idempotency_key=key)
    assert wait_terminal(first, 20)[first]["status"] == "COMPLETED", describe(db, first)
    second = submit("itasks.basic:echo", "n=1", idempotency_key=key)
    rows = wait_terminal([first, second], 20)
    assert rows[second]["status"] == "COMPLETED", describe(db, second)
    assert rows[second]["is_duplicate"] is True
    assert rows[second]["duplicate_of"] == first
    assert rows[second]["result"] == rows[first]["result"] == {"n": 1}
    assert len(db.attempts(first)) + len(db.attempts(second)) == 1, describe(db, second)


def test_submit_wait_prints_completed_and_result(daemon, cli):
    daemon()
    r = cli("submit", "itasks.basic:echo", "a=1", "b=x", "--task-type", TASK_TYPE, "--wait", timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert "COMPLETED" in lines[1], r.stdout
    assert json.loads(lines[-1]) == {"a": 1, "b": "x"}


def test_submit_wait_of_failing_job_prints_failed_and_exits_1(daemon, cli):
    daemon()
    r = cli("submit", "itasks.basic:fail_always", "--task-type", TASK_TYPE, "--max-retries", "0", "--wait",
            timeout=30)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAILED" in r.stdout


# ---------------------------------------------------------------- cancel

def test_cancel_of_running_job_kills_it_and_fails_it_cancelled(daemon, submit, cli, wait_status, wait_terminal, db):
    daemon()
    job = submit("itasks.basic:sleep", "seconds=30", max_retries=3)
    wait_status(job, "RUNNING")
    t0 = time.monotonic()
    r = cli("cancel", job)
    assert r.returncode == 0, r.stdout + r.stderr
    row = wait_terminal(job, 15)[job]
    # SIGTERM to the process group, SIGKILL at most 2 s later.
    assert time.monotonic() - t0 < 2 + 2 * SLACK_S
    assert row["status"] == "FAILED", describe(db, job)
    assert "cancelled" in row["error"]
    assert outcomes(db, job) == ["cancelled"], describe(db, job)


def test_cancel_whose_publish_was_missed_still_stops_the_job(daemon, submit, wait_status, wait_terminal, db):
    # taskexec cancel sets the flag, then publishes once.  A daemon that was
    # reconnecting to Redis misses the message: the flag alone must do.
    daemon()
    job = submit("itasks.basic:sleep", "seconds=30", max_retries=3)
    wait_status(job, "RUNNING")
    db.query("UPDATE taskexec.jobs SET cancel_requested = true WHERE job_id = %s", (job,))
    t0 = time.monotonic()
    row = wait_terminal(job, 15)[job]
    # within a heartbeat, then SIGTERM and at most 2 s to SIGKILL
    assert time.monotonic() - t0 < HEARTBEAT_S + 2 + 2 * SLACK_S
    assert row["status"] == "FAILED" and "cancelled" in row["error"], describe(db, job)
    assert outcomes(db, job) == ["cancelled"], describe(db, job)


def test_cancel_of_queued_job_fails_it_without_running(daemon, submit, cli, wait_status, wait_terminal, db):
    d = daemon(concurrency=1)
    blocker = submit("itasks.basic:sleep", "seconds=1.5")
    wait_status(blocker, "RUNNING")
    job = submit("itasks.basic:noop")
    r = cli("cancel", job)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = wait_terminal([blocker, job], 20)
    assert rows[job]["status"] == "FAILED" and "cancelled" in rows[job]["error"], describe(db, job)
    assert rows[blocker]["status"] == "COMPLETED"
    # The cancelled entry is still in the queue until the slot frees; the
    # daemon then takes it and drops it unrun.
    d.wait_event("job.skipped", where=lambda e: e.get("job_id") == job)
    assert db.attempts(job) == [], describe(db, job)
    assert db.job(job)["status"] == "FAILED" and db.job(job)["attempts"] == 0, describe(db, job)


# ---------------------------------------------------------------- crashes and shutdown

def test_sigkilled_executor_job_is_rerun_by_another_executor(ctx, daemon, submit, wait_status, wait_terminal, db):
    a = daemon()
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=30")
    wait_status(job, "RUNNING")
    # RUNNING is recorded at the claim, before the interpreter starts: kill
    # only once the task itself has begun its (first, sleeping) run.
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 10, "the first run to start")
    a.kill()
    t0 = time.monotonic()
    b = daemon()
    assert_rerun_elsewhere(db, wait_terminal, job, a, b)
    print("rerun %.1fs after SIGKILL" % (time.monotonic() - t0))


def assert_rerun_elsewhere(db, wait_terminal, job, lost, other):
    """JOB, lost with executor LOST, is rerun by OTHER, completed and flagged."""
    # The heartbeat key lapses after 3 intervals; a live executor sweeps every interval.
    wait_for(lambda: len(db.attempts(job)) >= 2, 3 * HEARTBEAT_S + HEARTBEAT_S + 2 * SLACK_S,
             "another executor to rerun the job of the killed one")
    row = wait_terminal(job, 20)[job]
    att = db.attempts(job)
    assert row["status"] == "COMPLETED", describe(db, job)
    assert row["is_duplicate"] is True
    assert att[0]["outcome"] == "executor_lost" and att[0]["executor_id"] == lost.executor_id, describe(db, job)
    assert att[1]["outcome"] == "completed" and att[1]["executor_id"] == other.executor_id


def test_job_claimed_by_executor_swept_during_an_outage_is_still_recovered(ctx, daemon, rds, submit, wait_status,
                                                                           wait_terminal, db):
    # An executor cut off from Redis longer than its lease is swept (dropped
    # from the executors set).  If it reconnects, claims, and dies before its
    # next heartbeat, its job must still be found by the next sweep.
    a = daemon(env={"TASKEXEC_HEARTBEAT_INTERVAL": "30s"})   # no heartbeat of its own during the test
    execs = ctx.key("executors")
    rds.srem(execs, a.executor_id)                            # what the sweep did while it was away
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=30")
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 10, "the first run to start")
    assert rds.sismember(execs, a.executor_id), "the claim did not put its executor back in %s" % execs
    a.kill()
    rds.delete(ctx.key("heartbeat", a.executor_id))           # its lease lapses
    b = daemon()
    assert_rerun_elsewhere(db, wait_terminal, job, a, b)


def test_every_daemon_fd_is_close_on_exec(ctx, daemon, submit, wait_status):
    # Redis (three connections), PostgreSQL, the HTTP listener, epoll, timers,
    # signals and the running job's pipes and pidfd: none may leak into a child.
    port = spare_port()
    d = daemon(env={"TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % port})
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=30")
    wait_status(job, "RUNNING")
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 10, "the job to start")
    leaks = {}
    fds = os.listdir("/proc/%d/fd" % d.pid)
    for fd in fds:
        try:
            with open("/proc/%d/fdinfo/%s" % (d.pid, fd)) as f:
                flags = int(next(l for l in f if l.startswith("flags:")).split()[1], 8)
            target = os.readlink("/proc/%d/fd/%s" % (d.pid, fd))
        except FileNotFoundError:
            continue
        if int(fd) > 2 and not flags & os.O_CLOEXEC:
            leaks[int(fd)] = target
    assert len(fds) > 8, "expected the daemon's connections and the job's pipes, saw %r" % fds
    assert leaks == {}, "fds without O_CLOEXEC in taskexecd: %r" % leaks


def test_scratch_left_full_is_removed_and_the_daemon_serves_on(ctx, daemon, submit, wait_terminal, db):
    # A job that leaves thousands of files: they are removed (by an rm child,
    # so the event loop does not wait for it) and the next job runs.
    daemon()
    litter = submit("itasks.basic:litter", "files=5000")
    assert wait_terminal(litter, 30)[litter]["status"] == "COMPLETED", describe(db, litter)
    quick = submit("itasks.basic:noop")
    assert wait_terminal(quick, 15)[quick]["status"] == "COMPLETED", describe(db, quick)
    scratch = ctx.dir / "scratch"
    wait_for(lambda: not any(scratch.iterdir()), 20, "the scratch dirs under %s to be removed" % scratch)


def test_sigterm_lets_running_job_finish_and_exits_0(daemon, submit, wait_status, db):
    d = daemon(shutdown_timeout="5s")
    job = submit("itasks.basic:sleep", "seconds=1.5")
    wait_status(job, "RUNNING")
    t0 = time.monotonic()
    rc = d.terminate(timeout=15)
    assert rc == 0, d.tail()
    assert time.monotonic() - t0 < 5 + SLACK_S
    assert db.job(job)["status"] == "COMPLETED", describe(db, job)
    assert outcomes(db, job) == ["completed"]


def test_sigterm_past_shutdown_timeout_requeues_job_for_next_daemon(ctx, daemon, submit, wait_status, wait_terminal,
                                                                     db, rds):
    d = daemon(shutdown_timeout="1s")
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=30", priority="normal")
    wait_status(job, "RUNNING")
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 10, "the first run to start")
    t0 = time.monotonic()
    rc = d.terminate(timeout=20)
    assert rc == 0, d.tail()
    # 1 s drain, then SIGTERM and at most 2 s more before SIGKILL.
    assert time.monotonic() - t0 < 1 + 2 + 3 * SLACK_S
    assert db.job(job)["status"] == "QUEUED", describe(db, job)
    assert outcomes(db, job) == ["shutdown"], describe(db, job)
    assert job in queued_job_ids(rds, ctx.key("queue", "normal"))
    assert not rds.exists(ctx.key("processing", d.executor_id))
    daemon()
    row = wait_terminal(job, 20)[job]
    assert row["status"] == "COMPLETED", describe(db, job)
    assert outcomes(db, job) == ["shutdown", "completed"]


def _run_through_outage(daemon, submit, wait_status, wait_terminal, db, outage):
    d = daemon(concurrency=2)
    before = [submit("itasks.basic:sleep", "seconds=0.5") for _ in range(6)]
    # The outage must hit while jobs run: wait until the first has started
    # (it may already have finished on a fast machine, or be running on a slow one).
    wait_for(lambda: db.attempts(before[0]), 15, "the first job to start")
    outage()
    after = [submit("itasks.basic:sleep", "seconds=0.2") for _ in range(4)]
    rows = wait_terminal(before + after, 45)
    bad = [describe(db, j) for j, r in rows.items() if r["status"] != "COMPLETED"]
    assert not bad, "\n".join(bad)
    assert d.alive(), d.tail()


def test_redis_restart_mid_run_loses_no_job(services, daemon, submit, wait_status, wait_terminal, db):
    _run_through_outage(daemon, submit, wait_status, wait_terminal, db, lambda: services.restart_redis(pause=1.0))


def test_postgres_restart_mid_run_loses_no_job(services, daemon, submit, wait_status, wait_terminal, db):
    _run_through_outage(daemon, submit, wait_status, wait_terminal, db, lambda: services.restart_pg(pause=1.0))


# ---------------------------------------------------------------- rejected payloads

def test_malformed_json_payload_fails_and_daemon_keeps_serving(daemon, push, submit, wait_terminal, db):
    d = daemon()
    payloads = ['{"job_id": "it-broken", "task_type": ', "[1, 2, 3]", b"\xff\xfe not UTF-8"]
    for p in payloads:
        push(p)
    good = submit("itasks.basic:noop")
    ids = [invalid_job_id(p) for p in payloads]
    rows = wait_terminal(ids + [good], 20)
    assert_rejected(db, ids[0], "json")
    for j in ids[1:]:
        assert_rejected(db, j)
        assert rows[j]["error"]
    assert rows[good]["status"] == "COMPLETED", describe(db, good)
    assert d.alive()


def test_payload_missing_or_bad_field_fails_naming_the_field(daemon, push, submit, wait_terminal, db):
    d = daemon()
    cases = []
    for field in ("task_type", "module_path", "method_name"):
        p = job_payload(**{field: None})
        cases.append((p["job_id"], field))
        push(p)
    p = push(job_payload(job_id=None))
    cases.append((invalid_job_id(p), "job_id"))
    p = push(job_payload(job_id="bad id with spaces"))
    cases.append((invalid_job_id(p), "job_id"))
    p = job_payload(task_type="no_such_type")
    cases.append((p["job_id"], "task_type"))
    push(p)
    p = job_payload(parameters=[1, 2])
    cases.append((p["job_id"], "parameters"))
    push(p)
    good = submit("itasks.basic:noop")
    rows = wait_terminal([j for j, _ in cases] + [good], 20)
    for job_id, field in cases:
        assert_rejected(db, job_id, field)
    assert rows[good]["status"] == "COMPLETED", describe(db, good)
    assert d.alive()


def test_forbidden_module_is_refused_and_never_run(ctx, daemon, push, submit, wait_terminal, db):
    d = daemon()
    marker = ctx.marker_dir()
    pwned = os.path.join(marker, "pwned")
    os_system = job_payload(module_path="os", method_name="system", parameters={"command": "touch " + pwned})
    private = job_payload(method_name="_mark_run", parameters={"marker_dir": marker})
    for p in (os_system, private):
        push(p)
    good = submit("itasks.basic:noop")
    rows = wait_terminal([os_system["job_id"], private["job_id"], good], 20)
    assert_rejected(db, os_system["job_id"], "module_path", "os")
    assert_rejected(db, private["job_id"], "method_name")
    assert not os.path.exists(pwned)
    assert os.listdir(marker) == []
    assert rows[good]["status"] == "COMPLETED", describe(db, good)
    assert d.alive()


def test_bad_signature_is_refused_when_signatures_are_required(ctx, cli, daemon, push, submit, wait_terminal, db):
    secret, public = ctx.dir / "job.key", ctx.dir / "job.pub"
    r = cli("keygen", secret, public)
    assert r.returncode == 0, r.stdout + r.stderr
    d = daemon(env={"TASKEXEC_REQUIRE_SIGNATURE": "1", "TASKEXEC_VERIFY_KEYS": str(public)})
    forged = job_payload(signature="A" * 86 + "==")
    unsigned = job_payload()
    push(forged)
    push(unsigned)
    signed = submit("itasks.basic:noop", env={"TASKEXEC_SIGNING_KEY": str(secret)})
    rows = wait_terminal([forged["job_id"], unsigned["job_id"], signed], 20)
    assert_rejected(db, forged["job_id"], "signature invalid")
    assert_rejected(db, unsigned["job_id"], "signature")
    assert rows[signed]["status"] == "COMPLETED", describe(db, signed)
    assert d.alive()


def test_payload_signed_by_taskexec_sign_runs_with_or_without_parameters(ctx, cli, daemon, push, wait_terminal,
                                                                          db):
    # The producer signs the payload exactly as it sends it; the executor
    # must verify that, not a form with defaults filled in.
    secret, public = ctx.dir / "job.key", ctx.dir / "job.pub"
    assert cli("keygen", secret, public).returncode == 0
    daemon(env={"TASKEXEC_REQUIRE_SIGNATURE": "1", "TASKEXEC_VERIFY_KEYS": str(public)})
    ids = []
    for params in ("absent", "null", "given"):
        p = job_payload()
        if params == "absent":
            p.pop("parameters")
        elif params == "null":
            p["parameters"] = None
        r = cli("sign", secret, "-", input=json.dumps(p))
        assert r.returncode == 0, r.stderr
        signed = json.loads(r.stdout)
        assert "signature" in signed and signed.get("parameters", "absent") == p.get("parameters", "absent")
        push(r.stdout.strip())
        ids.append(p["job_id"])
    rows = wait_terminal(ids, 30)
    for job_id in ids:
        assert rows[job_id]["status"] == "COMPLETED", describe(db, job_id)


def test_job_whose_executor_is_lost_three_times_ends_failed(daemon, submit, wait_terminal, db):
    """A poison job that takes its executor down every time must not loop forever."""
    job = submit("itasks.basic:sleep", "seconds=60")
    executor_id = "poison-%s" % job[-8:]
    for n in (1, 2, 3):
        d = daemon(executor_id=executor_id)
        # A restart under the same id puts back what it held at once and reruns it.
        wait_for(lambda: len(db.attempts(job)) >= n and db.job(job)["status"] == "RUNNING", 20,
                 "attempt %d to run" % n)
        d.kill()
    daemon(executor_id=executor_id)
    row = wait_terminal(job, 20)[job]
    assert row["status"] == "FAILED" and row["error"] == "executor lost repeatedly", describe(db, job)
    assert [a["outcome"] for a in db.attempts(job)] == ["executor_lost"] * 3, describe(db, job)
    assert row["is_duplicate"] is True


# ------------------------------------------------ entry points (issue 8 item 9)

def test_an_imported_function_named_as_entry_fails_once_without_running(daemon, push, wait_terminal, db, ctx):
    """tasks.f5portalupdate.main imports os: method_name "os.remove" and a
    module function of that name must not reach os.remove."""
    victim = os.path.join(ctx.marker_dir("victim"), "keep-me")
    with open(victim, "w") as f:
        f.write("x")
    os.chmod(victim, 0o666)
    daemon()
    dotted = push(job_payload("tasks.f5portalupdate.main", "os.remove", {"path": victim}, task_type="etl",
                              max_retries=2))
    imported = push(job_payload("itasks.imports", "remove", {"path": victim}, max_retries=2))
    rows = wait_terminal([json.loads(dotted)["job_id"], json.loads(imported)["job_id"]], 40)
    for job, origin in ((json.loads(dotted)["job_id"], None), (json.loads(imported)["job_id"], "posix")):
        row = rows[job]
        assert row["status"] == "FAILED", describe(db, job)
        assert row["attempts"] == 1 and outcomes(db, job) == ["exception"], describe(db, job)
        assert row["error"].startswith("PermissionError: method_name: "), row["error"]
        assert "only functions and classes the task module defines are entry points" in row["error"], row["error"]
        if origin:
            assert f"(it comes from '{origin}')" in row["error"], row["error"]
    assert os.path.exists(victim), "the job ran os.remove"


# ------------------------------------------ job text on the terminal (issue 8 item 10)

RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\x7f")


def assert_no_raw_controls(what, text):
    found = [c for c in RAW_CONTROLS if c in text]
    assert not found, "%s printed raw control characters %r: %r" % (what, found, text)


def test_status_show_list_and_wait_print_job_text_escaped(daemon, submit, cli, wait_terminal, db):
    daemon()
    job = submit("itasks.forgery:fail_evil", max_retries=0)
    row = wait_terminal(job, 30)[job]
    assert row["status"] == "FAILED" and "\x1b]0;pwned" in row["error"], describe(db, job)

    status = cli("status", job)
    assert status.returncode == 0, status.stderr
    assert_no_raw_controls("status", status.stdout + status.stderr)
    assert status.stdout.count("\n") == 1, "the error's newline split the status line: %r" % status.stdout
    assert "error=ValueError: \\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x0dFAKE\\x7f\\x0aCOMPLETED" in status.stdout, \
        status.stdout

    show = cli("show", job)
    assert show.returncode == 0, show.stderr
    assert_no_raw_controls("show", show.stdout + show.stderr)
    assert "  ValueError: \\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x0dFAKE\\x7f\\x0aCOMPLETED\n" in show.stdout, show.stdout
    show = cli("show", job, "--json")
    assert show.returncode == 0, show.stderr
    assert_no_raw_controls("show --json", show.stdout + show.stderr)
    shown = json.loads(show.stdout)    # still JSON, with the same text
    assert shown["error"] == row["error"], shown["error"]
    assert "stdout " in shown["attempts"][0]["stdout_tail"] and "\x9b31m" in shown["attempts"][0]["stdout_tail"]

    listed = cli("list", "--limit", "5")
    assert listed.returncode == 0, listed.stderr
    assert_no_raw_controls("list", listed.stdout + listed.stderr)
    assert "\\x1b]0;pwned" in listed.stdout, listed.stdout

    waited = cli("submit", "itasks.forgery:fail_evil", "--task-type", TASK_TYPE, "--max-retries", "0", "--wait")
    assert waited.returncode == 1, waited.stderr
    assert_no_raw_controls("submit --wait", waited.stdout + waited.stderr)
    assert waited.stdout.splitlines()[1:] == ["FAILED", "error: ValueError: \\x1b]0;pwned\\x07\\x1b[2J\\x9b31m"
                                              "\\x0dFAKE\\x7f\\x0aCOMPLETED"], waited.stdout

    done = cli("submit", "itasks.forgery:return_evil", "--task-type", TASK_TYPE, "--wait")
    assert done.returncode == 0, done.stderr
    assert_no_raw_controls("submit --wait", done.stdout + done.stderr)
    assert done.stdout.splitlines()[1] == "COMPLETED", done.stdout
    assert json.loads(done.stdout.splitlines()[2]) == {"text": "\x1b]0;pwned\x07\x1b[2J\x9b31m\rFAKE\x7f"}


def _descendants(root):
    """{pid: cmdline} of every process below root, read from the host's /proc."""
    parent = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    parent[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    found, frontier = {}, {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier and p not in found}
        for p in frontier:
            try:
                with open("/proc/%d/cmdline" % p, "rb") as f:
                    found[p] = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                found[p] = ""
    return found


def test_attempt_row_holds_the_interpreters_host_pid_and_the_executors_pid(daemon, submit, wait_terminal, db):
    # taskexec-protocol(7): attempts.pid is the interpreter's pid (as the
    # executor's host sees it: in an isolation domain the task has a pid
    # namespace of its own), executor_pid the daemon's.
    d = daemon()
    job = submit("itasks.basic:sleep", "seconds=3")
    seen = {}

    def interpreter_running():
        seen.update({p: c for p, c in _descendants(d.pid).items() if "taskexec_shim" in c})
        return seen
    wait_for(interpreter_running, 15, "the job's interpreter under taskexecd %d" % d.pid)
    assert wait_terminal(job, 30)[job]["status"] == "COMPLETED", describe(db, job)
    (att,) = db.attempts(job)
    assert att["executor_pid"] == d.pid, att
    assert att["pid"] != d.pid and att["pid"] in seen, (att["pid"], seen)
    assert "python3" in seen[att["pid"]], seen
