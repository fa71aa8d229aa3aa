# SPDX-License-Identifier: ISC
"""Sandbox escape suite: every test runs one abusive task through
`build/taskexec run` and asserts what a user would see (outcome, error text,
exit code) and that the abuse left nothing behind.

Run from the repository root:  /usr/bin/python3 -m pytest tests/sandbox -q

The tasks live in the `abuse` package next to this file.  Where the sandbox may
either refuse a call (the task sees an exception) or kill the job (outcome
`violation`), both are accepted, but the abuse must never succeed.

SANDBOX_SUITE_TASKEXEC=/path/to/taskexec tests another binary;
SANDBOX_SUITE_TRACE=1 (with -s) prints every run's summary line.
"""

import fcntl
import json
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import termios
import threading
import time
import tty
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "tests" / "sandbox"
# SANDBOX_SUITE_TASKEXEC points the suite at another binary (an installed one).
TASKEXEC = Path(os.environ.get("SANDBOX_SUITE_TASKEXEC", REPO / "build" / "taskexec"))
JOB_USER = "nobody"
RESULT_MAX = 10240
SUMMARY_PREFIX = "taskexec: summary "
MiB = 1 << 20


# --------------------------------------------------------------------------
# Running a task

class TailBuffer:
    """Reads a pipe to EOF, counting bytes and keeping only the last `cap`."""

    def __init__(self, pipe, cap):
        self.pipe, self.cap = pipe, cap
        self.total, self.data = 0, bytearray()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        fd = self.pipe.fileno()
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            self.total += len(chunk)
            self.data += chunk
            if len(self.data) > 2 * self.cap:
                del self.data[: len(self.data) - self.cap]
        self.pipe.close()

    def text(self, wait=10):
        self.thread.join(wait)
        return bytes(self.data[-self.cap:]).decode("utf-8", "replace")


class Run:
    """What one `taskexec run` showed its caller."""

    def __init__(self, rc, stdout, stderr, summary, rusage, wall, stdout_bytes, stderr_bytes):
        self.rc, self.stdout, self.stderr, self.summary = rc, stdout, stderr, summary
        self.rusage, self.wall = rusage, wall
        self.stdout_bytes, self.stderr_bytes = stdout_bytes, stderr_bytes

    def __iter__(self):
        return iter((self.rc, self.stdout, self.stderr, self.summary))

    @property
    def result(self):
        return json.loads(self.stdout)

    def explain(self):
        tail = "\n".join(self.stderr.splitlines()[-15:])
        return f"rc={self.rc} wall={self.wall:.2f}s summary={self.summary}\nstderr tail:\n{tail}"


def parse_summary(stderr):
    lines = [l for l in stderr.splitlines() if l.strip()]
    if not lines or not lines[-1].startswith(SUMMARY_PREFIX):
        return None
    return json.loads(lines[-1][len(SUMMARY_PREFIX):])


class Job:
    """A `taskexec run` in flight; finish() reaps it with wait4 for its rusage."""

    def __init__(self, argv, env, stdin, pass_fds, preexec_fn, cap):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=env, stdin=stdin, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, pass_fds=pass_fds, preexec_fn=preexec_fn,
            start_new_session=preexec_fn is None)
        self.out = TailBuffer(self.proc.stdout, cap)
        self.err = TailBuffer(self.proc.stderr, cap)

    def finish(self, wall=30):
        deadline = self.started + wall
        self.runner_hwm_kb = 0
        while True:
            pid, status, rusage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            self.runner_hwm_kb = max(self.runner_hwm_kb, _vm_hwm_kb(self.proc.pid))
            if time.monotonic() > deadline:
                # Our own child, by pid: the runner did not end in time.
                os.kill(self.proc.pid, signal.SIGKILL)
                pid, status, rusage = os.wait4(self.proc.pid, 0)
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                stderr = self.err.text(2)
                pytest.fail(f"taskexec run still running after {wall}s; stderr tail:\n"
                            + "\n".join(stderr.splitlines()[-15:]))
            time.sleep(0.01)
        elapsed = time.monotonic() - self.started
        rc = os.waitstatus_to_exitcode(status)
        self.proc.returncode = rc
        stdout, stderr = self.out.text(), self.err.text()
        if os.environ.get("SANDBOX_SUITE_TRACE"):
            print(f"\nTRACE {self.proc.args[2]} rc={rc} wall={elapsed:.2f} "
                  f"maxrss={rusage.ru_maxrss} {stderr.splitlines()[-1] if stderr else ''}")
        run = Run(rc, stdout, stderr, parse_summary(stderr), rusage, elapsed,
                  self.out.total, self.err.total)
        run.runner_hwm_kb = self.runner_hwm_kb
        return run


