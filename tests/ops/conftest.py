# SPDX-License-Identifier: ISC
"""Fixtures for the operations tests of taskexecd: /healthz, /metrics, logs,
--check, SIGHUP and SIGTERM, against a throwaway Redis + PostgreSQL.

Session: `services` (scripts/services start/stop in a 0755 directory under
/tmp; also stops/restarts Redis and PostgreSQL for the health tests) and
`secret_role` (a PostgreSQL role that must log in with a password, and the
DB URL carrying it).

Per test: `ops` — a fresh queue prefix, state/scratch dirs, its TASKEXEC_*
environment, `ops.daemon(...)` to start build/taskexecd on a spare HTTP port,
`ops.cli(...)`/`ops.submit(...)` for build/taskexec, and `ops.policy_dir()`
for a private copy of <repo>/policy.  Daemons still running at the end get
SIGTERM; a daemon that died on its own fails the test.

Set OPSTEST_KEEP=1 to keep the temporary directory (logs) after the run.
"""
import os
import re
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import testlib
from testlib import REPO, TASKEXEC, TASKEXECD, failed_in_call, stop_daemons

from opshelpers import http_request, spare_port, wait_for

HERE = Path(__file__).resolve().parent
TASKS_ROOT = HERE / "tasks_root"
PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))


# --------------------------------------------------------------------------
# session: services


