# SPDX-License-Identifier: ISC
"""The harness every suite here shares (tests/conftest.py puts this directory
on sys.path; tests/chaos imports it by path): polling, a throwaway Redis +
PostgreSQL (Services), PostgreSQL rows that survive a restart (DB), a
taskexecd process and its log (Daemon), and the documented producer step
(push, push_batch).

pytest is imported only where a wait fails, so that the chaos scripts run on
stdlib + python3-redis + python3-psycopg2.
"""
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg2
import psycopg2.extras
import redis

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "scripts" / "services"
# ITEST_TASKEXECD / ITEST_TASKEXEC point the suites at other binaries (e.g. an installed build).
TASKEXECD = Path(os.environ.get("ITEST_TASKEXECD", REPO / "build" / "taskexecd"))
TASKEXEC = Path(os.environ.get("ITEST_TASKEXEC", REPO / "build" / "taskexec"))
SAMPLE_EXPORTS = REPO / "tasks" / "f5portalupdate" / "sample_exports"


def integration_fixtures():
    """The integration harness's fixtures (tests/integration/conftest.py: real
    Redis, real PostgreSQL, real daemons, and `client`), for another suite's
    conftest: globals().update(testlib.integration_fixtures()).  pytest_plugins
    may only stand in the top conftest, so the harness is loaded by path, once."""
    itest = REPO / "tests" / "integration"
    if str(itest) not in sys.path:
        sys.path.insert(0, str(itest))      # ithelpers, as the harness imports it
    harness = sys.modules.get("itest_conftest")
    if harness is None:
        spec = importlib.util.spec_from_file_location("itest_conftest", itest / "conftest.py")
        harness = importlib.util.module_from_spec(spec)
        sys.modules["itest_conftest"] = harness
        spec.loader.exec_module(harness)
    return {name: value for name, value in vars(harness).items()
            if hasattr(value, "_pytestfixturefunction")}


def daemon_env(d, urls, prefix, **extra):
    """The environment of a taskexecd (or taskexec) of queue PREFIX on the
    integration tasks, against the services of URLS (TASKEXEC_REDIS_URL and
    TASKEXEC_DB_URL, as scripts/services prints them), its state and scratch
    under directory D; EXTRA overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_") and k != "ALLOWED_MODULES"}
    for sub in ("state", "scratch"):
        (d / sub).mkdir(exist_ok=True)
        (d / sub).chmod(0o755)
    env.update({
        "TASKEXEC_REDIS_URL": urls["TASKEXEC_REDIS_URL"], "TASKEXEC_DB_URL": urls["TASKEXEC_DB_URL"],
        "TASKEXEC_QUEUE_PREFIX": prefix, "TASKEXEC_HEARTBEAT_INTERVAL": "1s", "TASKEXEC_HTTP_LISTEN": "off",
        "TASKEXEC_TASKS_PATH": "%s:%s" % (REPO, REPO / "tests" / "integration" / "tasks_root"),
        "TASKEXEC_ALLOWED_MODULES": "tasks,itasks",
        "TASKEXEC_POLICY_DIR": str(REPO / "policy"), "TASKEXEC_STATE_DIR": str(d / "state"),
        "TASKEXEC_SCRATCH_DIR": str(d / "scratch"), "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
        "TASKEXEC_EXECUTOR_ID": prefix + "-d",
    })
    env.update(extra)
    return env


def fail(message):
    """Fail the running test (pytest.fail)."""
    import pytest
    pytest.fail(message)


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns something truthy; fail after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def spare_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def failed_in_call(request):
    """Whether the test that `request` belongs to failed in its call phase."""
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


def duration_s(text, default=30.0):
    """A TASKEXEC_* duration ('5s', '200ms', '2m') in seconds; default when it does not parse."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        return default
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def seed_exports(state_dir):
    """Put the seed task's sample exports where the shipped etl policy reads
    exports, ${STATE_DIR}/f5exports, as an operator puts the real ones."""
    shutil.copytree(SAMPLE_EXPORTS, Path(state_dir) / "f5exports", dirs_exist_ok=True)


def key(prefix, *parts):
    """A Redis key of a queue prefix: key('P', 'queue', 'high') -> '{P}:queue:high'."""
    return ":".join(["{%s}" % prefix, *parts])


# --------------------------------------------------------------------------
# Redis + PostgreSQL