def _vm_hwm_kb(pid):
    """Peak RSS of the runner process alone (not its jobs), 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


_CTX = {}


def start_task(entry, *kv, timeout=None, env=None, task_type=None, stdin=None,
               pass_fds=(), preexec_fn=None, cap=4 * MiB):
    assert TASKEXEC.exists() and os.access(TASKEXEC, os.X_OK), \
        f"{TASKEXEC} is missing: build it with `make`"
    argv = [str(TASKEXEC), "run", entry, *kv]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    if task_type is not None:
        argv += ["--task-type", task_type]
    full_env = dict(_CTX["env"])
    full_env.update(env or {})
    return Job(argv, full_env, stdin if stdin is not None else subprocess.DEVNULL,
               tuple(pass_fds), preexec_fn, cap)


def run_task(entry, *kv, timeout=None, env=None, wall=30, **kw):
    """Run one task; returns a Run that unpacks as (rc, stdout, stderr, summary)."""
    return start_task(entry, *kv, timeout=timeout, env=env, **kw).finish(wall)


# --------------------------------------------------------------------------
# Fixtures

START_MODES = ("fresh", "warm")


def set_start_mode(policy_dir, mode):
    """Make every policy of policy_dir start its attempts in MODE."""
    for f in Path(policy_dir).glob("*.policy"):
        text = f.read_text()
        if "[start]" in text:       # a shipped choice (event_driven): overridden for this run
            text, n = re.subn(r"(?m)^(\[start\](?:\n[^\[].*)*?\nmode = )\w+", r"\g<1>" + mode, text)
            assert n == 1, f"{f}: [start] without a mode line"
        else:
            text += f"\n[start]\nmode = {mode}\n"
        f.write_text(text)


@pytest.fixture(scope="session", params=START_MODES)
def start_mode(request):
    """The whole suite runs twice: fresh interpreters, then forks of warm servers."""
    return request.param


@pytest.fixture(scope="session")
def base_dir(start_mode):
    base = Path(tempfile.mkdtemp(prefix=f"taskexec-sandbox-{start_mode}-", dir="/tmp"))
    base.chmod(0o755)  # the job user must reach its scratch dir below
    policy = base / "policy"
    if (REPO / "policy").is_dir():
        shutil.copytree(REPO / "policy", policy)
    else:
        policy.mkdir()
    set_start_mode(policy, start_mode)
    state = base / "state"
    state.mkdir(mode=0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(autouse=True)
def sandbox_env(base_dir, request):
    scratch = base_dir / f"scratch-{request.node.name[:60].replace('/', '_')}-{uuid.uuid4().hex[:6]}"
    scratch.mkdir()
    # Sticky and world-writable like the default /tmp: only Landlock keeps a
    # job out of its neighbours and out of the parent itself.
    scratch.chmod(0o1777)
    env = {
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TASKEXEC_ALLOWED_MODULES": "abuse,tasks",
        "TASKEXEC_TASKS_PATH": f"{SUITE}:{REPO}",
        "TASKEXEC_STATE_DIR": str(base_dir / "state"),
        "TASKEXEC_SCRATCH_DIR": str(scratch),
        "TASKEXEC_POLICY_DIR": str(base_dir / "policy"),
    }
    _CTX.clear()
    _CTX.update(env=env, scratch=scratch, base=base_dir)
    yield _CTX
    _CTX.clear()


@pytest.fixture
def unique_dir(base_dir):
    """A fresh directory anyone may write to: only the sandbox stops the job."""
    d = base_dir / f"open-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    d.chmod(0o777)
    return d


# --------------------------------------------------------------------------
# Assertion helpers

# TASKEXEC_JOB_UIDS, as the suite runs taskexec: the first id is the jobs'
# shared group, each running job takes one of the others as uid and gid.
JOB_UIDS = (2100000000, 2100000999)


def job_uid():
    """The uid a lone `taskexec run` job runs as: as root, the first job id
    of the range (each running job takes its own); else the caller's."""
    return JOB_UIDS[0] + 1 if os.geteuid() == 0 else os.geteuid()


def assert_failed_with(run, *outcomes):
    assert run.summary is not None, "no summary line: " + run.explain()
    assert run.summary["outcome"] in outcomes, run.explain()
    assert run.rc == 1, run.explain()
    assert run.stdout == "", run.explain()


