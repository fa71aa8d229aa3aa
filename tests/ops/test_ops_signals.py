# SPDX-License-Identifier: ISC
"""SIGHUP reloads the policies (a broken set is refused, the old one kept); SIGTERM drains and exits 0."""
import json
import signal


def _set_mark(policy_dir, value, broken=False):
    """Give ad_hoc.policy an [env] OPS_MARK (which opstasks.talk:mark prints); optionally an unknown key."""
    p = policy_dir / "ad_hoc.policy"
    text = p.read_text().split("\n[env]\n")[0].rstrip("\n")
    if broken:
        text = text.replace("[job]\n", "[job]\nno_such_key = 1\n", 1)
    p.write_text(text + "\n\n[env]\nOPS_MARK = %s\n" % value)
    return p


def _mark_of(ops, d, job_id):
    lines = [x for x in d.events("job.output") if x.get("job_id") == job_id]
    marks = [x["line"].split("=", 1)[1] for x in lines if x.get("line", "").startswith("OPS_MARK=")]
    assert len(marks) == 1, (lines, d.tail())
    return marks[0]


def test_sighup_with_a_valid_changed_policy_applies_it(ops):
    pol = ops.policy_dir()
    _set_mark(pol, "v1")
    d = ops.daemon()
    assert _mark_of(ops, d, ops.submit("opstasks.talk:mark")) == "v1"
    _set_mark(pol, "v2")
    d.signal(signal.SIGHUP)
    ev = d.wait_event("policy.reloaded")
    assert ev["level"] == "info" and ev.get("policies") == len(list(pol.glob("*.policy"))), ev
    assert _mark_of(ops, d, ops.submit("opstasks.talk:mark")) == "v2"
    assert d.alive()


def test_sighup_with_a_broken_policy_keeps_the_old_one(ops):
    pol = ops.policy_dir()
    _set_mark(pol, "v1")
    d = ops.daemon()
    p = _set_mark(pol, "v3", broken=True)
    line = p.read_text().splitlines().index("no_such_key = 1") + 1
    d.signal(signal.SIGHUP)
    ev = d.wait_event("policy.reload_refused")
    assert ev["level"] == "error", ev
    assert "%s:%d:" % (p, line) in ev["errors"] and "no_such_key" in ev["errors"], ev
    assert not d.events("policy.reloaded")
    # The daemon is still up and healthy, and a job of that type runs with the old policy.
    assert d.alive() and d.get("/healthz").status == 200
    assert _mark_of(ops, d, ops.submit("opstasks.talk:mark")) == "v1"
    # The seed task's type, untouched, runs too.
    ops.submit("tasks.f5portalupdate.main:run", "customer_id=7", task_type="etl")


def test_sigterm_drains_a_running_job_then_exits_0_logging_shutdown_finished(ops):
    d = ops.daemon()
    job = ops.submit("opstasks.talk:nap", "seconds=2", wait=False)
    d.wait_event("job.output", where=lambda x: x.get("job_id") == job and x.get("line", "").startswith("napping"))
    d.signal(signal.SIGTERM)
    d.expected_exit = True
    d.wait_event("shutdown.started")
    # While draining it claims nothing new and says so on /healthz.
    body = json.loads(d.get("/healthz").body)
    assert body["draining"] is True, body
    assert d.proc.wait(15) == 0, d.tail()
    for line in d.raw_lines():
        doc = json.loads(line)
        assert isinstance(doc, dict) and {"ts", "level", "event", "executor_id"} <= set(doc), line
    assert d.stderr() == "", d.stderr()
    events = [x["event"] for x in d.events()]
    assert events[-1] == "shutdown.finished", events[-6:]
    done = [x for x in d.events("job.completed") if x.get("job_id") == job]
    assert done, "the running job was not let finish:\n%s" % d.tail()
    assert events.index("shutdown.started") < events.index("job.completed") < events.index("shutdown.finished")
    fin = d.events("shutdown.finished")[0]
    assert fin.get("jobs_completed") == 1, fin
    r = ops.cli("status", job)
    assert "COMPLETED" in r.stdout, (r.stdout, r.stderr)


def test_sigterm_when_idle_exits_0_at_once(ops):
    d = ops.daemon()
    rc = d.terminate(timeout=5)
    assert rc == 0, d.tail()
    assert [x["event"] for x in d.events()][-1] == "shutdown.finished", d.tail()