class Services(testlib.Services):
    """scripts/services, and the outages the health tests make by hand."""

    def status(self):
        """{'redis': bool, 'postgresql': bool} from `scripts/services status`."""
        out = self.run("status", check=False).stdout
        return {name: ("%s: running" % name) in out for name in ("redis", "postgresql")}

    def stop_redis(self):
        subprocess.run(["redis-cli", "-u", self.redis_url, "shutdown", "nosave"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)
        wait_for(lambda: not self.status()["redis"], 10, "Redis to stop")

    def redis_pid(self):
        return int((self.dir / "redis" / "redis.pid").read_text().strip())

    def stop_pg(self):
        """pg_ctl stop -m fast, as scripts/services runs it (as postgres when root)."""
        pg = self.dir / "pg"
        cmd = [str(PGBIN / "pg_ctl"), "-D", str(pg / "data"), "-m", "fast", "-w", "-t", "60", "stop"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        r = subprocess.run(cmd, cwd=str(pg), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=70)
        assert r.returncode == 0, "pg_ctl stop failed: %s" % r.stdout

    def psql(self, sql, user="taskexec", password=None, check=True):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if password is not None:
            env["PGPASSWORD"] = password
        r = subprocess.run([str(PGBIN / "psql"), "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", user,
                            "-d", "taskexec", "-w", "-X", "-Atq", "-v", "ON_ERROR_STOP=1", "-c", sql],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError("psql -U %s -c %r failed: %s" % (user, sql, r.stderr))
        return r


@pytest.fixture(scope="session")
def ops_root():
    # Under /tmp with 0755: the postgres user and the job user (nobody) must reach it.
    root = Path(tempfile.mkdtemp(prefix="taskexec-ops-", dir="/tmp"))
    root.chmod(0o755)
    yield root
    if os.environ.get("OPSTEST_KEEP"):
        print("\nops test files kept in %s" % root)
    else:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def services(ops_root):
    for binary in (TASKEXECD, TASKEXEC):
        if not binary.exists():
            pytest.fail("%s is not built (run make)" % binary)
    s = Services(ops_root / "services")
    try:
        s.start()
        yield s
    finally:
        s.stop()


class SecretRole:
    def __init__(self, user, password, db_url):
        self.user = user
        self.password = password
        self.db_url = db_url


@pytest.fixture(scope="session")
def secret_role(services):
    """A superuser role that PostgreSQL lets in only with its password (scram
    over loopback TCP), and a DB URL that carries the password."""
    user = "opsuser"
    password = "OpsSecret%s" % uuid.uuid4().hex
    services.psql("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'" % (user, password))
    hba = Path(services.psql("SHOW hba_file").stdout.strip())
    hba.write_text("host all %s 127.0.0.1/32 scram-sha-256\n" % user + hba.read_text())
    services.psql("SELECT pg_reload_conf()")
    # The password is really needed, and really works.
    wait_for(lambda: services.psql("SELECT 1", user=user, check=False).returncode != 0, 10,
             "PostgreSQL to require a password of %s" % user)
    services.psql("SELECT 1", user=user, password=password)
    return SecretRole(user, password, "postgresql://%s:%s@127.0.0.1:%d/taskexec" % (user, password, services.pg_port))


# --------------------------------------------------------------------------
# per test


class Daemon(testlib.Daemon):
    """taskexecd with its HTTP endpoint."""

    def __init__(self, ops, env, piped=False):
        executor_id = env["TASKEXEC_EXECUTOR_ID"]
        super().__init__(env, ops.dir, ops.dir / ("taskexecd-%s.log" % executor_id),
                         ops.dir / ("taskexecd-%s.stderr" % executor_id), piped=piped)
        self.http = env["TASKEXEC_HTTP_LISTEN"]

    def get(self, path, method="GET", timeout=5.0):
        return http_request(self.http, method, path, timeout=timeout)

    def wait_healthy(self, timeout=15):
        def ok():
            if not self.alive():
                pytest.fail("taskexecd %s exited with %s\n%s" % (self.executor_id, self.proc.returncode, self.tail()))
            try:
                return self.get("/healthz", timeout=3).status == 200
            except OSError:
                return False
        wait_for(ok, timeout, "taskexecd %s to answer /healthz with 200" % self.executor_id, interval=0.1)


class Ops:
    """One test's prefix, directories, environment, daemons and CLI."""

    def __init__(self, name, root, services):
        self.services = services
        self.prefix = "ops-%s-%s" % (re.sub(r"[^A-Za-z0-9]+", "-", name)[:40].strip("-"), uuid.uuid4().hex[:6])
        self.dir = root / "tests" / self.prefix
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o755)
        for sub in ("state", "scratch"):
            (self.dir / sub).mkdir()
            (self.dir / sub).chmod(0o755)
        testlib.seed_exports(self.dir / "state")       # for the seed task's etl policy
        self.daemons = []
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("TASKEXEC_") and k != "ALLOWED_MODULES"}
        self.env.update({
            "TASKEXEC_REDIS_URL": services.redis_url,
            "TASKEXEC_DB_URL": services.db_url,
            "TASKEXEC_QUEUE_PREFIX": self.prefix,
            "TASKEXEC_EXECUTOR_ID": self.prefix + "-d1",
            "TASKEXEC_HEARTBEAT_INTERVAL": "1s",
            "TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % spare_port(),
            # The repo first: policies expand ${TASKS_ROOT} to the first root.
            "TASKEXEC_TASKS_PATH": "%s:%s" % (REPO, TASKS_ROOT),
            "TASKEXEC_ALLOWED_MODULES": "tasks,opstasks",
            "TASKEXEC_POLICY_DIR": str(REPO / "policy"),
            "TASKEXEC_STATE_DIR": str(self.dir / "state"),
            "TASKEXEC_SCRATCH_DIR": str(self.dir / "scratch"),
            "TASKEXEC_SHUTDOWN_TIMEOUT": "10s",
        })

    def policy_dir(self):
        """A private copy of <repo>/policy, made this test's TASKEXEC_POLICY_DIR."""
        d = self.dir / "policy"
        if not d.exists():
            shutil.copytree(REPO / "policy", d)
            d.chmod(0o755)
        self.env["TASKEXEC_POLICY_DIR"] = str(d)
        return d

    def daemon(self, env=None, wait_healthy=True, piped=False):
        """Start build/taskexecd (piped: see testlib.Daemon) and wait for its /healthz."""
        e = dict(self.env)
        e["TASKEXEC_EXECUTOR_ID"] = "%s-d%d" % (self.prefix, len(self.daemons) + 1)
        if self.daemons:
            e["TASKEXEC_HTTP_LISTEN"] = "127.0.0.1:%d" % spare_port()
        e.update(env or {})
        d = Daemon(self, e, piped=piped)
        self.daemons.append(d)
        if wait_healthy:
            d.wait_healthy()
        return d

    def run(self, binary, *args, env=None, timeout=60):
        """Run binary with this test's environment plus env (a value None removes the variable)."""
        e = dict(self.env)
        for k, v in (env or {}).items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = v
        return subprocess.run([str(binary), *map(str, args)], env=e, cwd=str(self.dir), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)

    def cli(self, *args, env=None, timeout=60):
        return self.run(TASKEXEC, *args, env=env, timeout=timeout)

    def taskexecd(self, *args, env=None):
        """build/taskexecd ARGS (--check, --version) with this test's environment (plus env)."""
        return self.run(TASKEXECD, *args, env=env, timeout=30)

    def check(self, env=None):
        """taskexecd --check with this test's environment (plus env)."""
        return self.taskexecd("--check", env=env)

    def submit(self, entry, *kv, task_type="ad_hoc", wait=True, expect="COMPLETED", extra=(), env=None,
               timeout=30):
        """taskexec submit ENTRY k=v --task-type T [--wait]; returns the job id.

        With wait, asserts the printed status is expect."""
        args = ["submit", entry, *kv, "--task-type", task_type, *extra] + (["--wait"] if wait else [])
        r = self.cli(*args, env=env, timeout=timeout)
        lines = r.stdout.strip().splitlines()
        assert lines, "taskexec %s printed nothing (exit %d): %s%s" % (
            " ".join(args), r.returncode, r.stderr, "".join("\n" + d.tail() for d in self.daemons))
        job_id = lines[0].strip()
        if wait:
            status = lines[1].strip() if len(lines) > 1 else None
            assert status == expect, "taskexec %s -> exit %d, status %s, expected %s\nstdout: %s\nstderr: %s%s" % (
                " ".join(args), r.returncode, status, expect, r.stdout, r.stderr,
                "".join("\n" + d.tail() for d in self.daemons))
            assert r.returncode == (0 if expect == "COMPLETED" else 1), r
        else:
            assert r.returncode == 0, "taskexec %s -> exit %d: %s" % (" ".join(args), r.returncode, r.stderr)
        return job_id

    def close(self, failed=False):
        """SIGTERM every daemon still running; returns the problems seen (died early, hung)."""
        return stop_daemons(self.daemons, failed)


@pytest.fixture
def ops(request, ops_root, services):
    o = Ops(request.node.name, ops_root, services)
    yield o
    problems = o.close(failed=failed_in_call(request))
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture(scope="session")
def make_ops(ops_root, services):
    """make_ops(name) -> Ops, for fixtures wider than one test; call .close() yourself."""
    return lambda name: Ops(name, ops_root, services)