def assert_denied(run, names=("PermissionError", "OSError"), syscall=None):
    """Refused with an exception naming `names`, or killed as a violation
    (whose error must name `syscall` when given)."""
    assert_failed_with(run, "exception", "violation")
    s = run.summary
    if s["outcome"] == "violation":
        assert_violation(run, syscall)
    else:
        assert s.get("error_type") in names or any(n in s["error"] for n in names), run.explain()


def assert_violation(run, syscall=None):
    s = run.summary
    assert s["outcome"] == "violation", run.explain()
    if syscall is None:
        assert s["error"].startswith("sandbox violation: "), run.explain()
    else:
        why = f"the job was stopped, but the violation should name {syscall!r}: "
        assert s["error"] == f"sandbox violation: {syscall}", why + run.explain()
        assert s["syscall"] == syscall, why + run.explain()


def assert_errno_result(run, key_ok=("ENOSYS",)):
    """A raw syscall answered with -1 and one of `key_ok`, or a violation."""
    assert run.summary is not None, run.explain()
    if run.summary["outcome"] == "violation":
        assert run.rc == 1 and run.stdout == "", run.explain()
        assert_violation(run)
        return None
    assert run.summary["outcome"] == "completed" and run.rc == 0, run.explain()
    result = run.result
    assert result["ret"] == -1, f"syscall succeeded: {result}"
    assert result["errno"] in key_ok, f"unexpected errno: {result}"
    return result


def assert_runner_stayed_small(run):
    """The output must stream through the runner, never sit in its memory:
    the runner's VmHWM, sampled while it ran, and the job's own peak, which
    the runner reports.  (Not ru_maxrss from wait4: on Linux it also holds
    this test process's RSS at fork, which a long pytest session grows past
    any bound set here.)"""
    assert 0 < run.runner_hwm_kb < 32 * 1024, f"runner VmHWM {run.runner_hwm_kb} KiB\n" + run.explain()
    assert 0 < run.summary["max_rss_kb"] < 64 * 1024, run.explain()


def assert_rejected(run, field="module_path"):
    assert run.rc == 2, run.explain()
    assert run.stdout == "", run.explain()
    assert run.summary is not None, run.explain()
    assert run.summary["outcome"] == "rejected", run.explain()
    assert field in run.summary["error"], run.explain()
    assert not any(l.startswith("job: ") for l in run.stderr.splitlines()), run.explain()


def processes_of(uid):
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(name))
                        break
        except OSError:
            continue
    return pids


def processes_named(comm):
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/comm") as f:
                    if f.read().strip() == comm:
                        found.append(int(name))
            except OSError:
                pass
    return found


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def descendants(root):
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                children.setdefault(int(proc_status(int(name))["PPid"]), []).append(int(name))
            except (OSError, KeyError):
                pass
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def wait_until(pred, timeout, step=0.02):
    end = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > end:
            return value
        time.sleep(step)


# --------------------------------------------------------------------------
# Running other programs

def test_os_system_cannot_run_a_shell(unique_dir):
    marker = unique_dir / "system-ran"
    run = run_task("abuse.execs:os_system", f"marker={marker}")
    assert run.summary is not None, run.explain()
    if run.summary["outcome"] == "completed":
        # os.system() reports a failed fork/exec as a status, not an exception.
        assert run.result["status"] != 0, run.explain()
    else:
        assert_denied(run)
    assert "SYSTEM-RAN" not in run.stderr
    assert not marker.exists()


def test_subprocess_run_is_refused(unique_dir):
    marker = unique_dir / "subprocess-ran"
    run = run_task("abuse.execs:subprocess_run", f"marker={marker}")
    assert_denied(run)
    assert "SUBPROCESS-RAN" not in run.stderr
    assert not marker.exists()


def test_execv_of_the_interpreter_itself_is_refused():
    run = run_task("abuse.execs:execv_interpreter")
    assert_denied(run)
    assert "EXECV-SUCCEEDED" not in run.stderr


def test_memfd_execveat_is_refused():
    run = run_task("abuse.execs:memfd_execveat")
    # /bin/true exiting 0 would show as a crash (no result): only a refusal passes.
    killed_at = "execveat" if run.summary and run.summary.get("syscall") == "execveat" else "memfd_create"
    assert_denied(run, syscall=killed_at)
    assert "EXECVEAT-SUCCEEDED" not in run.stderr


