# SPDX-License-Identifier: ISC
"""What chaos.py and scale.py share on top of tests/testlib.py (services,
PostgreSQL rows, daemons, the producer step): the chaos policy and
environment, run directories, and the report's helpers.

stdlib + python3-redis + python3-psycopg2; run with /usr/bin/python3.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import testlib  # noqa: E402
from testlib import REPO  # noqa: E402

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


class Services(testlib.Services):
    def stop(self):
        try:
            super().stop()
        except Exception as e:   # never hide the real result behind a cleanup error
            log("services", "stop failed: %s" % e)


class DB(testlib.DB):
    retry_s = 60     # through a restart-pg with its pause
    application_name = "chaos-harness"


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


class Daemon(testlib.Daemon):
    """One build/taskexecd process (one incarnation of an executor id),
    standard error in its log."""

    binary = TASKEXECD

    def __init__(self, root, env, executor_id, incarnation=1, piped=False):
        self.incarnation = incarnation
        super().__init__(dict(env, TASKEXEC_EXECUTOR_ID=executor_id), root,
                         root / "logs" / ("%s.%d.log" % (executor_id, incarnation)), piped=piped)

    def ready(self, rds, prefix):
        """Its heartbeat key holds its own pid (a restarted id may find the old key still there)."""
        try:
            doc = rds.get(testlib.key(prefix, "heartbeat", self.executor_id))
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

    def rss_kb(self):
        try:
            for line in open("/proc/%d/status" % self.pid):
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return None


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
