# SPDX-License-Identifier: ISC
"""Isolation domains (issue "isolation domains"): what a job can and cannot
reach of the host, the executor's services and other jobs, seen as the
attacker sees it.  The helpers and fixtures are those of test_sandbox.py."""
import json
import os
import select
import socket
import subprocess
import uuid
from pathlib import Path

from test_sandbox import (JOB_UIDS, MiB, REPO, SUITE, TASKEXEC, _CTX, base_dir, run_task,  # noqa: F401
                          sandbox_env, start_mode, start_task, unique_dir)


def completed(run):
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    return run.result


def test_datagrams_and_fds_cannot_leave_a_job_under_network_none(unique_dir):
    path = str(unique_dir / "host.sock")
    abstract = "taskexec-test-" + uuid.uuid4().hex
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as named, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as anon:
        named.bind(path)
        os.chmod(path, 0o777)           # DAC would let anyone send
        anon.bind("\0" + abstract)
        got = completed(run_task("abuse.domain:send_datagrams", "paths=" + json.dumps([path, "/dev/log"]),
                                 f"abstract={abstract}"))
        readable, _, _ = select.select([named, anon], [], [], 0.3)
    assert readable == [], "a datagram from the job reached a host socket"
    for target, r in got.items():
        assert not r["sendto"]["ok"] and not r["sendmsg_fds"]["ok"], (target, r)


def test_a_job_cannot_tell_whether_etc_shadow_exists():
    got = completed(run_task("abuse.domain:look_around",
                             "paths=" + json.dumps(["/etc/shadow", "/etc/passwd", "/etc/no-such-file"])))
    assert {p: r["stat"] for p, r in got.items()} == {p: {"ok": False, "errno": "ENOENT"} for p in got}, got


def test_the_domain_shows_only_the_interpreter_the_packages_and_its_own_tmp():
    got = completed(run_task("abuse.domain:look_around",
                             "paths=" + json.dumps(["/", str(REPO), str(SUITE), "/tmp", "/dev", "/proc",
                                                    "/run", "/var", "/home", str(_CTX["scratch"])])))
    top = set(got["/"]["list"]["value"])
    assert top <= {"dev", "etc", "lib", "lib64", "tmp", "usr", Path(str(REPO)).parts[1]}, top
    # Of each task root, only the allowed packages (and the shim's directory).
    assert set(got[str(REPO)]["list"]["value"]) <= {"tasks", "runner-shim", "tests"}, got[str(REPO)]
    assert got[str(SUITE)]["list"]["value"] == ["abuse"], got[str(SUITE)]
    # The job's own tmpfs: empty, but for the way to a task root that lives
    # under /tmp (a checkout there), which is bound where it is on the host.
    leading = {Path(str(r)).relative_to("/tmp").parts[0] for r in (REPO, SUITE) if str(r).startswith("/tmp/")}
    assert set(got["/tmp"]["list"]["value"]) == leading, got["/tmp"]
    assert got["/dev"]["list"]["value"] == ["null", "urandom", "zero"], got["/dev"]
    for p in ("/proc", "/run", "/var", "/home", str(_CTX["scratch"])):
        assert got[p]["list"] == {"ok": False, "errno": "ENOENT"}, (p, got[p])


def test_scratch_beyond_its_size_fails_with_enospc_inside_the_job_only():
    before = os.statvfs(_CTX["scratch"]).f_bavail
    got = completed(run_task("abuse.domain:fill_tmp", "limit_mb=256"))
    # ad_hoc's scratch_size is 64M.
    assert got["errno"] == "ENOSPC" and 56 <= got["written_mb"] <= 64, got
    # None of the 56-64 MiB landed on the host's disk (one-sided: other
    # processes of the machine may free or take a few MiB meanwhile).
    assert (before - os.statvfs(_CTX["scratch"]).f_bavail) * os.statvfs(_CTX["scratch"]).f_frsize < 24 * MiB
    assert os.listdir(_CTX["scratch"]) == []


def test_jobs_running_at_once_have_uids_of_their_own():
    a = start_task("abuse.domain:identity", "seconds=1.5")
    b = completed(run_task("abuse.domain:identity"))
    a = completed(a.finish(15))
    if os.geteuid() == 0:
        first, last = JOB_UIDS
        assert first < a["uid"] <= last and first < b["uid"] <= last and a["uid"] != b["uid"], (a, b)
        assert a["groups"] == b["groups"] == [first], (a, b)
    else:
        assert a["uid"] == b["uid"] == os.geteuid()
    for got in (a, b):
        assert got["cwd"] == "/tmp" and got["tmp_mode"] == "0o700" and got["tmp_uid"] == got["uid"], got


def _policy_with_write_path(path):
    policy = _CTX["base"] / "policy" / "domaintest.policy"
    text = (_CTX["base"] / "policy" / "ad_hoc.policy").read_text()     # in this run's start mode
    policy.write_text(text + "\n[paths]\nwrite = %s\n" % path)
    return "domaintest"


def test_write_path_parents_are_made_by_root_and_jobs_share_the_leaf(base_dir):
    if os.geteuid() != 0:
        return      # unprivileged, write paths are made by and for the caller alone
    root = base_dir / ("wp-" + uuid.uuid4().hex[:6])
    leaf = root / "a" / "b"
    task_type = _policy_with_write_path(leaf)
    got = completed(run_task("abuse.domain:write_into", f"path={leaf}", task_type=task_type))
    for d in (root, root / "a"):
        st = os.stat(d)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o755), (d, oct(st.st_mode))
    st = os.stat(leaf)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, JOB_UIDS[0], 0o2770), oct(st.st_mode)
    # Group-writable for the next job, whatever uid it gets.
    assert got == {"mode": "0o664", "gid": JOB_UIDS[0]}, got


def test_a_symlink_in_a_write_path_stops_the_launch(base_dir, unique_dir):
    if os.geteuid() != 0:
        return
    link = base_dir / ("wl-" + uuid.uuid4().hex[:6])
    os.symlink(unique_dir, link)                # swapped in by someone who could
    task_type = _policy_with_write_path(link / "x")
    run = run_task("abuse.domain:identity", task_type=task_type)
    assert run.summary is not None and run.summary["outcome"] == "executor_fault", run.explain()
    assert "a component is a symbolic link" in run.summary["error"], run.explain()
    assert not (unique_dir / "x").exists()


def test_an_ordinary_user_runs_a_job_in_a_domain_through_a_user_namespace(base_dir):
    if os.geteuid() != 0:
        user = os.geteuid()             # already ordinary: run as ourselves
        preexec = None
    else:
        user = 65534

        def preexec():
            os.setgroups([])
            os.setresgid(user, user, user)
            os.setresuid(user, user, user)
            os.setsid()
    scratch = base_dir / ("user-" + uuid.uuid4().hex[:6])
    scratch.mkdir(mode=0o1777)
    scratch.chmod(0o1777)
    env = dict(_CTX["env"], TASKEXEC_SCRATCH_DIR=str(scratch))
    r = subprocess.run([str(TASKEXEC), "run", "abuse.domain:look_around",
                        "paths=" + json.dumps(["/", "/etc/shadow", "/home"])], cwd=REPO, env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, preexec_fn=preexec, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)
    assert set(got["/"]["list"]["value"]) <= {"dev", "etc", "lib", "lib64", "tmp", "usr", REPO.parts[1]}, got
    assert got["/etc/shadow"]["stat"] == {"ok": False, "errno": "ENOENT"}
    assert got["/home"]["list"] == {"ok": False, "errno": "ENOENT"}