@pytest.mark.parametrize("func, marker", [
    ("execveat_fd1023_absolute_interpreter", "ABSOLUTE-EXECVEAT-RAN"),
    ("execveat_fd1023_loader_runs_a_shell", "LOADER-SHELL-RAN"),
])
def test_execveat_from_the_exec_fd_with_a_path_is_a_violation(func, marker):
    # The fd and the flag match the sandbox's own exec; an absolute path makes
    # the kernel ignore the fd.  The filter cannot see paths: the executor
    # lets only the launch's exec through.
    run = run_task(f"abuse.execs:{func}")
    assert_failed_with(run, "violation")
    assert_violation(run, "execveat")
    assert marker not in run.stderr and marker not in run.stdout, run.explain()


# --------------------------------------------------------------------------
# Processes

def test_fork_bomb_cannot_fork_and_leaves_no_process():
    token = "fb" + uuid.uuid4().hex[:10]
    uid = job_uid()
    before = len(processes_of(uid))
    try:
        run = run_task("abuse.procs:fork_bomb", f"token={token}", timeout=3, wall=20)
        assert run.summary is not None, run.explain()
        if run.summary["outcome"] == "completed":
            result = run.result
            assert result["forked"] == 0, result
            assert "PermissionError" in result["error"] or "Operation not permitted" in result["error"], result
        else:
            assert_denied(run)
        assert wait_until(lambda: not processes_named(token), 2), \
            f"forked children survived: {len(processes_named(token))} processes named {token}"
    finally:
        for pid in processes_named(token):  # what a broken sandbox let the job leave behind
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    wait_until(lambda: len(processes_of(uid)) <= before, 2)
    after = len(processes_of(uid))
    assert after <= before, f"{JOB_USER} had {before} processes before the job, {after} after"


def test_kill_minus_one_is_refused_and_kills_nobody_else():
    uid = job_uid()
    # A process of the job's own user: the one kill(-1) could reach.  (Not
    # root, the runner's user is the job's user and no switch is needed.)
    as_job_user = {"user": uid, "group": uid} if os.geteuid() == 0 else {}
    victim = subprocess.Popen(["/bin/sleep", "30"], start_new_session=True, **as_job_user)
    try:
        run = run_task("abuse.procs:kill_everyone")
        assert_denied(run, syscall="kill")
        assert victim.poll() is None, "kill(-1, SIGKILL) from the job killed another process"
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()


def test_fcntl_cannot_aim_io_signals_at_another_process():
    uid = job_uid() if os.geteuid() == 0 else os.geteuid()
    as_job_user = {"user": uid, "group": uid} if os.geteuid() == 0 else {}
    victim = subprocess.Popen(["/bin/sleep", "30"], start_new_session=True, **as_job_user)
    try:
        run = run_task("abuse.procs:sigio_owner", f"victim={victim.pid}")
        assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
        assert run.result["F_SETOWN"] == "EPERM" and run.result["F_SETSIG"] == "EPERM", run.result
        assert run.result["F_SETOWN_EX"] == "EPERM", run.result
        assert isinstance(run.result["F_GETFL"], int)
        assert victim.poll() is None, "SIGIO ownership let the job SIGKILL a process of its user"
    finally:
        if victim.poll() is None:
            victim.kill()
        victim.wait()


def test_kill_of_the_parent_is_refused_and_the_runner_survives():
    run = run_task("abuse.procs:kill_parent")
    assert_denied(run, syscall="kill")  # a summary at all means the runner lived


@pytest.mark.parametrize("func", ["ptrace_parent", "ptrace_traceme"])
def test_ptrace_is_refused(func):
    run = run_task(f"abuse.procs:{func}")
    assert_denied(run, syscall="ptrace")


def test_unshare_user_namespace_is_refused():
    run = run_task("abuse.procs:unshare_user")
    assert_denied(run, syscall="unshare")


def test_clone3_answers_enosys():
    run = run_task("abuse.procs:clone3")
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    assert run.result == {"ret": -1, "errno": "ENOSYS"}


def test_threads_are_allowed():
    run = run_task("abuse.procs:thread_works")
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    assert run.rc == 0
    assert run.result == {"sum": 499500, "other_thread": True, "alive": False}


# --------------------------------------------------------------------------
# Network

def test_tcp_connect_to_a_local_listener_is_refused_under_network_none():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        run = run_task("abuse.net:tcp_connect", f"port={port}")
        assert_denied(run)
        readable, _, _ = select.select([listener], [], [], 0.2)
        assert not readable, "the job's connection reached the listener"


def test_udp_send_to_a_local_socket_is_refused_under_network_none():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        port = receiver.getsockname()[1]
        run = run_task("abuse.net:udp_send", f"port={port}")
        assert_denied(run)
        readable, _, _ = select.select([receiver], [], [], 0.2)
        assert not readable, "the job's datagram arrived"


# --------------------------------------------------------------------------
# File system

