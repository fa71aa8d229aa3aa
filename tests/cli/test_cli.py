# SPDX-License-Identifier: ISC
"""taskexec(1) as a person uses it: help for every command, JSON for every
read command, a readable show, a list with entries and zoned times, bounded
waits that say why nothing happens, and prune."""
import json
import re
import time
from datetime import datetime, timedelta, timezone

import pytest

COMMANDS = ["run", "submit", "status", "show", "list", "logs", "retry", "cancel", "queues", "prune", "policy",
            "keygen", "sign", "help"]


# --------------------------------------------------------------------------
# help


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("form", ["CMD --help", "CMD -h", "help CMD"])
def test_every_command_prints_its_usage_for_help(bare, command, form):
    args = [command if w == "CMD" else w for w in form.split()]
    r = bare(*args)
    assert r.returncode == 0, "taskexec %s -> %d\n%s" % (" ".join(args), r.returncode, r.stderr)
    assert r.stdout.startswith("usage: taskexec %s" % command), r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("args", [["run", "--timeout", "--help"], ["status", "--help"],
                                  ["sign", "--help"], ["sign", "key", "--help"], ["list", "--limit", "-h"],
                                  ["policy", "show", "--help"]])
def test_help_is_never_taken_as_a_value(bare, args):
    r = bare(*args, timeout=5)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: taskexec %s" % args[0])


def test_help_of_an_unknown_command_is_a_usage_error(bare):
    r = bare("help", "frobnicate")
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr


def test_top_level_usage_lists_prune_and_help(bare):
    r = bare("--help")
    assert r.returncode == 0
    assert "prune --older-than" in r.stdout and "help COMMAND" in r.stdout


# --------------------------------------------------------------------------
# --json


def test_json_of_every_read_command_parses(cli, row, task_type):
    job = row("FAILED", error="boom", traceback="Traceback (most recent call last):\nValueError: boom",
              attempts=[{"outcome": "exception", "exit_code": 1, "error_type": "ValueError",
                         "error_message": "boom"}])
    st = json.loads(cli("status", job, "--json").stdout)
    assert st["job_id"] == job and st["status"] == "FAILED" and st["attempts"] == 1 and st["error"] == "boom"
    sh = json.loads(cli("show", "--json", job).stdout)
    assert sh["job_id"] == job and sh["attempts"][0]["outcome"] == "exception"
    assert "claim_token" not in sh and "payload" not in sh
    ls = json.loads(cli("list", "--json", "--task-type", task_type).stdout)
    assert [j["job_id"] for j in ls] == [job]
    assert ls[0]["entry"] == "itasks.basic:noop" and ls[0]["created_at"].endswith("Z")
    qs = json.loads(cli("queues", "--json").stdout)
    assert set(qs["queues"]) == {"high", "normal", "low"} and qs["delayed"] == 0 and qs["executors"] == []


# --------------------------------------------------------------------------
# show


def test_show_of_a_failed_job_has_a_summary_an_attempts_table_and_the_traceback_as_lines(
        daemon, cli, submit, wait_terminal):
    daemon()
    job = submit("itasks.basic:fail_always", max_retries=1)
    wait_terminal(job)
    r = cli("show", job)
    assert r.returncode == 0, r.stderr
    lines = [l.strip() for l in r.stdout.splitlines()]
    assert re.search(r"^entry\s+itasks\.basic:fail_always$", r.stdout, re.M)
    assert re.search(r"^status\s+FAILED$", r.stdout, re.M)
    assert re.search(r"^created\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", r.stdout, re.M)
    assert re.search(r"^finished\s+\S+Z\s+\(ran \S+\)$", r.stdout, re.M), r.stdout
    header = next(l for l in lines if l.startswith("N "))
    assert header.split()[:6] == ["N", "EXECUTOR", "OUTCOME", "DURATION", "EXIT/SIGNAL", "ERROR"]
    rows = [l.split() for l in lines if re.match(r"^[12] ", l)]
    # The shim reports an exception and exits 0: the table shows what was recorded.
    assert [(x[0], x[2], x[4]) for x in rows] == [("1", "exception", "exit=0"), ("2", "exception", "exit=0")], r.stdout
    assert rows[0][5:] == ["ValueError:", "boom"]
    assert "Traceback (most recent call last):" in lines
    assert "ValueError: boom" in lines


def test_show_escapes_control_characters_of_job_text(cli, row):
    job = row("FAILED", error="red\x1b[31m alert\x07\nstatus       COMPLETED", traceback="line one\x1b]0;pwned\x07\nline two\x9b",
              attempts=[{"outcome": "exception", "error_message": "bad\x1b[2J", "executor_id": "ex\x1bc"}])
    r = cli("show", job)
    assert r.returncode == 0, r.stderr
    for c in ("\x1b", "\x07", "\x9b"):
        assert c not in r.stdout
    assert "red\\x1b[31m alert\\x07\\x0astatus       COMPLETED" in r.stdout
    assert not re.search(r"^\s*status\s+COMPLETED", r.stdout, re.M), "the error forged a line: " + r.stdout
    assert "line one\\x1b]0;pwned\\x07" in [l.strip() for l in r.stdout.splitlines()]
    assert "ex\\x1bc" in r.stdout and "bad\\x1b[2J" in r.stdout


