"""What chaos.py and scale.py share: throwaway services, a policy dir, daemons,
the documented producer step, and a PostgreSQL helper that survives restarts.

stdlib + python3-redis + python3-psycopg2; run with /usr/bin/python3.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import psycopg2
import psycopg2.extras
import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SERVICES = REPO / "scripts" / "services"
TASKEXECD = Path(os.environ.get("CHAOS_TASKEXECD", REPO / "build" / "taskexecd"))
PYTHON = "/usr/bin/python3"
TASK_TYPE = "chaos"
TERMINAL = ("COMPLETED", "FAILED")

# The policy of the `chaos` task type: quick to retry, 3 retries, a writable
# marker directory passed to the tasks as CHAOS_MARKER_DIR.
CHAOS_POLICY = """\
; chaos -- tests/chaos: short back-off so retries happen within the run.
[job]
priority = normal
max_priority = high
timeout = 30s
max_timeout = 2m
max_retries = 3
retries_limit = 5
backoff_base = 200ms
backoff_max = 2s

[limits]
memory = 512M
open_files = 64
file_size = 16M
processes = 64

[network]
mode = none

[paths]
write = ${STATE_DIR}/chaos

[env]
CHAOS_MARKER_DIR = ${STATE_DIR}/chaos
"""


def log(tag, msg):
    print("%s %s: %s" % (time.strftime("%H:%M:%S"), tag, msg), file=sys.stderr, flush=True)


def iso_now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def percentile(values, p):
    """Nearest-rank percentile of a sorted list (p in 0..100)."""
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
    return values[k]


class Services:
    """scripts/services in DIR: Redis (AOF on) + PostgreSQL."""

    def __init__(self, d):
        self.dir = Path(d)
        self.redis_url = self.db_url = None

    def _run(self, *args, timeout=180):
        r = subprocess.run([str(SERVICES), args[0], str(self.dir), *map(str, args[1:])], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("scripts/services %s failed (%d):\n%s%s" % (" ".join(map(str, args)), r.returncode,
                                                                          r.stdout, r.stderr))
        return r.stdout

    def start(self):
        for line in self._run("start").splitlines():
            k, _, v = line.partition("=")
            if k == "TASKEXEC_REDIS_URL":
                self.redis_url = v
            elif k == "TASKEXEC_DB_URL":
                self.db_url = v
        if not (self.redis_url and self.db_url):
            raise RuntimeError("scripts/services start printed no URLs")

    def stop(self):
        try:
            self._run("stop")
        except Exception as e:   # never hide the real result behind a cleanup error
            log("services", "stop failed: %s" % e)

    def restart_redis(self, pause=0):
        self._run("restart-redis", pause)

    def restart_redis_empty(self, pause=0):
        """Restart Redis without its data, as after a restart without persistence."""
        self._run("restart-redis-empty", pause)

    def restart_pg(self, pause=0):
        self._run("restart-pg", pause)


class DB:
    """psycopg2, autocommit, reconnecting through a PostgreSQL restart."""

    def __init__(self, url):
        self.url = url
        self.conn = None

    def query(self, sql, args=(), retry_s=60):
        deadline = time.monotonic() + retry_s
        while True:
            try:
                if self.conn is None or self.conn.closed:
                    self.conn = psycopg2.connect(self.url, connect_timeout=5, application_name="chaos-harness")
                    self.conn.autocommit = True
                with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                    cur.execute(sql, args)
                    return [dict(r) for r in cur.fetchall()] if cur.description else []
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                self.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.3)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except psycopg2.Error:
                pass
            self.conn = None


def make_root(prefix):
    # Under /tmp with 0755: the postgres user and the job user (nobody) must reach it.
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o755)
    for sub in ("state", "scratch", "logs"):
        (root / sub).mkdir()
        (root / sub).chmod(0o755)
    return root


def make_policy_dir(root):
    d = root / "policy"
    shutil.copytree(REPO / "policy", d)
    (d / ("%s.policy" % TASK_TYPE)).write_text(CHAOS_POLICY)
    return d


def compile_tasks():
    # The sandbox cannot write __pycache__: compile once, as `make` does for tasks/.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(HERE / "chaostasks")], check=True)


def daemon_env(root, services, policy_dir, prefix, concurrency, heartbeat, log_level="info"):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_")}
    env.update({
        "TASKEXEC_REDIS_URL": services.redis_url,
        "TASKEXEC_DB_URL": services.db_url,
        "TASKEXEC_QUEUE_PREFIX": prefix,
        "TASKEXEC_CONCURRENCY": str(concurrency),
        "TASKEXEC_HEARTBEAT_INTERVAL": heartbeat,
        "TASKEXEC_HTTP_LISTEN": "off",
        "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
        # The repo first: policies expand ${TASKS_ROOT} to the first root.
        "TASKEXEC_TASKS_PATH": "%s:%s" % (REPO, HERE),
        "TASKEXEC_ALLOWED_MODULES": "tasks,chaostasks",
        "TASKEXEC_POLICY_DIR": str(policy_dir),
        "TASKEXEC_STATE_DIR": str(root / "state"),
        "TASKEXEC_SCRATCH_DIR": str(root / "scratch"),
        "TASKEXEC_LOG_LEVEL": log_level,
    })
    return env


class Daemon:
    """One build/taskexecd process (one incarnation of an executor id)."""

    def __init__(self, root, env, executor_id, incarnation=1, piped=False):
        """piped: standard output is a pipe that a thread copies to the log
        file, and that stall_reader() can stop reading for a while."""
        self.executor_id = executor_id
        self.incarnation = incarnation
        self.log_path = root / "logs" / ("%s.%d.log" % (executor_id, incarnation))
        self.reading = threading.Event()
        self.reading.set()
        e = dict(env, TASKEXEC_EXECUTOR_ID=executor_id)
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([str(TASKEXECD)], env=e, cwd=str(root), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE if piped else out, stderr=subprocess.STDOUT)
        if piped:
            threading.Thread(target=self._copy, daemon=True).start()
        self.pid = self.proc.pid
        self.started = time.time()
        self.killed_at = None
        self.exit_status = None

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
        """Stop reading its standard output for SECONDS, as a stuck log shipper would."""
        self.reading.clear()
        time.sleep(seconds)
        self.reading.set()

    def alive(self):
        return self.proc.poll() is None

    def ready(self, rds, prefix):
        """Its heartbeat key holds its own pid (a restarted id may find the old key still there)."""
        try:
            doc = rds.get("{%s}:heartbeat:%s" % (prefix, self.executor_id))
        except redis.RedisError:
            return False
        if not doc:
            return False
        try:
            return json.loads(doc).get("pid") == self.pid
        except ValueError:
            return False

    def wait_ready(self, rds, prefix, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("taskexecd %s exited with %s at start:\n%s"
                                   % (self.executor_id, self.proc.returncode, self.tail()))
            if self.ready(rds, prefix):
                return True
            time.sleep(0.05)
        return False

    def kill(self):
        self.killed_at = time.time()
        self.proc.send_signal(signal.SIGKILL)
        self.exit_status = self.proc.wait(10)

    def terminate(self, timeout):
        """SIGTERM; returns the exit status, or None when it had to be SIGKILLed."""
        if not self.alive():
            self.exit_status = self.proc.returncode
            return self.exit_status
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_status = self.proc.wait(timeout)
            return self.exit_status
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def rss_kb(self):
        try:
            for line in open("/proc/%d/status" % self.pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None

    def tail(self, n=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def push(rds, prefix, payload, priority="normal"):
    """The producer step of taskexec-protocol(7): MULTI; RPUSH; ZADD wake; EXEC."""
    pipe = rds.pipeline(transaction=True)
    pipe.rpush("{%s}:queue:%s" % (prefix, priority), payload)
    pipe.zadd("{%s}:wake" % prefix, {"w": 0})
    pipe.execute()


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
    q, wake = "{%s}:queue:%s" % (prefix, priority), "{%s}:wake" % prefix
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


def redis_leftovers(rds, prefix):
    """Entries still in the queues, the delayed set or any processing list."""
    left = {}
    for q in ("high", "normal", "low"):
        n = rds.llen("{%s}:queue:%s" % (prefix, q))
        if n:
            left["queue:" + q] = n
    n = rds.zcard("{%s}:delayed" % prefix)
    if n:
        left["delayed"] = n
    for k in rds.scan_iter(match="{%s}:processing:*" % prefix, count=1000):
        n = rds.llen(k)
        if n:
            left[k.split(":", 1)[1] if isinstance(k, str) else k] = n
    return left


def table(rows, headers=("what", "value")):
    w = [max(len(str(r[i])) for r in list(rows) + [headers]) for i in range(len(headers))]
    line = "+-" + "-+-".join("-" * x for x in w) + "-+"
    out = [line, "| " + " | ".join(str(h).ljust(w[i]) for i, h in enumerate(headers)) + " |", line]
    for r in rows:
        out.append("| " + " | ".join(str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i])
                                     for i, c in enumerate(r)) + " |")
    out.append(line)
    return "\n".join(out)