def test_writes_outside_the_scratch_dir_are_refused(unique_dir):
    tag = uuid.uuid4().hex
    targets = [
        Path(f"/tmp/taskexec-abuse-{tag}"),
        Path(f"/var/tmp/taskexec-abuse-{tag}"),
        Path(f"/dev/shm/taskexec-abuse-{tag}"),
        unique_dir / "marker",                      # mode 0777: DAC would allow it
        _CTX["scratch"] / f"beside-{tag}",          # the scratch parent, mode 1777
        Path.home() / f"taskexec-abuse-{tag}",
        REPO / f"taskexec-abuse-{tag}",
        SUITE / "abuse" / f"taskexec-abuse-{tag}.py",
    ]
    try:
        run = run_task("abuse.files:write_paths", "paths=" + json.dumps([str(t) for t in targets]))
        assert run.summary is not None, run.explain()
        if run.summary["outcome"] == "completed":
            # /tmp in an isolation domain is the job's own scratch tmpfs:
            # writing there is allowed, and nothing of it reaches the host.
            written = [p for p, r in run.result.items() if r["ok"] and not p.startswith("/tmp/")]
            assert written == [], f"the job wrote {written}"
        else:
            assert_denied(run)
        leaked = [str(t) for t in targets if t.exists()]
        assert leaked == [], f"files created outside the scratch dir: {leaked}"
    finally:
        for t in targets:
            try:
                t.unlink()
            except OSError:
                pass


def test_writing_inside_the_scratch_dir_works_and_it_is_removed_afterwards():
    scratch_parent = _CTX["scratch"]
    run = run_task("abuse.files:write_scratch")
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    assert run.rc == 0
    result = run.result
    assert result["read_back"] == "hello scratch\n"
    # The scratch dir is the domain's /tmp, a tmpfs of its own.
    assert result["cwd"] == "/tmp", result
    assert result["tmpdir"] == result["cwd"] and result["mkstemp_dir"] == result["cwd"], result
    assert "note.txt" in result["listing"]
    assert wait_until(lambda: not os.listdir(scratch_parent), 2), \
        f"scratch dir left behind: {os.listdir(scratch_parent)}"


def test_reading_shadow_and_other_processes_environment_is_refused():
    secret = "SECRET-" + uuid.uuid4().hex
    run = run_task("abuse.files:read_secrets", env={"SANDBOX_SUITE_SECRET": secret})
    assert run.summary is not None, run.explain()
    if run.summary["outcome"] == "completed":
        got = run.result
        read = {p: r for p, r in got.items() if r["ok"]}
        assert read == {}, f"the job read {read}"
        assert "/etc/shadow" in got and "/proc/1/environ" in got
    else:
        assert_denied(run)
    assert secret not in run.stdout and secret not in run.stderr


def test_concurrent_jobs_cannot_see_each_others_scratch_dirs():
    scratch_parent = _CTX["scratch"]
    secret = "A-SECRET-" + uuid.uuid4().hex
    job_a = start_task("abuse.files:hold_secret", f"secret={secret}", "seconds=3")

    def a_scratch():
        # Job A's scratch is the /tmp of its own mount namespace: only root
        # on the host reaches it, through /proc/PID/root.
        for pid in descendants(job_a.proc.pid):
            t = Path(f"/proc/{pid}/root/tmp")
            try:
                if (t / "secret.txt").exists():
                    return t
            except OSError:
                pass
        return None

    try:
        target = wait_until(a_scratch, 5)
        assert target is not None, "job A never wrote its secret"
        # Nothing of it is on the host's scratch dir, where the old layout kept it.
        assert not any("secret.txt" in files for _r, _d, files in os.walk(scratch_parent))
        run_b = run_task("abuse.files:peek_scratch", f"target={target}", f"parent={scratch_parent}")
    finally:
        run_a = job_a.finish(15)
    assert run_a.summary is not None and run_a.summary["outcome"] == "completed", run_a.explain()
    assert run_b.summary is not None, run_b.explain()
    if run_b.summary["outcome"] == "completed":
        peek = run_b.result
        assert not peek["list_target"]["ok"], f"job B listed job A's scratch dir: {peek}"
        assert not peek["read_secret"]["ok"], f"job B read job A's secret: {peek}"
        assert Path(peek["own_cwd"]) != target
    else:
        assert_denied(run_b)
    assert secret not in run_b.stdout and secret not in run_b.stderr


# --------------------------------------------------------------------------
# Raw system calls

def test_io_uring_setup_answers_enosys():
    assert_errno_result(run_task("abuse.syscalls:io_uring_setup"), ("ENOSYS", "EPERM"))