# --------------------------------------------------------------------------
# list


def test_list_shows_entry_duration_and_utc_times(cli, row, task_type):
    row("COMPLETED", module_path="itasks.shapes", class_name="Square", method_name="area")
    r = cli("list", "--task-type", task_type)
    assert r.returncode == 0, r.stderr
    head, line = r.stdout.splitlines()
    assert head.split() == ["JOB_ID", "STATUS", "TASK_TYPE", "ENTRY", "ATTEMPTS", "CREATED", "DURATION", "PROGRESS",
                            "ERROR"]
    f = line.split()
    assert f[3] == "itasks.shapes:Square.area"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", f[5])
    assert f[6] == "1.5s"


def test_list_since_and_status_in_any_case(cli, row, task_type):
    old = row("FAILED", age="3 days", error="old")
    new_failed = row("FAILED", error="new")
    done = row("COMPLETED")

    def ids(*args):
        r = cli("list", "--task-type", task_type, *args)
        assert r.returncode == 0, r.stderr
        return {l.split()[0] for l in r.stdout.splitlines()[1:]}

    assert ids("--status", "failed") == {old, new_failed}
    assert ids("--status", "Completed") == {done}
    assert ids("--since", "1h") == {new_failed, done}
    stamp = (datetime.now(timezone.utc) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert ids("--since", stamp, "--status", "FAILED") == {old, new_failed}
    bad = cli("list", "--since", "yesterday")
    assert bad.returncode == 2 and "--since" in bad.stderr
    bad = cli("list", "--status", "done")
    assert bad.returncode == 2 and "--status" in bad.stderr


# --------------------------------------------------------------------------
# waiting


def test_submit_wait_with_no_executor_warns_and_gives_up_at_its_timeout(cli, schema):
    t0 = time.monotonic()
    r = cli("submit", "itasks.basic:noop", "--task-type", "ad_hoc", "--wait", "--wait-timeout", "1s", timeout=20)
    elapsed = time.monotonic() - t0
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert elapsed < 3, elapsed
    assert "no executor is alive" in r.stderr
    assert "gave up waiting after 1s" in r.stderr
    assert re.fullmatch(r"[0-9a-f-]{36}\n", r.stdout), r.stdout


def test_submit_wait_with_a_live_executor_does_not_warn(daemon, cli):
    daemon()
    r = cli("submit", "itasks.basic:noop", "--task-type", "ad_hoc", "--wait", "--wait-timeout", "30s")
    assert r.returncode == 0, r.stderr
    assert "no executor" not in r.stderr
    assert r.stdout.splitlines()[1] == "COMPLETED"


# --------------------------------------------------------------------------
# prune


def test_prune_removes_old_terminal_jobs_and_stopped_executors_only(cli, row, db, task_type):
    att = [{"outcome": "exception"}, {"outcome": "completed"}]
    old_done = row("COMPLETED", age="10 days", attempts=att)
    old_failed = row("FAILED", age="10 days", attempts=att[:1])
    old_queued = row("QUEUED", age="10 days")
    old_running = row("RUNNING", age="10 days")
    new_done = row("COMPLETED", age="1 day", attempts=att)
    tag = task_type
    for name, state, age in (("stopped-old", "stopped", "10 days"), ("running-old", "running", "10 days"),
                             ("stopped-new", "stopped", "1 day")):
        db.query("INSERT INTO taskexec.executors (executor_id, state, started_at, last_heartbeat) "
                 "VALUES (%s, %s, now() - %s::interval, now() - %s::interval)",
                 ("%s-%s" % (tag, name), state, age, age))

    def jobs():
        return {r["job_id"] for r in db.query("SELECT job_id FROM taskexec.jobs WHERE task_type = %s", (task_type,))}

    def executors():
        return {r["executor_id"][len(tag) + 1:] for r in
                db.query("SELECT executor_id FROM taskexec.executors WHERE executor_id LIKE %s", (tag + "-%",))}

    everything = {old_done, old_failed, old_queued, old_running, new_done}
    r = cli("prune", "--older-than", "7d", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would delete 2 jobs (3 attempts) and 1 stopped executor" in r.stdout, r.stdout
    assert jobs() == everything

    r = cli("prune", "--older-than", "7d")
    assert r.returncode == 0, r.stderr
    assert "deleted 2 jobs (3 attempts) and 1 stopped executor" in r.stdout, r.stdout
    assert jobs() == {old_queued, old_running, new_done}
    assert db.query("SELECT count(*) AS n FROM taskexec.attempts WHERE job_id = ANY(%s)",
                    ([old_done, old_failed],))[0]["n"] == 0
    assert len(db.attempts(new_done)) == 2
    assert executors() == {"running-old", "stopped-new"}


def test_prune_needs_a_duration(cli):
    r = cli("prune")
    assert r.returncode == 2 and "--older-than" in r.stderr
    r = cli("prune", "--older-than", "soon")
    assert r.returncode == 2 and "--older-than" in r.stderr
