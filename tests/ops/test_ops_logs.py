# SPDX-License-Identifier: ISC
"""taskexecd's log (FR-5): one daemon run — start, the seed job, a job that
prints and logs, a failing job, several heartbeats, SIGTERM — read back line
by line.  The daemon connects to PostgreSQL with a password, which must never
show up in its output.  It runs at debug level: heartbeat lines are debug."""
import json
import re
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from opshelpers import parse_prometheus, sample, wait_for

REPO = Path(__file__).resolve().parents[2]
TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
LEVELS = {"debug", "info", "warn", "error"}


class Run:
    pass


@pytest.fixture(scope="module")
def run(make_ops, secret_role):
    o = make_ops("logs")
    try:
        o.env["TASKEXEC_DB_URL"] = secret_role.db_url
        r = Run()
        r.secret = secret_role.password
        r.tag = "t-%s" % uuid.uuid4().hex[:12]
        r.d = d = o.daemon(env={"TASKEXEC_LOG_LEVEL": "debug"})
        r.seed = o.submit("tasks.f5portalupdate.main:run", "customer_id=42", task_type="etl")
        r.chatter = o.submit("opstasks.talk:chatter", "tag=%s" % r.tag)
        r.fail = o.submit("opstasks.talk:fail", "why=%s" % r.tag, extra=["--max-retries", "0"], expect="FAILED")
        wait_for(lambda: len(d.events("heartbeat")) >= 4, 10, "four heartbeats")
        r.exit_code = d.terminate()
        r.raw = d.raw_lines()
        r.stderr = d.stderr()
        r.lines = [json.loads(line) for line in r.raw if _is_json_object(line)]
        r.check = o.check()
        r.ops = o
        yield r
    finally:
        problems = o.close()
    assert not problems, problems