def test_x32_syscall_numbers_are_killed_by_the_kernel():
    # Bit 30 set: libseccomp sends it to the bad-arch action, SECCOMP_RET_KILL_PROCESS,
    # whether or not this kernel was built with x32 support.
    run = run_task("abuse.syscalls:x32_getpid")
    assert_failed_with(run, "violation")
    assert run.summary["signal"] == signal.SIGSYS, run.explain()
    assert run.summary["error"].startswith("sandbox violation: "), run.explain()


def test_tiocsti_cannot_inject_into_a_terminal():
    master, slave = os.openpty()
    tty.setraw(slave)

    def own_the_tty():  # the runner gets the pty as its controlling terminal
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        run = run_task("abuse.syscalls:tiocsti", stdin=slave, preexec_fn=own_the_tty)
        assert run.summary is not None, run.explain()
        if run.summary["outcome"] == "completed":
            attempts = run.result["attempts"]
            succeeded = {k: v for k, v in attempts.items() if v["ret"] != -1}
            assert succeeded == {}, f"TIOCSTI succeeded: {succeeded}"
        else:
            assert_denied(run, names=("OSError",), syscall="ioctl")
        os.set_blocking(slave, False)
        try:
            injected = os.read(slave, 1024)
        except BlockingIOError:
            injected = b""
        assert injected == b"", f"characters were pushed into the terminal: {injected!r}"
    finally:
        os.close(master)
        os.close(slave)


# --------------------------------------------------------------------------
# Resources and deadlines

def test_memory_bomb_ends_with_outcome_memory():
    run = run_task("abuse.resources:memory_bomb", timeout=20, wall=40)
    assert_failed_with(run, "memory")
    assert run.wall < 20, run.explain()


def test_cpu_loop_is_killed_at_the_deadline():
    run = run_task("abuse.resources:cpu_loop", timeout=2, wall=20)
    assert_failed_with(run, "timeout")
    assert "timeout" in run.summary["error"], run.explain()
    assert 1.9 <= run.wall < 7, run.explain()


def test_a_task_ignoring_sigterm_is_still_killed():
    run = run_task("abuse.resources:ignore_sigterm", timeout=2, wall=20)
    assert_failed_with(run, "timeout")
    # SIGTERM at 2 s is ignored, SIGKILL follows after the 2 s grace.
    assert 1.9 <= run.wall < 8, run.explain()


def test_a_gigabyte_of_stdout_keeps_the_runner_small():
    job = start_task("abuse.resources:flood_stdout", timeout=25, cap=256 * 1024)
    run = job.finish(60)
    assert run.summary is not None, run.explain()
    assert run.summary["outcome"] in ("completed", "timeout"), run.explain()
    if run.summary["outcome"] == "completed":
        assert run.result == {"written": 1 << 30}
    assert_runner_stayed_small(run)


def test_a_100mb_line_without_newline_is_drained_and_completes():
    job = start_task("abuse.resources:long_line", timeout=25, cap=256 * 1024)
    run = job.finish(40)
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    assert run.rc == 0
    assert run.result == {"written": 100 * MiB}
    assert_runner_stayed_small(run)


