# SPDX-License-Identifier: ISC
"""The packages: build the .deb, install it, run the installed programs, purge it;
build the .rpm and check its contents.

    /usr/bin/python3 -m pytest -q tests/packaging

Needs root (dpkg -i, the packaged users, the daemon switching jobs to
taskexec-job), dpkg, rpmbuild and systemd-analyze.  It installs the package on
this machine and purges it again at the end, so it refuses to run when a
taskexec package is already installed here.  On a developer's machine a
missing requirement skips, with the reason; under CI (CI set), where
scripts/bootstrap installs every tool and the machine is fresh, it fails, so
a skip can never hide a missing install step or a package left behind.

What it does, in order (one module-scoped installation, tests in file order):
  - `make deb` (a clean build of a staged copy, then lintian: no errors);
  - `dpkg -i`: files, modes, conffiles, users, /var/lib/taskexec; the unit is
    installed but neither enabled nor started (there is no systemd PID 1 here);
  - the installed `taskexecd --check` shows the installed layout, and the
    packaged taskexec.conf names every setting;
  - the installed `taskexec run` of the seed task, as taskexec-job;
  - the installed `taskexecd` against a throwaway Redis + PostgreSQL
    (scripts/services), confined like the unit confines it: its
    CapabilityBoundingSet= and NoNewPrivileges=, via setpriv; sd_notify
    READY=1, WATCHDOG=1 and STOPPING=1 arrive on a NOTIFY_SOCKET of ours;
    /healthz and /metrics answer; `taskexec submit --wait` → COMPLETED, run as
    taskexec-job; when strace and systemd-analyze are installed, every system
    call the daemon and its job make must pass the unit's SystemCallFilter=;
  - the unit: systemd-analyze verify, security exposure <= 3.3, and its
    SystemCallFilter= allows every call the jobs' own filter allows;
  - `dpkg --purge`: everything the package installed is gone; job data in
    /var/lib/taskexec and the two users stay (packaging/debian/README.Debian);
  - `make rpm`: `rpm -qlp` lists the same files as the .deb, with the same
    conffiles, modes and owners.

A /var/lib/taskexec left by an earlier installation is moved aside for the
run and put back afterwards, so the seed task sees a fresh state directory;
the job data and the users this run created are removed at the end, so the
machine is left as it was found.  About 25 seconds.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from testlib import spare_port, wait_for

REPO = Path(__file__).resolve().parents[2]
VERSION = (REPO / "VERSION").read_text().strip()
SERVICES = REPO / "scripts" / "services"

SBIN = Path("/usr/sbin/taskexecd")
BIN = Path("/usr/bin/taskexec")
LIBDIR = Path("/usr/lib/taskexec")
ETC = Path("/etc/taskexec")
CONF = ETC / "taskexec.conf"
STATE = Path("/var/lib/taskexec")
UNIT = Path("/lib/systemd/system/taskexecd.service")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/taskexecd.service")
POLICIES = sorted(p.name for p in (REPO / "policy").glob("*.policy"))
MANPAGES = sorted(p.name for p in (REPO / "man").glob("*.[1-8]"))

# Paths both packages must hold (beyond the lists above).
KEY_PATHS = [
    "/usr/sbin/taskexecd",
    "/usr/bin/taskexec",
    "/usr/lib/taskexec/taskexec_shim.py",
    "/usr/lib/taskexec/taskexec_task.py",
    "/usr/lib/taskexec/tasks/__init__.py",
    "/usr/lib/taskexec/tasks/f5portalupdate/main.py",
    "/etc/taskexec/taskexec.conf",
    "/usr/share/taskexec/observability/taskexec-dashboard.json",
    "/usr/share/taskexec/observability/taskexec-alerts.yml",
    "/etc/taskexec/policy.d/etl.policy",
    "/var/lib/taskexec",
]

def unavailable(reason):
    """Skip on a developer's machine; fail under CI, which must have it all."""
    if os.environ.get("CI"):
        pytest.fail("CI: " + reason)
    pytest.skip(reason)