def _is_json_object(line):
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _ts(doc):
    return datetime.strptime(doc["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")


def _job_lines(run, job_id, event=None):
    return [x for x in run.lines if x.get("job_id") == job_id and (event is None or x["event"] == event)]


def test_every_stdout_line_is_a_json_object_with_ts_level_event_executor_id(run):
    assert run.exit_code == 0
    assert len(run.raw) > 10, run.raw
    for n, line in enumerate(run.raw, 1):
        assert _is_json_object(line), "stdout line %d is not a JSON object: %r" % (n, line)
        doc = json.loads(line)
        for key in ("ts", "level", "event", "executor_id"):
            assert key in doc, "line %d lacks %s: %s" % (n, key, line)
        assert TS_RE.match(doc["ts"]), "line %d: ts %r is not ISO 8601 UTC with ms" % (n, doc["ts"])
        assert doc["level"] in LEVELS, "line %d: level %r" % (n, doc["level"])
        assert isinstance(doc["event"], str) and re.fullmatch(r"[a-z_]+(\.[a-z_]+)*", doc["event"]), line
        assert doc["executor_id"] == run.d.executor_id, line
    stamps = [_ts(x) for x in run.lines]
    assert stamps == sorted(stamps), "timestamps go backwards"
    assert run.stderr == "", "taskexecd wrote to stderr: %r" % run.stderr


def test_start_and_drain_are_logged_first_and_last(run):
    events = [x["event"] for x in run.lines]
    assert "executor.started" in events
    assert events[-1] == "shutdown.finished", events[-5:]
    assert "shutdown.started" in events[-4:], events[-5:]
    started = next(x for x in run.lines if x["event"] == "shutdown.started")
    assert started["signal"] == "TERM", started


def test_job_lines_carry_job_id_attempt_and_task_type(run):
    for job_id, task_type in ((run.seed, "etl"), (run.chatter, "ad_hoc"), (run.fail, "ad_hoc")):
        lines = _job_lines(run, job_id)
        events = [x["event"] for x in lines]
        assert "job.started" in events, (job_id, events)
        for x in lines:
            assert x.get("attempt") == 1 and x.get("task_type") == task_type, x
    assert _job_lines(run, run.seed, "job.completed")[0]["outcome"] == "completed"
    failed = _job_lines(run, run.fail, "job.failed")
    assert failed and failed[0]["outcome"] == "exception" and run.tag in failed[0]["error"], failed


def test_seed_task_logging_records_arrive_as_job_log(run):
    logs = _job_lines(run, run.seed, "job.log")
    assert logs, "no job.log lines for the seed job"
    assert any(x.get("logger") == "tasks.f5portalupdate.main" and "customer 42:" in x.get("msg", "")
               and x.get("task_level") == "INFO" for x in logs), logs
    assert not _job_lines(run, run.seed, "job.output"), "the seed task prints nothing, yet job.output lines appeared"


def test_task_stdout_stderr_and_logging_arrive_as_job_output_and_job_log(run):
    out = _job_lines(run, run.chatter, "job.output")
    assert {"stream": "stdout", "line": "stdout says %s" % run.tag} in [
        {"stream": x.get("stream"), "line": x.get("line")} for x in out], out
    assert {"stream": "stderr", "line": "stderr says %s" % run.tag} in [
        {"stream": x.get("stream"), "line": x.get("line")} for x in out], out
    logs = _job_lines(run, run.chatter, "job.log")
    assert any(x.get("msg") == "logging says %s" % run.tag and x.get("task_level") == "WARNING"
               and x.get("logger") == "opstasks.talk" for x in logs), logs
    fail_logs = _job_lines(run, run.fail, "job.log")
    assert any(x.get("task_level") == "ERROR" and run.tag in x.get("msg", "") for x in fail_logs), fail_logs


def test_heartbeat_logged_every_interval(run):
    beats = [x for x in run.lines if x["event"] == "heartbeat"]
    assert len(beats) >= 4, beats
    gaps = [(_ts(b) - _ts(a)).total_seconds() for a, b in zip(beats, beats[1:])]
    assert all(0.8 <= g <= 1.6 for g in gaps), "heartbeat gaps with a 1s interval: %s" % gaps
    # From the first heartbeat to the drain, no interval went without one.
    end = _ts(next(x for x in run.lines if x["event"] == "shutdown.started"))
    assert (end - _ts(beats[-1])).total_seconds() <= 1.6


def test_the_first_heartbeat_reports_the_connections_made_at_start(run):
    # The schema was migrated before the loop started: PostgreSQL answered,
    # and the first heartbeat must not say it is down.
    first = next(x for x in run.lines if x["event"] == "heartbeat")
    assert first["level"] == "debug", first
    assert first["postgres"] is True and first["redis"] is True, first


def test_heartbeats_stay_out_of_the_log_at_info(ops):
    d = ops.daemon()
    d.wait_event("executor.started")
    t0 = time.time()

    def beats_seen():
        m = parse_prometheus(d.get("/metrics").body)
        return sample(m, "taskexec_last_heartbeat_timestamp_seconds") >= t0 + 2
    wait_for(beats_seen, 10, "three heartbeats after start")
    assert d.events("heartbeat") == [], d.tail()


def test_db_password_never_appears_in_the_log_or_check_output(run):
    assert run.secret in run.ops.env["TASKEXEC_DB_URL"]
    # The task printed its whole environment: the password did not reach the job either.
    assert any(x.get("line", "").startswith("env ") for x in _job_lines(run, run.chatter, "job.output"))
    for n, line in enumerate(run.raw, 1):
        assert run.secret not in line, "stdout line %d shows the DB password: %s" % (n, line)
    assert run.secret not in run.stderr
    c = run.check
    assert c.returncode == 0, c.stderr
    assert run.secret not in c.stdout and run.secret not in c.stderr, c.stdout
    assert "TASKEXEC_DB_URL=postgresql://opsuser:***@127.0.0.1:" in c.stdout, c.stdout


def test_a_clean_run_logs_no_warnings_or_errors(run):
    bad = [x for x in run.lines if x["level"] in ("warn", "error") and x.get("job_id") != run.fail]
    assert not bad, bad


def test_every_logged_event_name_is_documented_in_taskexecd_8(run):
    man = (REPO / "man" / "taskexecd.8").read_text()
    events = sorted({x["event"] for x in run.lines} | {"policy.reloaded", "policy.reload_refused"})
    missing = [e for e in events if e not in man]
    assert not missing, "event names missing from man/taskexecd.8: %s" % missing
