# SPDX-License-Identifier: ISC
"""Issue "warm start": attempts forked from one warm server share nothing
with each other, and the server's faults are never the job's.  The sandbox
suite (tests/sandbox) runs whole in both start modes; this is what only a
daemon, whose servers serve many attempts, can show."""
import os
import signal

import pytest

from ithelpers import describe, ini_set, wait_for
from testlib import REPO

WARM_TYPE = "warm_it"


@pytest.fixture
def warm_type(policy_dir):
    """A task type like ad_hoc whose attempts are forks of a warm server."""
    text = (policy_dir / "ad_hoc.policy").read_text()
    text = ini_set(text, "start", "mode", "warm")
    (policy_dir / ("%s.policy" % WARM_TYPE)).write_text(text)
    return WARM_TYPE


def servers(daemon_pid):
    """The daemon's children: in warm mode, its servers (pid 1 of their namespaces)."""
    with open("/proc/%d/task/%d/children" % (daemon_pid, daemon_pid)) as f:
        return [int(p) for p in f.read().split()]


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def result(db, job_id):
    row = db.job(job_id)
    assert row["status"] == "COMPLETED", describe(db, job_id)
    return row["result"]


def test_an_attempt_finds_nothing_of_the_one_before_on_the_same_server(daemon, submit, wait_terminal, db,
                                                                      warm_type):
    d = daemon(concurrency=1)
    first = submit("itasks.warm:litter", "token=t0k3n", task_type=warm_type)
    wait_terminal([first], 30)
    a = result(db, first)
    server = servers(d.pid)
    assert len(server) == 1, server
    second = submit("itasks.warm:look", task_type=warm_type)
    wait_terminal([second], 30)
    b = result(db, second)
    assert servers(d.pid) == server, "the second attempt did not run on the same server"
    # forks of one server: pid 1 is the server, each attempt a new process
    assert a["ppid"] == b["ppid"] == 1 and a["pid"] != b["pid"], (a, b)
    assert b["strings"] == [], b
    assert b["env"] is None and "left-behind" not in b["tmp"] and "dir" not in b["tmp"], b
    assert b["fds"] == [], b
    assert b["json_ok"] and not b["modules"] and b["threads"] == 1, b
    assert a["random"] != b["random"]


def test_a_server_killed_under_its_attempt_costs_the_job_nothing(daemon, submit, wait_terminal, db, warm_type):
    d = daemon(concurrency=1)
    job = submit("itasks.warm:sleep", "seconds=2", task_type=warm_type)
    # Mid-flight: the attempt runs task code (a server lost before that is
    # replaced before the attempt begins, and the job never sees it).
    d.wait_event("job.started", 20)
    (server, attempt), = [(s, c) for s in servers(d.pid) for c in servers(s)]
    os.kill(server, signal.SIGKILL)
    wait_for(lambda: not os.path.exists("/proc/%d/stat" % attempt) or _state(attempt) == "Z", 10,
             "the attempt to die with its server's pid namespace")
    rows = wait_terminal([job], 40)
    assert rows[job]["status"] == "COMPLETED", describe(db, job)
    attempts = db.attempts(job)
    assert [a["outcome"] for a in attempts] == ["executor_fault", "completed"], describe(db, job)
    assert "warm server died" in attempts[0]["error_message"], describe(db, job)
    assert server not in servers(d.pid)
    assert d.alive()


def test_a_violation_in_a_warm_attempt_is_named_and_its_server_serves_the_next(daemon, submit, wait_terminal, db,
                                                                               warm_type):
    d = daemon(concurrency=1)
    bad = submit("itasks.warm:signal_the_server", task_type=warm_type)
    wait_terminal([bad], 30)
    row = db.job(bad)
    assert row["status"] == "FAILED", describe(db, bad)
    attempt = db.attempts(bad)[-1]
    assert attempt["outcome"] == "violation" and attempt["error_message"] == "sandbox violation: kill", \
        describe(db, bad)
    server = servers(d.pid)
    good = submit("itasks.warm:look", task_type=warm_type)
    wait_terminal([good], 30)
    assert result(db, good)["json_ok"]
    assert servers(d.pid) == server


def test_a_server_is_replaced_after_warm_forks_attempts_and_on_sighup(daemon, submit, wait_terminal, db, policy_dir):
    text = ini_set((policy_dir / "ad_hoc.policy").read_text(), "start", "mode", "warm")
    (policy_dir / "warm_forks2.policy").write_text(ini_set(text, "start", "warm_forks", "2"))
    d = daemon(concurrency=1)
    seen = []
    for _ in range(3):
        job = submit("itasks.warm:look", task_type="warm_forks2")
        wait_terminal([job], 30)
        result(db, job)
        seen.append(servers(d.pid))
    # the first server is stopped as its second attempt ends; the third runs on a new one
    assert len(seen[0]) == 1 and seen[1] == [] and len(seen[2]) == 1 and seen[2] != seen[0], seen
    d.signal(signal.SIGHUP)
    d.wait_event("policy.reloaded", 10)
    assert servers(d.pid) == [], "an idle server outlived the policy reload"
    job = submit("itasks.warm:look", task_type="warm_forks2")
    wait_terminal([job], 30)
    assert result(db, job)["json_ok"] and servers(d.pid) not in ([], seen[2])
