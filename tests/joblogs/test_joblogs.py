# SPDX-License-Identifier: ISC
"""Per-job logs and progress, as an operator and a producer see them:
`taskexec logs` (text, --json, --attempt, --follow), the bound on what is
stored per attempt, and taskexec_task.progress() as status, show, list and
Job.progress report it.  Real Redis, PostgreSQL and taskexecd."""
import json
import os
import re
import subprocess
import time

import pytest
from ithelpers import wait_for
from testlib import TASKEXEC

STORED_CAP = 256 * 1024
TS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def logs(cli, *args):
    r = cli("logs", *args)
    assert r.returncode == 0, "taskexec logs %s -> %d\n%s" % (" ".join(args), r.returncode, r.stderr)
    return r.stdout


def test_logs_come_back_in_order_with_streams_and_levels(cli, daemon, submit, wait_terminal):
    daemon()
    job = submit("itasks.joblogs:chatter")
    assert wait_terminal(job)[job]["status"] == "COMPLETED"

    out = logs(cli, job)
    rows = [l for l in out.splitlines() if not l.startswith("    ")]
    assert [re.sub("^%s " % TS, "", l) for l in rows] == [
        "1 stdout out one",
        "1 log    INFO itasks.joblogs: info one",
        "1 stderr err one",
        "1 log    WARNING itasks.joblogs: warn one",
        "1 log    ERROR itasks.joblogs: error with trace",
        "1 stdout out two",
    ], out
    # The logged exception's trace follows its record, indented.
    assert "    KeyError: 'inner'" in out.splitlines()

    recs = [json.loads(l) for l in logs(cli, job, "--json").splitlines()]
    assert [(r["stream"], r["level"], r["line"].split("\n")[0]) for r in recs] == [
        ("stdout", None, "out one"), ("log", "INFO", "info one"), ("stderr", None, "err one"),
        ("log", "WARNING", "warn one"), ("log", "ERROR", "error with trace"), ("stdout", None, "out two")]
    assert [r["seq"] for r in recs] == list(range(6))
    assert all(r["attempt"] == 1 and re.fullmatch(TS, r["ts"]) for r in recs)
    assert recs[1]["logger"] == "itasks.joblogs" and recs[0]["logger"] is None
    assert "KeyError: 'inner'" in recs[4]["line"]


def test_a_job_printing_past_the_cap_stores_the_cap_and_counts_the_rest(cli, daemon, submit, wait_terminal, db):
    daemon()
    lines, width = 3000, 200       # 600 000 bytes with newlines; the ad_hoc policy's output_bytes is 4M
    job = submit("itasks.joblogs:flood", "lines=%d" % lines, "width=%d" % width)
    assert wait_terminal(job)[job]["status"] == "COMPLETED"

    out = logs(cli, job, "--json").splitlines()
    recs = [json.loads(l) for l in out]
    stored = [r for r in recs if "line" in r]
    note = [r for r in recs if "omitted_lines" in r]
    stored_bytes = sum(len(r["line"]) for r in stored)
    assert stored_bytes <= STORED_CAP and stored_bytes > STORED_CAP - width
    # A prefix of what the task wrote, and the rest counted.
    assert [r["line"][:6] for r in stored] == ["%06d" % i for i in range(len(stored))]
    assert note == [{"attempt": 1, "omitted_lines": lines - len(stored),
                     "omitted_bytes": (lines - len(stored)) * width}]
    text = logs(cli, job)
    assert text.splitlines()[-1] == (
        "[attempt 1: %d more lines (%d bytes) left out, over the 256 KiB stored per attempt or the policy's "
        "output_bytes]" % (lines - len(stored), (lines - len(stored)) * width))