# Module scope, so it runs before the module-scoped installation.
@pytest.fixture(scope="module", autouse=True)
def requirements():
    if os.geteuid() != 0:
        unavailable("needs root: installs the .deb with dpkg -i and runs jobs as the packaged user "
                    "taskexec-job")
    if shutil.which("dpkg") is None:
        unavailable("needs dpkg (a Debian system)")


def run(cmd, timeout=120, check=True, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("stdin", subprocess.DEVNULL)
    r = subprocess.run(cmd, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s: exit %d\n--- stdout\n%s\n--- stderr\n%s"
                             % (" ".join(map(str, cmd)), r.returncode, r.stdout, r.stderr))
    return r


def dpkg_installed(pkg="taskexec"):
    r = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
    return r.returncode == 0 and "installed" in r.stdout.split()


def user_exists(name):
    return run(["getent", "passwd", name], check=False).returncode == 0


def unit_setting(text, key):
    """All values of KEY= in a unit file, joined by blanks."""
    return " ".join(m.group(1) for m in re.finditer(r"^%s=(.*)$" % re.escape(key), text, re.M))


def procs_running(exe):
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.readlink(d / "exe") == str(exe):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def expand_syscall_filter(items):
    """The system call names a SystemCallFilter= allow list admits, groups expanded."""
    names, seen, todo = set(), set(), list(items)
    while todo:
        item = todo.pop()
        if not item.startswith("@"):
            names.add(item)
        elif item not in seen:
            seen.add(item)
            out = run(["systemd-analyze", "syscall-filter", item], check=False).stdout
            for line in out.splitlines():
                line = line.strip()
                if line and not line.startswith("#") and line != item:
                    todo.append(line)
    return names


# --------------------------------------------------------------------------
# the installation


class Install:
    def __init__(self):
        self.deb = REPO / "build" / ("taskexec_%s_%s.deb" % (VERSION, run(
            ["dpkg", "--print-architecture"]).stdout.strip()))
        self.saved_state = None
        self.build_output = ""
        self.new_users = [u for u in ("taskexec-job", "taskexec") if not user_exists(u)]

    def setup(self):
        if STATE.exists():
            self.saved_state = STATE.with_name("taskexec.saved-by-test-%d" % os.getpid())
            STATE.rename(self.saved_state)
        # NOCHECK=1: the C unit tests are "make check"'s own first step.
        r = run(["make", "-C", str(REPO), "deb"], timeout=300, env=dict(os.environ, NOCHECK="1"))
        self.build_output = r.stdout + r.stderr
        assert self.deb.is_file(), self.build_output
        r = run(["dpkg", "-i", str(self.deb)], timeout=120,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        self.install_output = r.stdout + r.stderr

    def teardown(self):
        """Leave the machine as it was: purge, drop the job data and the users
        this run created (purge keeps both on purpose), put back a saved state."""
        if dpkg_installed():
            run(["dpkg", "--purge", "taskexec"], check=False, timeout=120)
        shutil.rmtree(STATE, ignore_errors=True)
        if self.saved_state is not None:
            self.saved_state.rename(STATE)
        for user in self.new_users:
            run(["deluser", "--system", "--quiet", user], check=False)
            run(["delgroup", "--system", "--quiet", user], check=False)


@pytest.fixture(scope="module")
def installed():
    if dpkg_installed():
        unavailable("a taskexec package is already installed on this machine and this test "
                    "would purge it; run 'dpkg --purge taskexec' first")
    inst = Install()
    try:
        inst.setup()
        yield inst
    finally:
        inst.teardown()


@pytest.fixture(scope="module")
def services():
    assert SERVICES.exists(), "scripts/services is part of the repository and must be there"
    d = Path(tempfile.mkdtemp(prefix="taskexec-pkgtest-", dir="/tmp"))
    try:
        r = run([str(SERVICES), "start", str(d)], timeout=120)
        env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        assert env.get("TASKEXEC_REDIS_URL") and env.get("TASKEXEC_DB_URL"), r.stdout
        yield env
    finally:
        run([str(SERVICES), "stop", str(d)], check=False, timeout=120)
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------
# the .deb


def test_deb_builds_lintian_clean(installed):
    lines = installed.build_output.splitlines()
    errors = [l for l in lines if l.startswith("E: ")]
    assert not errors, "lintian errors:\n" + "\n".join(errors)
    assert any(l.startswith("build-deb: build/") for l in lines), installed.build_output


def test_client_deb_holds_the_client_and_its_dependencies(installed, tmp_path):
    """python3-taskexec, built beside taskexec: its dependencies, and the
    package imports on its own from what the .deb holds."""
    deb = REPO / "build" / ("python3-taskexec_%s_all.deb" % VERSION)
    assert deb.is_file(), installed.build_output
    info = run(["dpkg-deb", "-f", str(deb), "Depends", "Architecture"]).stdout
    for dep in ("python3-redis", "python3-psycopg2", "python3:any"):
        assert dep in info, info
    assert "Architecture: all" in info
    run(["dpkg-deb", "-x", str(deb), str(tmp_path)])
    site = tmp_path / "usr" / "lib" / "python3" / "dist-packages"
    r = subprocess.run(["/usr/bin/python3", "-I", "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                        "import taskexec; print(taskexec.__version__)", str(site)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.split()[0] == VERSION, r.stderr


def test_files_users_and_modes(installed):
    for p in KEY_PATHS:
        assert Path(p).exists(), p
    assert os.access(SBIN, os.X_OK) and os.access(BIN, os.X_OK)
    assert (LIBDIR / "tasks" / "f5portalupdate").is_dir()
    for name in POLICIES:
        assert (ETC / "policy.d" / name).is_file(), name
    for name in MANPAGES:
        section = name.rsplit(".", 1)[1]
        assert Path("/usr/share/man/man%s/%s.gz" % (section, name)).is_file(), name
    assert UNIT.is_file()

    # users: system accounts with no shell and no home
    for name in ("taskexec", "taskexec-job"):
        entry = run(["getent", "passwd", name]).stdout.strip().split(":")
        assert int(entry[2]) < 1000, entry
        assert entry[6] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"), entry
        assert entry[5] == "/nonexistent" and not Path(entry[5]).exists(), entry
    job_uid = int(run(["id", "-u", "taskexec-job"]).stdout)
    job_gid = int(run(["id", "-g", "taskexec-job"]).stdout)
    assert job_uid != 0 and job_gid != 0
    assert "taskexec" not in run(["id", "-nG", "taskexec-job"]).stdout.split(), \
        "taskexec-job must not be able to read taskexec.conf"

    # taskexec.conf 0640 root:taskexec; /var/lib/taskexec taskexec's
    st = CONF.stat()
    assert oct(st.st_mode & 0o7777) == "0o640"
    assert (st.st_uid, st.st_gid) == (0, int(run(["getent", "group", "taskexec"]).stdout.split(":")[2]))
    st = STATE.stat()
    assert STATE.is_dir() and st.st_uid == int(run(["id", "-u", "taskexec"]).stdout)
    assert not list(STATE.iterdir()), "a fresh state directory"

    # conffiles: the config and every policy
    conffiles = (Path("/var/lib/dpkg/info/taskexec.conffiles").read_text().split())
    assert str(CONF) in conffiles
    assert sorted(Path(c).name for c in conffiles if c.endswith(".policy")) == POLICIES

    # byte-code compiled by postinst (the sandbox cannot write it), not shipped
    assert list(LIBDIR.glob("__pycache__/taskexec_shim.*.pyc")), "postinst compiles the shim"
    listed = run(["dpkg", "-L", "taskexec"]).stdout.split()
    assert not [p for p in listed if "__pycache__" in p or p.endswith(".pyc")]
    # ... and again when the default python3 changes
    shutil.rmtree(LIBDIR / "__pycache__")
    run(["/usr/share/python3/runtime.d/taskexec.rtupdate", "rtupdate", "python3", "python3"])
    assert list(LIBDIR.glob("__pycache__/taskexec_shim.*.pyc")), "the rtupdate hook compiles"


def test_service_installed_not_enabled_not_started(installed):
    # No systemd PID 1 here: postinst must neither fail nor start anything;
    # on a real host the unit is not enabled until the operator enables it.
    assert not WANTS.exists(), "the unit must not be enabled on install"
    assert not procs_running(SBIN), "installing must not start taskexecd"


def test_installed_check_shows_installed_layout(installed):
    r = run([str(SBIN), "--check"], env={"PATH": "/usr/bin:/bin"})
    eff = dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l and not l.startswith("#"))
    assert eff["TASKEXEC_JOB_USER"] == "taskexec-job"
    assert eff["TASKEXEC_TASKS_PATH"] == str(LIBDIR)
    assert eff["TASKEXEC_POLICY_DIR"] == str(ETC / "policy.d")
    assert eff["TASKEXEC_STATE_DIR"] == str(STATE)
    for name in POLICIES:
        assert "# policy %s: %s" % (name[:-len(".policy")], ETC / "policy.d" / name) in r.stdout
    # The packaged taskexec.conf documents every setting the daemon knows.
    conf = CONF.read_text()
    missing = [k for k in eff if not re.search(r"^#?%s=" % k, conf, re.M)]
    assert not missing, "settings missing from packaging/taskexec.conf: %s" % missing


def test_installed_taskexec_run_seed_task(installed):
    seed = [str(BIN), "run", "tasks.f5portalupdate.main:run", "customer_id=42", "--task-type", "etl"]
    # The packaged etl policy reads the operator's exports, never the samples
    # the tasks package carries: none there yet, a clear failure, not retried.
    r = run(seed, env={"PATH": "/usr/bin:/bin"}, cwd="/", check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "F5PORTAL_SOURCE_DIR=%s: not a directory" % (STATE / "f5exports") in r.stderr, r.stderr
    # The operator puts exports there (here: the samples, as README.Debian shows).
    shutil.copytree(LIBDIR / "tasks" / "f5portalupdate" / "sample_exports", STATE / "f5exports")
    r = run(seed, env={"PATH": "/usr/bin:/bin"}, cwd="/")
    assert json.loads(r.stdout) == {"updated_rows": 17, "customer_id": 42}, r.stderr
    db = STATE / "portal" / "portal.db"
    assert db.is_file()
    # Run in a domain: a uid of TASKEXEC_JOB_UIDS, the range's first id as group.
    st = db.stat()
    assert 2100000000 < st.st_uid <= 2100000999 and st.st_gid == 2100000000, "the job ran in a domain"
    assert st.st_mode & 0o777 == 0o664, "the next job, under another uid, can write it"


def ppid_of(pid):
    try:
        return int(Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def test_installed_daemon_confined_like_the_unit(installed, services, tmp_path):
    """The installed taskexecd with the unit's bounding set and no_new_privs
    (setpriv stands in for systemd), talking sd_notify to a socket of ours."""
    unit = UNIT.read_text()
    caps = unit_setting(unit, "CapabilityBoundingSet").split()
    assert caps and all(c.startswith("CAP_") for c in caps), caps
    assert unit_setting(unit, "NoNewPrivileges") == "yes"
    bounding = "-all," + ",".join("+" + c[4:].lower() for c in caps)

    tmp = tmp_path
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / "notify"))
    notify.settimeout(0.05)
    messages = []

    def drain_notify():
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except (socket.timeout, BlockingIOError):
                return

    http = "127.0.0.1:%d" % spare_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "TASKEXEC_REDIS_URL": services["TASKEXEC_REDIS_URL"],
        "TASKEXEC_DB_URL": services["TASKEXEC_DB_URL"],
        "TASKEXEC_QUEUE_PREFIX": "pkgtest" + uuid.uuid4().hex[:8],
        "TASKEXEC_HTTP_LISTEN": http,
        "TASKEXEC_HEARTBEAT_INTERVAL": "1s",
        "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
    }
    daemon_env = dict(env, NOTIFY_SOCKET=str(tmp / "notify"), WATCHDOG_USEC="30000000")
    cmd = ["setpriv", "--bounding-set=" + bounding, "--inh-caps=-all", "--no-new-privs", "--"]
    strace_out = tmp / "strace"
    if shutil.which("strace") and shutil.which("systemd-analyze"):
        cmd += ["strace", "-f", "-qq", "-o", str(strace_out)]
    cmd += [str(SBIN)]
    log_path = tmp / "daemon.log"
    with open(log_path, "w") as log:
        top = subprocess.Popen(cmd, env=daemon_env, stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd="/")
    daemon_pid = None
    try:
        deadline = time.monotonic() + 20
        while not any(m.startswith("READY=1") for m in messages):
            assert top.poll() is None, "taskexecd exited:\n" + log_path.read_text()
            assert time.monotonic() < deadline, "no READY=1 on NOTIFY_SOCKET:\n" + log_path.read_text()
            drain_notify()
        # strace stands between us and the daemon: signal the daemon itself.
        daemon_pid = next(p for p in procs_running(SBIN) if p == top.pid or ppid_of(p) == top.pid)

        r = run([str(BIN), "submit", "tasks.f5portalupdate.main:run", "customer_id=7",
                 "--task-type", "etl", "--wait"], env=env, timeout=60)
        lines = r.stdout.strip().splitlines()
        assert lines[1] == "COMPLETED", r.stdout + r.stderr + log_path.read_text()
        result = json.loads(lines[2])
        assert result["customer_id"] == 7 and isinstance(result["updated_rows"], int)
        # In a domain, with a uid of the range: perhaps not the uid that made
        # the database in the test before, which is why it must be group-writable.
        assert 2100000000 < (STATE / "portal" / "portal.db").stat().st_uid <= 2100000999, "ran in a domain"

        with urllib.request.urlopen("http://%s/healthz" % http, timeout=10) as resp:
            assert resp.status == 200
            json.loads(resp.read())
        with urllib.request.urlopen("http://%s/metrics" % http, timeout=10) as resp:
            assert resp.status == 200 and resp.read()
        wait_for(lambda: drain_notify() or "WATCHDOG=1" in messages, 10, "a heartbeat's WATCHDOG=1")
    finally:
        if top.poll() is None:
            os.kill(daemon_pid or top.pid, signal.SIGTERM)
            try:
                top.wait(30)
            except subprocess.TimeoutExpired:
                top.kill()
                top.wait()
        drain_notify()
        notify.close()
    text = log_path.read_text()
    assert top.returncode == 0, text
    events = [json.loads(l) for l in text.splitlines() if l.startswith("{")]
    assert any(e["event"] == "job.completed" for e in events), text
    assert not [e for e in events if e.get("level") == "error"], text
    assert any(m.startswith("STOPPING=1") for m in messages), messages
    assert "WATCHDOG=1" in messages, messages

    if strace_out.exists():
        allowed = expand_syscall_filter(unit_setting(unit, "SystemCallFilter").split())
        used = set()
        for line in strace_out.read_text().splitlines():
            m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
            if m:
                used.add(m.group(1))
        assert len(used) > 30, "strace saw too few system calls: %s" % sorted(used)
        print("system calls made by taskexecd and its job: %d, all allowed by the unit" % len(used))
        assert not sorted(used - allowed), \
            "system calls the unit's SystemCallFilter= would deny: %s" % sorted(used - allowed)


def test_unit_verifies_and_is_hardened(installed):
    if shutil.which("systemd-analyze") is None:
        unavailable("needs systemd-analyze (package systemd)")
    r = run(["systemd-analyze", "verify", str(UNIT)], check=False)
    assert r.returncode == 0 and not r.stderr.strip(), r.stderr
    r = run(["systemd-analyze", "security", "--offline=yes", str(UNIT)], check=False)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    # 2.4 before isolation domains; building them (CAP_SYS_ADMIN, four
    # namespace types, @mount) counts 0.9 more, as for any sandboxer.
    assert float(m.group(1)) <= 3.3, r.stdout
    # Jobs pass the unit's filter as well as their own: everything their own
    # filter lets through (or answers with an errno) must get through the unit's.
    src = (REPO / "executor" / "seccomp_policy.c").read_text()
    job_calls = set()
    for m in re.finditer(r"const char \*const \w+\[\] = \{(.*?)\};", src, re.S):
        job_calls |= set(re.findall(r'"([a-z0-9_]+)"', m.group(1)))
    job_calls |= set(re.findall(r'rule\(ctx, [^,]+, "([a-z0-9_]+)"', src))
    assert len(job_calls) > 100, "could not read the job filter from executor/seccomp_policy.c"
    allowed = expand_syscall_filter(unit_setting(UNIT.read_text(), "SystemCallFilter").split())
    assert not sorted(job_calls - allowed), \
        "calls the job filter allows but the unit denies: %s" % sorted(job_calls - allowed)


def test_purge_removes_the_package_but_not_data(installed):
    listed = [Path(p) for p in run(["dpkg", "-L", "taskexec"]).stdout.split()]
    files = [p for p in listed if not p.is_dir()]
    assert SBIN in files and CONF in files
    run(["dpkg", "--purge", "taskexec"], timeout=120)
    assert not dpkg_installed()
    left = [str(p) for p in files if p.exists() or p.is_symlink()]
    assert not left, "left after purge: %s" % left
    for d in (LIBDIR, ETC, Path("/usr/share/doc/taskexec"), Path("/usr/share/taskexec")):
        assert not d.exists(), "left after purge: %s" % d
    # Kept on purpose: the job data and the users that own it.
    assert (STATE / "portal" / "portal.db").is_file()
    assert user_exists("taskexec") and user_exists("taskexec-job")


# --------------------------------------------------------------------------
# the .rpm


def test_rpm_lists_what_the_deb_installs(installed):
    if shutil.which("rpmbuild") is None:
        unavailable("needs rpmbuild (package rpm)")
    run(["make", "-C", str(REPO), "rpm"], timeout=300, env=dict(os.environ, NOCHECK="1"))
    rpms = sorted((REPO / "build").glob("taskexec-%s-*.rpm" % VERSION))
    assert rpms, "make rpm made no build/taskexec-%s-*.rpm" % VERSION
    rpm = str(rpms[-1])
    fmt = "[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\\n]"
    rows = run(["rpm", "-qp", "--qf", fmt, rpm]).stdout.splitlines()
    files = {r.split()[3]: r.split()[:3] for r in rows}
    assert set(files) == set(run(["rpm", "-qlp", rpm]).stdout.split())

    for p in KEY_PATHS + ["/usr/lib/systemd/system/taskexecd.service"]:
        assert p in files, p
    assert files["/etc/taskexec/taskexec.conf"] == ["-rw-r-----", "root", "taskexec"]
    assert files["/var/lib/taskexec"] == ["drwxr-xr-x", "taskexec", "taskexec"]
    config = set(run(["rpm", "-qpc", rpm]).stdout.split())
    assert config == {"/etc/taskexec/taskexec.conf"} | {"/etc/taskexec/policy.d/" + p for p in POLICIES}
    scripts = run(["rpm", "-qp", "--scripts", rpm]).stdout
    assert "useradd" in scripts and "taskexec-job" in scripts

    # The same files as the .deb, modulo where each distribution puts things.
    def ours(paths):
        out = set()
        for p in paths:
            p = re.sub(r"^/lib/systemd/", "/usr/lib/systemd/", p.rstrip("/"))
            p = re.sub(r"\.gz$", "", p)
            if "__pycache__" in p:
                continue
            if (p in ("/usr/sbin/taskexecd", "/usr/bin/taskexec",
                      "/usr/lib/systemd/system/taskexecd.service")
                    or p.startswith(("/usr/lib/taskexec", "/etc/taskexec", "/var/lib/taskexec",
                                     "/usr/share/taskexec"))
                    or re.match(r"^/usr/share/man/man\d/.", p)
                    or p == "/usr/share/bash-completion/completions/taskexec"):
                out.add(p)
        return out

    deb = ours(l.split()[-1].lstrip(".") for l in
               run(["dpkg-deb", "-c", str(installed.deb)]).stdout.splitlines())
    rpm_set = ours(files)
    assert deb == rpm_set, "only in the .deb: %s; only in the .rpm: %s" % (
        sorted(deb - rpm_set), sorted(rpm_set - deb))
