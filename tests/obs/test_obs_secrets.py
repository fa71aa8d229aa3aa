# SPDX-License-Identifier: ISC
"""Policy [secrets]: a root-only file reaches the jobs of its task type, and
nothing else: not another type's jobs, the log, the job and attempt rows,
`taskexec show`, `taskexec policy show` or `taskexecd --check`."""
import hashlib
import json
import shutil
import uuid

import pytest

from testlib import REPO


@pytest.fixture
def f5(obs):
    """A task type f5 (ad_hoc's policy plus [secrets] F5_PASSWORD) and its
    secret file, 0600 root's, holding a value unique to the test."""
    value = "F5-s3cret-%s" % uuid.uuid4().hex
    sdir = obs.dir / "secrets"
    sdir.mkdir(mode=0o700)
    path = sdir / "f5-password"
    path.write_text(value)
    path.chmod(0o600)
    pdir = obs.policy_dir()
    shutil.copy(REPO / "policy" / "ad_hoc.policy", pdir / "f5.policy")
    with open(pdir / "f5.policy", "a") as f:
        f.write("\n[secrets]\nF5_PASSWORD = %s\n" % path)
    obs.secret_value, obs.secret_path = value, path
    return obs


def result_of(ops, job):
    r = ops.cli("show", "--json", job)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_nowhere(ops, value, *texts):
    for t in texts:
        assert value not in t, "the secret's value leaked: %s" % t[:2000]
    for d in ops.daemons:
        for line in d.raw_lines() + d.stderr().splitlines():
            assert value not in line, "the secret's value is in a log line: %s" % line


def test_task_reads_its_secret_from_a_0400_file_of_its_own(f5):
    d = f5.daemon()
    job = f5.submit("obstasks.secret:read", "var=F5_PASSWORD", task_type="f5")
    res = result_of(f5, job)["result"]
    assert res["sha256"] == hashlib.sha256(f5.secret_value.encode()).hexdigest()
    assert res["mode"] == "0400" and res["mine"] is True
    assert res["path"] == "/tmp/taskexec-secret.F5_PASSWORD" or res["path"].endswith("/taskexec-secret.F5_PASSWORD")
    assert_nowhere(f5, f5.secret_value)
    d.wait_event("job.completed", where=lambda e: e.get("job_id") == job)


def test_another_task_type_does_not_see_the_secret(f5):
    f5.daemon()
    job = f5.submit("obstasks.secret:env", task_type="ad_hoc")
    res = result_of(f5, job)["result"]
    assert "F5_PASSWORD" not in res["names"] and res["secret_files"] == []
    # The secret type's own job does name it, by path.
    job = f5.submit("obstasks.secret:env", task_type="f5")
    assert "F5_PASSWORD" in result_of(f5, job)["result"]["names"]


def test_secret_value_is_in_no_log_line_row_show_or_policy_show(f5):
    f5.daemon()
    # chatter prints the job's whole environment into the daemon's log.
    job = f5.submit("opstasks.talk:chatter", "tag=sec", task_type="f5")
    show = f5.cli("show", job)
    show_json = f5.cli("show", "--json", job)
    policy = f5.cli("policy", "show", "f5")
    assert policy.returncode == 0, policy.stderr
    assert "F5_PASSWORD = %s" % f5.secret_path in policy.stdout
    check = f5.check()
    assert check.returncode == 0, check.stderr
    assert str(f5.secret_path) in check.stdout
    rows = f5.services.psql(
        "SELECT row_to_json(j)::text FROM taskexec.jobs j WHERE job_id = '%s' "
        "UNION ALL SELECT row_to_json(a)::text FROM taskexec.attempts a WHERE job_id = '%s'" % (job, job)).stdout
    assert job in rows
    assert_nowhere(f5, f5.secret_value, show.stdout, show.stderr, show_json.stdout, policy.stdout, policy.stderr,
                   check.stdout, check.stderr, rows)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_secret_file_readable_by_others_refused_at_start_naming_it(f5, mode):
    f5.secret_path.chmod(mode)
    check = f5.check()
    assert check.returncode != 0
    assert "[secrets] F5_PASSWORD" in check.stderr and str(f5.secret_path) in check.stderr, check.stderr
    assert "mode %04o" % mode in check.stderr, check.stderr
    d = f5.daemon(wait_healthy=False)
    assert d.reap(20) != 0
    d.expected_exit = True
    out = "\n".join(d.raw_lines()) + d.stderr()
    assert str(f5.secret_path) in out, out
    assert_nowhere(f5, f5.secret_value, check.stdout, check.stderr)


def test_secret_file_not_owned_by_root_refused(f5):
    shutil.chown(f5.secret_path, user="nobody")
    check = f5.check()
    assert check.returncode != 0
    assert str(f5.secret_path) in check.stderr and "not root" in check.stderr, check.stderr


def test_secret_file_opened_up_after_start_stops_the_launch_naming_it(f5):
    """Read again at each launch: a file that became readable to others is
    refused then too, as a fault of this executor (the job is not charged)."""
    from opshelpers import wait_for
    d = f5.daemon()
    f5.secret_path.chmod(0o644)
    job = f5.submit("obstasks.secret:read", "var=F5_PASSWORD", task_type="f5", wait=False)
    line = wait_for(lambda: next((l for l in d.raw_lines() if str(f5.secret_path) in l), None), 15,
                    "a log line naming the secret file")
    assert "mode 0644" in line and "F5_PASSWORD" in line, line
    st = json.loads(f5.cli("status", job, "--json").stdout)
    assert st["status"] in ("QUEUED", "RUNNING") and st["attempts"] <= 1, st
    f5.secret_path.chmod(0o600)
    assert_nowhere(f5, f5.secret_value)