def _children(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_a_caller_that_never_reads_stderr_does_not_stall_the_deadline(start_mode):
    # The runner relays the job's lines to its own stderr.  Nobody reads that
    # pipe here: the job must still be killed at its 2 s deadline, and the
    # runner must report it once the caller finally reads.
    argv = [str(TASKEXEC), "run", "abuse.resources:flood_stderr_forever", "--timeout", "2"]
    proc = subprocess.Popen(argv, cwd=REPO, env=_CTX["env"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        job_pid = None
        while job_pid is None:
            assert time.monotonic() < deadline and proc.poll() is None, "the job never started"
            children = _children(proc.pid)
            if start_mode == "warm":    # the runner's child is the warm server; the job is its fork
                children = [c for server in children for c in _children(server)]
            job_pid = children[0] if children else None
            time.sleep(0.05)
        # deadline 2 s + SIGKILL grace 2 s, and slack for a loaded machine
        deadline = time.monotonic() + 12
        while _state(job_pid) not in ("Z", "gone"):
            assert time.monotonic() < deadline, "the job outlived its deadline while stderr was not read"
            time.sleep(0.1)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err.decode(errors="replace")
    summary = parse_summary(err)
    assert summary is not None and summary["outcome"] == "timeout", err[-2000:]
    assert proc.returncode == 1
    assert "lines of the job's output were dropped: standard error was not read" in err
    assert "job: xxxxxxxx" in err


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_1mb_result_is_too_large():
    run = run_task("abuse.resources:huge_result")
    assert_failed_with(run, "too_large")
    m = re.fullmatch(r"result too large: (\d+) bytes > (\d+)", run.summary["error"])
    assert m, run.explain()
    assert int(m.group(1)) >= MiB and int(m.group(2)) == RESULT_MAX, run.explain()
    assert run.summary["retryable"] is False


# --------------------------------------------------------------------------
# The result protocol

def test_closing_fd3_and_printing_a_fake_result_is_a_crash():
    run = run_task("abuse.protocol:fake_result")
    assert_failed_with(run, "crash")
    assert "forged" not in run.stdout


# --------------------------------------------------------------------------
# Module paths

@pytest.mark.parametrize("entry", [
    "os:system",
    "tasks.__init__:run",
    "tasks..x:run",
    "builtins:exec",
    "abuse._private:run",
])
def test_module_path_outside_the_allowed_packages_is_rejected(entry):
    run = run_task(entry, "command=echo PWNED")
    assert_rejected(run)
    assert "PRIVATE-MODULE-RAN" not in run.stderr


def test_private_function_name_is_rejected():
    run = run_task("abuse.files:_attempt", "fn=1")
    assert_rejected(run, "method_name")


@pytest.mark.parametrize("kind", ["file", "package"])
def test_module_symlinked_out_of_the_task_roots_is_rejected(base_dir, kind):
    outside = base_dir / f"outside-{uuid.uuid4().hex[:8]}"
    outside.mkdir(mode=0o755)
    code = "def run():\n    print('OUTSIDE-' + 'MODULE-RAN')\n    return {'ran': True}\n"
    name = f"outside_{uuid.uuid4().hex[:8]}"
    if kind == "file":
        (outside / "evil.py").write_text(code)
        link, entry = SUITE / "abuse" / f"{name}.py", f"abuse.{name}:run"
        target = outside / "evil.py"
    else:
        (outside / "__init__.py").write_text("")
        (outside / "main.py").write_text(code)
        link, entry = SUITE / "abuse" / name, f"abuse.{name}.main:run"
        target = outside
    os.chmod(outside, 0o755)
    # A task root of this test's own (the suite may run as a user who cannot
    # write the checkout): an allowed package whose module is a link out of it.
    root = base_dir / f"root-{uuid.uuid4().hex[:8]}"
    (root / "abuse").mkdir(parents=True)
    (root / "abuse" / "__init__.py").write_text("")
    root.chmod(0o755)
    (root / "abuse").chmod(0o755)
    (root / "abuse" / link.name).symlink_to(target)
    run = run_task(entry, env={"TASKEXEC_TASKS_PATH": f"{root}:{REPO}"})
    assert_rejected(run)
    assert "OUTSIDE-MODULE-RAN" not in run.stderr


# --------------------------------------------------------------------------
# What the job inherits

def test_python_and_loader_variables_do_not_reach_the_job(base_dir):
    evil = base_dir / f"evil-{uuid.uuid4().hex[:8]}"
    evil.mkdir(mode=0o755)
    for mod in ("sitecustomize", "usercustomize", "json"):
        (evil / f"{mod}.py").write_text("print('PYTHONPATH-' + 'LEAK')\n")
    (evil / "startup.py").write_text("print('PYTHONSTARTUP-' + 'LEAK')\n")
    os.chmod(evil, 0o755)
    secret = uuid.uuid4().hex
    injected = {
        "PYTHONPATH": str(evil),
        "PYTHONSTARTUP": str(evil / "startup.py"),
        "PYTHONHOME": str(evil),
        "PYTHONINSPECT": "1",
        "LD_PRELOAD": str(evil / "marker.so"),
        "LD_LIBRARY_PATH": str(evil),
        "SANDBOX_SUITE_SECRET": secret,
    }
    run = run_task("abuse.introspect:environ_and_path", env=injected)
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    got = run.result
    leaked = sorted(set(got["environ"]) & set(injected))
    assert leaked == [], f"leaked into the job: {leaked}"
    assert not any(k.startswith("TASKEXEC_") for k in got["environ"]), got["environ"]
    assert secret not in json.dumps(got["environ"])
    assert got["environ"].get("PATH") == "/usr/bin:/bin" and "HOME" not in got["environ"], got["environ"]
    assert not any(p.startswith(str(evil)) for p in got["path"]), got["path"]
    assert got["modules"] == [], got["modules"]
    job_lines = "\n".join(l for l in run.stderr.splitlines() if l.startswith("job: "))
    for word in ("PYTHONPATH-LEAK", "PYTHONSTARTUP-LEAK", "marker.so", "LD_PRELOAD"):
        assert word not in job_lines, job_lines


def test_the_job_sees_only_fds_0_to_4():
    secret = tempfile.NamedTemporaryFile(prefix="taskexec-fd-", dir=_CTX["base"])
    r, w = os.pipe()
    os.set_inheritable(secret.fileno(), True)
    try:
        run = run_task("abuse.introspect:open_fds", pass_fds=(secret.fileno(), r, w))
    finally:
        secret.close()
        os.close(r)
        os.close(w)
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    got = run.result
    assert got["fcntl"] == [0, 1, 2, 3, 4], got
    if got["proc"] is not None:
        # listdir's own directory fd is the one allowed extra.
        assert len(set(got["proc"]) - {0, 1, 2, 3, 4}) <= 1, got


def test_the_job_runs_as_the_job_user_without_capabilities():
    job = start_task("abuse.introspect:identity", "linger=1.0")
    seen = wait_until(lambda: [p for p in descendants(job.proc.pid)
                               if _comm(p).startswith("python")], 3)
    outside = {}
    for pid in seen or []:
        try:
            outside[pid] = proc_status(pid)
        except OSError:
            pass
    run = job.finish(15)
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    got = run.result
    if os.getuid() == 0:
        first, last = JOB_UIDS
        assert first < got["uid"] == got["euid"] <= last, got
        assert set(got["resuid"]) == {got["uid"]}, got
        assert got["gid"] == got["uid"] and set(got["resgid"]) == {got["gid"]}, got
        assert got["groups"] == [first], got
    assert got["uid"] != 0
    assert got["sid"] == got["pid"] or got["pgid"] == got["pid"], "job not in its own process group"
    if got["status"] is not None:
        for cap in ("CapEff", "CapPrm", "CapAmb", "CapInh"):
            assert int(got["status"][cap], 16) == 0, got["status"]
        assert got["status"]["NoNewPrivs"] == "1", got["status"]
        assert got["status"]["Seccomp"] == "2", got["status"]
    # The same, seen from outside while the job lingered.
    assert outside, "could not find the job's interpreter under the runner"
    for pid, st in outside.items():
        for cap in ("CapEff", "CapPrm", "CapAmb"):
            assert int(st[cap], 16) == 0, (pid, st)
        assert st["NoNewPrivs"] == "1" and st["Seccomp"] == "2", (pid, st)
        if os.getuid() == 0:
            # The uid the job reported: another job running on this host
            # at the same time may hold the first of the range.
            assert set(st["Uid"].split()) == {str(got["uid"])}, (pid, st)


# --------------------------------------------------------------------------
# What a job may leave for other users and jobs (issue 8)

def test_a_lease_that_would_stall_other_jobs_open_is_refused():
    run = run_task("abuse.modes:write_lease")
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    assert run.result["F_SETLEASE_WR"] == "EPERM", run.result
    assert run.result["F_SETLEASE_RD"] == "EPERM", run.result
    assert run.result["F_GETLEASE"] == fcntl.F_UNLCK, run.result


@pytest.mark.parametrize("mode", ["4755", "2755", "6755"])
def test_a_set_uid_or_set_gid_copy_of_python_cannot_be_made(mode):
    run = run_task("abuse.modes:setuid_copy", f"mode={mode}", wall=60)
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    got = run.result
    for call in ("chmod", "fchmod", "fchmodat", "chmod_nofollow", "fchmodat2"):
        assert got[call] in ("EPERM", "NotImplementedError", "EOPNOTSUPP"), f"{call}: {got}"
        assert got[call + "_mode"] == "0o755", f"{call} left mode {got[call + '_mode']}: {got}"
    assert got["chmod"] == got["fchmod"] == got["fchmodat"] == got["fchmodat2"] == "EPERM", got
    assert got["suid_left"] is False, got


@pytest.mark.parametrize("mode", ["755", "1755", "700"])
def test_plain_chmod_still_works(mode):
    run = run_task("abuse.modes:setuid_copy", f"mode={mode}", wall=60)
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    got = run.result
    for call in ("chmod", "fchmod", "fchmodat", "fchmodat2"):
        assert got[call] == "ok", f"{call}: {got}"
        assert got[call + "_mode"] == oct(int(mode, 8)), f"{call}: {got}"


def test_a_file_created_set_uid_loses_the_bits_when_it_is_filled():
    run = run_task("abuse.modes:setuid_by_create")
    assert run.summary is not None and run.summary["outcome"] == "completed", run.explain()
    assert run.result["after_write"] == "0o755", run.result