def test_logs_of_one_attempt_of_a_retried_job(cli, daemon, submit, wait_terminal):
    daemon()
    job = submit("itasks.joblogs:flaky", max_retries=2)
    row = wait_terminal(job)[job]
    assert row["status"] == "COMPLETED" and row["attempts"] == 2

    first = logs(cli, job, "--attempt", "1")
    assert [re.sub("^%s " % TS, "", l) for l in first.splitlines()] == ["1 stdout this is attempt 1"]
    second = [json.loads(l) for l in logs(cli, job, "--attempt", "2", "--json").splitlines()]
    assert [(r["attempt"], r["line"]) for r in second] == [(2, "this is attempt 2")]
    both = [re.sub("^%s " % TS, "", l) for l in logs(cli, job).splitlines()]
    assert both == ["1 stdout this is attempt 1", "2 stdout this is attempt 2"]
    missing = cli("logs", job, "--attempt", "3")
    assert missing.returncode == 1 and "has no attempt 3" in missing.stderr


def test_follow_on_a_running_job_returns_when_it_ends(ctx, daemon, submit, wait_status, db):
    daemon()
    job = submit("itasks.joblogs:ticking", "count=6", "every=0.5")
    wait_status(job, "RUNNING")
    p = subprocess.Popen([str(TASKEXEC), "logs", job, "--follow"], env=ctx.env, cwd=str(ctx.dir),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert p.poll() is None, "logs --follow returned while the job runs: %r" % (p.communicate(),)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    assert db.job(job)["status"] == "COMPLETED"
    assert [re.sub("^%s " % TS, "", l) for l in out.splitlines()] == (
        ["1 stdout tick %d" % i for i in range(6)] + ["1 stdout last tick"])


def test_follow_of_a_finished_job_prints_and_returns(cli, daemon, submit, wait_terminal):
    daemon()
    job = submit("itasks.joblogs:flaky", max_retries=0)
    assert wait_terminal(job)[job]["status"] == "FAILED"
    out = logs(cli, job, "--follow")
    assert [re.sub("^%s " % TS, "", l) for l in out.splitlines()] == ["1 stdout this is attempt 1"]


def test_progress_is_seen_while_the_job_runs_and_after(cli, ctx, daemon, submit, wait_terminal, client):
    daemon()
    marker = ctx.marker_dir("progress")
    job = submit("itasks.joblogs:stepwise", "marker_dir=%s" % marker)
    j = client.job(job)

    p = wait_for(lambda: j.progress, 15, "the job's first progress")
    assert (p.fraction, p.message, p.attempt) == (0.25, "quarter", 1)
    assert j.status() == "RUNNING"
    st = cli("status", job)
    assert st.returncode == 0 and ' RUNNING attempts=1 progress=25% "quarter"' in st.stdout, st.stdout
    sj = json.loads(cli("status", job, "--json").stdout)
    assert sj["progress"] == 0.25 and sj["progress_msg"] == "quarter"
    show = cli("show", job).stdout
    assert re.search(r"^progress\s+25%% quarter  \(attempt 1, at %s\)$" % TS, show, re.M), show
    ls = cli("list", "--limit", "50").stdout.splitlines()
    assert ls[0].split()[7] == "PROGRESS"
    assert [l.split()[7] for l in ls[1:] if l.startswith(job)] == ["25%"]

    open(os.path.join(marker, "go"), "w").close()
    assert wait_terminal(job)[job]["status"] == "COMPLETED"
    # The last report came within the task's throttle of the one before: sent anyway.
    p = j.progress
    assert (p.fraction, p.message) == (1.0, "done")
    assert ' COMPLETED attempts=1 progress=100% "done"' in cli("status", job).stdout


@pytest.mark.parametrize("value", [1.5, -0.1, "half"])
def test_an_invalid_fraction_raises_value_error_in_the_task(daemon, submit, wait_terminal, client, value):
    daemon()
    job = submit("itasks.joblogs:bad_progress", "value=%s" % json.dumps(value), max_retries=0)
    row = wait_terminal(job)[job]
    assert row["status"] == "FAILED"
    assert row["error"].startswith("ValueError: progress: fraction must be"), row["error"]
    assert client.job(job).progress is None