class Services:
    """scripts/services in DIR: a throwaway Redis (AOF on) and PostgreSQL."""

    def __init__(self, d):
        self.dir = Path(d)
        self.redis_url = self.db_url = None
        self.redis_port = self.pg_port = None

    def run(self, command, *args, check=True, timeout=180):
        """scripts/services COMMAND DIR ARGS; raises on a non-zero exit when check."""
        r = subprocess.run([str(SERVICES), command, str(self.dir), *map(str, args)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise RuntimeError("scripts/services %s failed (%d):\n%s%s"
                               % (" ".join(map(str, (command,) + args)), r.returncode, r.stdout, r.stderr))
        return r

    def start(self):
        out = self.run("start").stdout
        for line in out.splitlines():
            k, _, v = line.partition("=")
            if k == "TASKEXEC_REDIS_URL":
                self.redis_url = v
            elif k == "TASKEXEC_DB_URL":
                self.db_url = v
        if not (self.redis_url and self.db_url):
            raise RuntimeError("scripts/services start printed no URLs:\n" + out)
        self.redis_port = int(re.search(r":(\d+)/", self.redis_url).group(1))
        self.pg_port = int(re.search(r":(\d+)/", self.db_url).group(1))

    def stop(self):
        self.run("stop")

    def restart_redis(self, pause=0):
        """Stop Redis, wait `pause` seconds, start it again (same port, AOF kept)."""
        self.run("restart-redis", pause)

    def restart_redis_empty(self, pause=0):
        """Restart Redis without its data, as after a restart without persistence."""
        self.run("restart-redis-empty", pause)

    def restart_pg(self, pause=0):
        """Stop PostgreSQL (fast), wait `pause` seconds, start it again; only
        starts it when it is down already."""
        self.run("restart-pg", pause)


class DB:
    """Rows of schema taskexec as dicts, autocommit; reconnects (for up to
    retry_s) when PostgreSQL restarts."""

    retry_s = 30
    application_name = None

    def __init__(self, url):
        self.url = url
        self.conn = None

    def query(self, sql, args=(), retry_s=None):
        deadline = time.monotonic() + (self.retry_s if retry_s is None else retry_s)
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    extra = {"application_name": self.application_name} if self.application_name else {}
                    self.conn = psycopg2.connect(self.url, connect_timeout=5, **extra)
                    self.conn.autocommit = True
                with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, args)
                    return [dict(r) for r in cur.fetchall()] if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.2)

    def job(self, job_id):
        rows = self.query("SELECT * FROM taskexec.jobs WHERE job_id = %s", (job_id,))
        return rows[0] if rows else None

    def attempts(self, job_id):
        return self.query("SELECT * FROM taskexec.attempts WHERE job_id = %s ORDER BY attempt", (job_id,))

    def executor(self, executor_id):
        rows = self.query("SELECT * FROM taskexec.executors WHERE executor_id = %s", (executor_id,))
        return rows[0] if rows else None

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
            self.conn = None


# --------------------------------------------------------------------------
# taskexecd


def _parse(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


class Daemon:
    """One build/taskexecd process, its standard output in log_path.

    err_path: where standard error goes; None puts it in the log too.
    piped: standard output is a pipe that a thread copies to the log, and
    that `reading` (a threading.Event) or stall_reader() can stop reading
    for a while, as a stuck log shipper would."""

    binary = TASKEXECD

    def __init__(self, env, cwd, log_path, err_path=None, piped=False):
        self.executor_id = env["TASKEXEC_EXECUTOR_ID"]
        self.env = env
        self.log_path = Path(log_path)
        self.err_path = Path(err_path) if err_path else None
        self.shutdown_s = duration_s(env.get("TASKEXEC_SHUTDOWN_TIMEOUT", "30s"))
        self.expected_exit = False       # killed or stopped by the harness, not died
        self.killed_at = None
        self.exit_status = None
        self.reading = threading.Event()
        self.reading.set()
        with open(self.log_path, "wb") as out, open(self.err_path or os.devnull, "wb") as err:
            self.proc = subprocess.Popen([str(self.binary)], env=env, cwd=str(cwd), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if piped else out,
                                         stderr=err if self.err_path else subprocess.STDOUT)
        if piped:
            threading.Thread(target=self._copy, daemon=True).start()
        self.pid = self.proc.pid
        self.started = time.time()

    def _copy(self):
        fd = self.proc.stdout.fileno()
        with open(self.log_path, "ab") as out:
            while True:
                self.reading.wait()
                data = os.read(fd, 65536)
                if not data:
                    return
                out.write(data)
                out.flush()

    def stall_reader(self, seconds):
        """Stop reading its standard output for SECONDS (piped only)."""
        self.reading.clear()
        time.sleep(seconds)     # the stall itself
        self.reading.set()

    def alive(self):
        return self.proc.poll() is None

    # ---- its log

    def raw_lines(self):
        try:
            return self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def stderr(self):
        return self.err_path.read_text(errors="replace") if self.err_path else ""

    def log_lines(self):
        """Every line of standard output: parsed JSON, or {'raw': line} when it is not."""
        return [doc if doc is not None else {"raw": line} for line, doc in ((l, _parse(l)) for l in self.raw_lines())]

    def events(self, event=None):
        """The log lines that are JSON objects, optionally only those of one event."""
        return [doc for doc in map(_parse, self.raw_lines())
                if isinstance(doc, dict) and (event is None or doc.get("event") == event)]

    def wait_event(self, event, timeout=10, where=None):
        """Wait for a line of event (matching where(doc), if given); returns it.
        Fails at once if the daemon exits unexpectedly."""
        def find():
            if not self.alive() and not self.expected_exit:
                fail("taskexecd %s exited with %s\n%s" % (self.executor_id, self.proc.returncode, self.tail()))
            for doc in self.events(event):
                if where is None or where(doc):
                    return doc
            return None
        return wait_for(find, timeout, "log event %s from %s" % (event, self.executor_id))

    def tail(self, n=60):
        out = "\n".join(self.raw_lines()[-n:])
        if self.err_path is None:
            return out
        return "--- %s stdout (last %d) ---\n%s\n--- stderr ---\n%s" % (
            self.executor_id, n, out, "\n".join(self.stderr().splitlines()[-n:]))

    # ---- signals

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self):
        """SIGKILL, as a crash would; returns once the process is gone."""
        self.expected_exit = True
        self.killed_at = time.time()
        self.signal(signal.SIGKILL)
        self.exit_status = self.proc.wait(10)

    def stop(self, timeout=None):
        """SIGTERM and reap()."""
        self.expected_exit = True
        self.signal(signal.SIGTERM)
        return self.reap(timeout)

    def reap(self, timeout=None):
        """Wait for the exit (default: its shutdown timeout + 10 s), SIGKILL
        after that.  Returns the exit status, or None when it had to be
        SIGKILLed."""
        try:
            self.exit_status = self.proc.wait(self.shutdown_s + 10 if timeout is None else timeout)
            return self.exit_status
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def terminate(self, timeout=None):
        """stop(), failing the test when the daemon ignores SIGTERM; returns the exit status."""
        status = self.stop(timeout)
        if status is None:
            fail("taskexecd %s did not exit within %ss of SIGTERM\n%s"
                 % (self.executor_id, self.shutdown_s + 10 if timeout is None else timeout, self.tail()))
        return status


def stop_daemons(daemons, failed):
    """At a test's end: SIGTERM every daemon still running and wait for it.
    Returns the problems seen (a daemon that died on its own, one that
    ignored SIGTERM); prints the logs when the test failed."""
    problems = []
    for d in daemons:
        if not d.alive() and not d.expected_exit:
            problems.append("taskexecd %s died during the test (exit %s)\n%s"
                            % (d.executor_id, d.proc.returncode, d.tail()))
        elif failed:
            print("\n" + d.tail(120))
    live = [d for d in daemons if d.alive()]
    for d in live:
        d.expected_exit = True
        d.signal(signal.SIGTERM)
    for d in live:
        if d.reap() is None:
            problems.append("taskexecd %s ignored SIGTERM for %ss\n%s" % (d.executor_id, d.shutdown_s + 10, d.tail()))
    return problems


# --------------------------------------------------------------------------
# the producer step of taskexec-protocol(7)


def push(rds, prefix, payload, priority="normal"):
    """MULTI; RPUSH {P}:queue:<priority> payload; ZADD {P}:wake 0 w; EXEC.

    A dict payload is dumped to JSON, str and bytes are sent as they are.
    Returns what was sent."""
    if not isinstance(payload, (str, bytes)):
        payload = json.dumps(payload)
    pipe = rds.pipeline(transaction=True)
    pipe.rpush(key(prefix, "queue", priority), payload)
    pipe.zadd(key(prefix, "wake"), {"w": 0})
    pipe.execute()
    return payload


def batch_pusher(url):
    """A client for push_batch: replies passed through untouched, so that
    commands queued inside MULTI ("QUEUED") are not parsed as their results."""
    r = redis.Redis.from_url(url, socket_timeout=60)
    for cmd in ("RPUSH", "ZADD", "MULTI", "EXEC"):
        r.set_response_callback(cmd, lambda resp, **kw: resp)
    return r


def push_batch(raw, prefix, payloads, priority="normal"):
    """The producer step once per payload, many of them sent in one round trip
    (each job still its own MULTI; RPUSH; ZADD wake; EXEC)."""
    q, wake = key(prefix, "queue", priority), key(prefix, "wake")
    pipe = raw.pipeline(transaction=False)
    for p in payloads:
        pipe.execute_command("MULTI")
        pipe.execute_command("RPUSH", q, p)
        pipe.execute_command("ZADD", wake, 0, "w")
        pipe.execute_command("EXEC")
    replies = pipe.execute()
    for i in range(3, len(replies), 4):
        if not isinstance(replies[i], list) or len(replies[i]) != 2:
            raise RuntimeError("producer MULTI/EXEC failed: %r" % (replies[i - 3:i + 1],))


def fill_inodes(d):
    """Use up every inode of the file system of directory D, so that making a
    directory there (a scratch dir) fails with ENOSPC; returns the filler
    directory to remove."""
    filler = d / "filler"
    filler.mkdir()
    n = 0
    while True:
        try:
            (filler / str(n)).touch()
        except OSError:
            return filler
        n += 1
