#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""make bench: what taskexec costs on this machine, side by side with RQ and Celery.

taskexec is measured twice, as two systems: "taskexec" ([start] mode = fresh,
a new interpreter per attempt) and "taskexec-warm" ([start] mode = warm, a
fork of the job slot's warm server), both on the ad_hoc task type from policy
copies in the temporary directory that differ only in that key.

One run measures, on one Redis (taskexec DB 0, RQ DB 1, Celery DB 2) and one
PostgreSQL that it starts itself (scripts/services, under /tmp):

  (a) `taskexec run benchtasks.noop:noop` (fresh), median wall time over
      interleaved runs, vs `/usr/bin/python3 -I -S -c 'import json'`
                                                          target <= 5 ms (issue 8)
      and the same with TASKEXEC_ISOLATION=weak (the difference is the
      domain: namespaces, mounts, tmpfs) and with mode = warm, reported
  (b) enqueue -> start latency at a steady 20 jobs/s, concurrency 2 (free
      slots), p50/p95/p99 for each system       taskexec target p50 <= 5 ms,
                                                p99 <= 25 ms (requirement 500 ms)
        taskexec: push time (the documented producer MULTI) -> jobs.started_at
        RQ:       time before Queue.enqueue -> job.started_at (set in the work-horse)
        Celery:   time before send_task, carried in the task's arguments ->
                  time.time() on entry to the task, in the pool process
  (c) jobs/s for no-op jobs and for 20 ms jobs (time.sleep(0.02)) at
      concurrency 1, 2 and 4, for each system: N jobs (default 600) are put in
      the queue while no worker runs, the workers are started, and the rate is
      N / (first job start -> last job end) by the systems' own timestamps,
      so neither start-up nor the producer is measured
                      taskexec / RQ >= 2x for no-op jobs at concurrency 2
  (d) CPU per job of the supervising process (taskexecd; the `rq worker`
      processes; Celery's main process), of all the system's processes
      (including job processes, work-horses, pool processes) and of Redis +
      PostgreSQL; peak RSS; taskexecd's CPU and Redis calls when idle
                                    daemon target <= 0.5 ms/job, idle ~0
      for taskexec warm also the VmRSS of the warm servers (taskexecd's
      direct children) and the children's attempts.max_rss_kb
  (e) queue -> task code start at a steady 50 jobs/s, concurrency 2: the
      enqueue time against time.time() on entry to the task (taskexec:
      benchtasks.noop.stamp returns it into jobs.result; RQ: rqtasks.stamp
      RPUSHes it; Celery: its no-op's entry stamp)
                                    taskexec warm p50 <= 2 ms, p99 <= 10 ms
  (f) with --perf: one more warm no-op point at concurrency 2 under
      `perf record -a -g`, its samples sorted into page faults, TLB flushes,
      fork/exit, other kernel, Python userland (servers and forks), taskexecd,
      PostgreSQL, Redis, other (not a figure: perf's cost is in it)
  (g) the fork floor: a bare python3 (json, inspect, logging, traceback
      imported, gc.freeze()) forking and reaping a no-op child per job, one
      loop: jobs/s, CPU per child and parent, minor faults per child -- what
      this machine's page-fault cost leaves any fork-per-job design
  Issue 10 targets: warm no-op jobs/s at c=2 >= 0.5x Celery and >= 4x RQ;
  20 ms jobs/s at c=4 >= 0.9x Celery.

and writes build/bench/report.md, report.png (three panels: latency CDF at
20 jobs/s; queue -> task code start CDF at 50 jobs/s; throughput vs
concurrency) and report.json (every figure), or into
--out DIR.  Misses are reported, not hidden: the exit status is 0 unless
something could not be measured.

Options: --out DIR, --jobs N (per throughput point), --quick (a trial, not the
figures), --keep (keep the temporary directory: logs, services),
--skip-rq, --skip-celery, --perf.
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import redis

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BUILD = REPO / "build"
# BENCH_BUILD=DIR measures the binaries of another build (e.g. an older commit
# exported and built elsewhere); its runner-shim is the one next to that DIR.
BIN = Path(os.environ.get("BENCH_BUILD", BUILD))
TASKEXEC = BIN / "taskexec"
TASKEXECD = BIN / "taskexecd"
SERVICES = REPO / "scripts" / "services"
DEFAULT_OUT = BUILD / "bench"
PYTHON = "/usr/bin/python3"
RQ = "/usr/bin/rq"

PREFIX = "bench"
EXECUTOR_ID = "bench-1"
TASK_TYPE = "ad_hoc"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

# taskexec twice: the ad_hoc task type with [start] mode = fresh (a new
# interpreter per attempt) and with mode = warm (a fork of the slot's warm
# server), from policy copies in the bench's temporary directory.
SYSTEMS = ("taskexec", "taskexec-warm", "rq", "celery")
TE_SYSTEMS = ("taskexec", "taskexec-warm")
START_MODE = {"taskexec": "fresh", "taskexec-warm": "warm"}
LABEL = {"taskexec": "taskexec fresh", "taskexec-warm": "taskexec warm", "rq": "RQ", "celery": "Celery"}
KINDS = ("noop", "sleep20")
KIND_LABEL = {"noop": "no-op", "sleep20": "20 ms (sleep 0.02)"}
CONCURRENCY = (1, 2, 4)
LAT_RATE = 20
LAT_CONCURRENCY = 2
STAMP_RATE = 50             # queue -> task code start (issue 10)
SLEEP_MS = 20

# Targets (issues 2 and 3, performance sections).
T_RUN_OVERHEAD_MS = 5.0
T_LAT_P50_MS = 5.0
T_LAT_P99_MS = 25.0
T_LAT_REQ_MS = 500.0        # the product requirement: queue -> RUNNING < 500 ms
T_RATIO = 2.0
T_CPU_PER_JOB_MS = 0.5
T_IDLE_CPU_MS = 10.0        # "about 0": at most 10 ms of CPU in 10 s idle (0.1 % of a core)
T_IDLE_REDIS_PER_HB = 5.0   # "at most a few Redis calls per heartbeat interval"
# Issue 10 (warm start), performance section.
T_WARM_VS_CELERY = 0.5      # no-op jobs/s at concurrency 2, warm / Celery prefork
T_WARM_VS_RQ = 4.0          # ... warm / RQ
T_WARM_SLEEP_VS_CELERY = 0.9    # 20 ms jobs/s at concurrency 4, warm / Celery
T_STAMP_P50_MS = 2.0        # queue -> task code start at 50 jobs/s
T_STAMP_P99_MS = 10.0
HEARTBEAT_S = 1.0
OTHERS_MARK_PCT = 25.0      # mark figures measured while other processes used more of the machine
DAGGER = "†"


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


class CannotMeasure(Exception):
    pass


# ---------------------------------------------------------------------------
# small helpers

def pct(values, p):
    """Nearest-rank percentile of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, -(-p * len(s) // 100) - 1))
    return s[int(k)]


def iso_utc(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def rq_time(text):
    """RQ's timestamps: naive UTC '%Y-%m-%dT%H:%M:%S.%fZ' -> epoch seconds."""
    if isinstance(text, bytes):
        text = text.decode()
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def read_stat(pid):
    """(ppid, own CPU s, reaped children's CPU s, rss kB) of pid, or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(rest[1]), (int(rest[11]) + int(rest[12])) / CLK_TCK,
            (int(rest[13]) + int(rest[14])) / CLK_TCK, int(rest[21]) * PAGE_KB)


def proc_stat(pid):
    """(utime+stime, cutime+cstime) of pid, in seconds."""
    s = read_stat(pid)
    if s is None:
        raise CannotMeasure("process %d is gone" % pid)
    return s[1], s[2]


def proc_oncpu_ns(pid):
    """Time on CPU in ns from /proc/PID/schedstat (finer than clock ticks), or None."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_status_kb(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def descendants(roots):
    """roots and every live process below them."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = read_stat(int(name))
            if s is not None:
                children.setdefault(s[0], []).append(int(name))
    out, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def tree_cpu(roots):
    """(CPU s of the roots themselves, CPU s of the whole tree).

    A process's own time plus the time of the children it has reaped, summed
    over every live process of the tree, counts every process that ever ran
    in it (a job process, work-horse or pool process that exited was reaped
    by its parent), so the difference of two samples is the tree's CPU in
    between.
    """
    own = total = 0.0
    roots = set(roots)
    for pid in descendants(roots):
        s = read_stat(pid)
        if s is None:
            continue
        total += s[1] + s[2]
        if pid in roots:
            own += s[1]
    return own, total


def tree_minflt(roots):
    """Minor page faults of a process tree so far: each live process's own
    plus those of the children it reaped (cminflt), as tree_cpu counts CPU."""
    total = 0
    for pid in descendants(set(roots)):
        try:
            with open("/proc/%d/stat" % pid) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[7]) + int(rest[8])
        except (OSError, IndexError, ValueError):
            pass
    return total


def tree_hwm_kb(roots):
    """(peak RSS of the largest root, sum of the peak RSS of every live process of the tree), kB."""
    roots = set(roots)
    top = total = 0
    for pid in descendants(roots):
        hwm = proc_status_kb(pid, "VmHWM") or 0
        total += hwm
        if pid in roots:
            top = max(top, hwm)
    return top, total


def machine_cpu():
    """(busy, steal) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, (v[7] if len(v) > 7 else 0) / CLK_TCK


class Interference:
    """CPU that processes outside the measurement used meanwhile: the machine's
    busy time less the measured system's process tree, Redis, PostgreSQL and
    this script; plus the time the hypervisor stole."""

    def __init__(self, roots, svc_cpu):
        self.roots, self.svc = roots, svc_cpu
        self.t0 = time.monotonic()
        self.m0 = machine_cpu()
        self.tree0 = tree_cpu(roots)[1]
        self.svc0 = sum(svc_cpu.sample())
        t = os.times()
        self.self0 = t.user + t.system

    def stop(self):
        wall = time.monotonic() - self.t0
        m1 = machine_cpu()
        tree = tree_cpu(self.roots)[1] - self.tree0
        svc = sum(self.svc.sample()) - self.svc0
        t = os.times()
        own = t.user + t.system - self.self0
        others = max(0.0, (m1[0] - self.m0[0]) - tree - svc - own)
        ncpu = os.cpu_count() or 1
        return {"others_pct": 100.0 * others / (wall * ncpu), "steal_pct": 100.0 * (m1[1] - self.m0[1]) / (wall * ncpu)}


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "model": model, "kernel": platform.release(), "load": loadavg(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version()}


def versions():
    out = {}
    try:
        out["taskexec"] = subprocess.run([str(TASKEXEC), "--version"], stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, text=True, timeout=10).stdout.strip().split()[-1]
    except (OSError, subprocess.SubprocessError):
        pass
    for mod in ("rq", "celery", "redis"):
        try:
            out[mod] = __import__(mod).__version__
        except (ImportError, AttributeError):
            pass
    try:
        r = subprocess.run(["redis-server", "--version"], stdout=subprocess.PIPE, text=True, timeout=10)
        out["redis-server"] = next((w.split("=")[1] for w in r.stdout.split() if w.startswith("v=")), "?")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def clean_env():
    """The caller's environment without any TASKEXEC_* (taskexecd refuses names it does not know)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TASKEXEC_") and k != "ALLOWED_MODULES"}


def runner_env():
    e = clean_env()
    e.update({
        "TASKEXEC_TASKS_PATH": "%s:%s" % (HERE, REPO),
        "TASKEXEC_ALLOWED_MODULES": "benchtasks,tasks",
        "TASKEXEC_SCRATCH_DIR": "/tmp",
    })
    return e


def policy_dir(root, mode):
    """A copy of the shipped policies whose ad_hoc says [start] mode = MODE,
    so that what is measured does not depend on the shipped default."""
    out = root / ("policy-" + mode)
    if not out.exists():
        shutil.copytree(REPO / "policy", out)
        f = out / (TASK_TYPE + ".policy")
        kept, skip = [], False
        for line in f.read_text().splitlines():
            if line.strip().startswith("["):
                skip = line.strip() == "[start]"
            if not skip:
                kept.append(line)
        f.write_text("\n".join(kept).rstrip("\n") + "\n\n[start]\nmode = %s\n" % mode)
        for p in [out, *out.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
    return out


def payload(job_id, kind="noop"):
    method, params = {"noop": ("noop", {}), "stamp": ("stamp", {}),
                      "sleep20": ("sleep_ms", {"ms": SLEEP_MS})}[kind]
    return json.dumps({
        "job_id": job_id,
        "task_type": TASK_TYPE,
        "module_path": "benchtasks.noop",
        "class_name": None,
        "method_name": method,
        "parameters": params,
        "priority": "normal",
        "enqueued_at": iso_utc(time.time()),
    }, separators=(",", ":"))


def with_db(url, db):
    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, "/%d" % db, u.query, u.fragment))


def paced(rate, seconds, send):
    """Call send(i) at a steady rate."""
    n = int(rate * seconds)
    t0 = time.monotonic() + 0.05
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(i)


def stop_procs(procs, timeout=20):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)     # warm shutdown: finish the current job, then exit
    for p in procs:
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


# ---------------------------------------------------------------------------
# the services (each stopped by its own pid)

class Services:
    def __init__(self, root):
        self.dir = root / "services"
        self.started = False
        self.redis_url = self.db_url = None

    def start(self):
        self.started = True
        r = subprocess.run([str(SERVICES), "start", str(self.dir)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            raise CannotMeasure("scripts/services start failed (%d): %s" % (r.returncode, r.stderr.strip()))
        for line in r.stdout.splitlines():
            key, _, value = line.partition("=")
            if key == "TASKEXEC_REDIS_URL":
                self.redis_url = value
            elif key == "TASKEXEC_DB_URL":
                self.db_url = value
        if not (self.redis_url and self.db_url):
            raise CannotMeasure("scripts/services printed no URLs: %r" % r.stdout)

    def pg_pid(self):
        try:
            return int((self.dir / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self):
        if not self.started:
            return
        r = subprocess.run([str(SERVICES), "stop", str(self.dir)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            log("scripts/services stop failed (%d): %s" % (r.returncode, r.stderr.strip()))


class ServiceCPU:
    """CPU of Redis (INFO cpu: the server's own) and of every PostgreSQL process."""

    def __init__(self, r, services):
        self.r = r
        self.pg = services.pg_pid()

    def sample(self):
        info = self.r.info("cpu")
        redis_s = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        pg_s = tree_cpu([self.pg])[1] if self.pg else 0.0
        return redis_s, pg_s


# ---------------------------------------------------------------------------
# (a) taskexec run vs a bare interpreter

def bench_run(runs, root):
    """`taskexec run` of a no-op job (ad_hoc, [start] mode = fresh) against the
    bare interpreter, and the same with TASKEXEC_ISOLATION=weak (no domain:
    no namespaces, mounts or tmpfs) and with mode = warm (a server started
    for the one job, then its fork), all interleaved."""
    base = runner_env()
    env = {}
    for key, mode, iso in (("te", "fresh", "domain"), ("weak", "fresh", "weak"), ("warm", "warm", "domain")):
        env[key] = dict(base, TASKEXEC_POLICY_DIR=str(policy_dir(root, mode)), TASKEXEC_ISOLATION=iso)
    env["py"] = base
    argv = {k: [str(TASKEXEC), "run", "benchtasks.noop:noop"] for k in ("te", "weak", "warm")}
    argv["py"] = [PYTHON, "-I", "-S", "-c", "import json"]

    def timed(key):
        t0 = time.perf_counter()
        r = subprocess.run(argv[key], env=env[key], cwd="/tmp", stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return (time.perf_counter() - t0) * 1000.0, r

    def summary(r):
        try:
            return json.loads(r.stderr.decode().strip().splitlines()[-1].split(" ", 2)[2])
        except (ValueError, IndexError):
            return {}

    for key in ("te", "weak", "warm"):
        _, r = timed(key)
        if r.returncode != 0 or summary(r).get("outcome") != "completed":
            raise CannotMeasure("taskexec run benchtasks.noop:noop (%s) exited %d: %s"
                                % (key, r.returncode, r.stderr.decode(errors="replace").strip()[-500:]))
    for _ in range(3):       # warm the page cache for all
        for key in argv:
            timed(key)
    t = {k: [] for k in argv}
    inner = {k: [] for k in argv}
    for _ in range(runs):
        for key in argv:
            ms, r = timed(key)
            if r.returncode != 0:
                raise CannotMeasure("%s failed during the runs: exit %d" % (" ".join(argv[key]), r.returncode))
            t[key].append(ms)
            if key != "py" and "duration_ms" in summary(r):
                inner[key].append(summary(r)["duration_ms"])
    # Where the difference goes: the CLI process alone (exec, dynamic linking, no job).
    t_ver = [timed_argv([str(TASKEXEC), "--version"], base) for _ in range(10)]
    med = {k: statistics.median(v) for k, v in t.items()}
    return {"version": statistics.median(t_ver), "runs": runs, "te": med["te"], "py": med["py"],
            "weak": med["weak"], "warm": med["warm"],
            "te_p90": pct(t["te"], 90), "py_p90": pct(t["py"], 90), "weak_p90": pct(t["weak"], 90),
            "warm_p90": pct(t["warm"], 90),
            "inner": statistics.median(inner["te"]) if inner["te"] else None,
            "inner_weak": statistics.median(inner["weak"]) if inner["weak"] else None,
            "inner_warm": statistics.median(inner["warm"]) if inner["warm"] else None}


FORK_FLOOR = r"""
import gc, json, os, resource, sys, time
import inspect, logging, traceback   # a heap like the warm server's
gc.collect()
gc.freeze()
n = int(sys.argv[1])
c0, s0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        json.dumps(json.loads('{"job_id": "x", "parameters": {}}'))
        os._exit(0)
    os.waitpid(pid, 0)
t = time.perf_counter() - t0
c1, s1 = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
cpu = lambda a, b: (b.ru_utime + b.ru_stime - a.ru_utime - a.ru_stime) * 1000.0 / n
print(json.dumps({"n": n, "rate": n / t, "child_cpu_ms": cpu(c0, c1), "parent_cpu_ms": cpu(s0, s1),
                  "child_minflt": (c1.ru_minflt - c0.ru_minflt) / n}))
"""


def bench_fork_floor(n):
    """The floor of any fork-per-job design on this machine now: a bare
    `python3 -I -S` with json, inspect, logging and traceback imported and its
    heap frozen forks a child per no-op job (decode, encode, exit) and reaps
    it, one loop: jobs/s, CPU per child and parent, minor faults per child."""
    r = subprocess.run([PYTHON, "-I", "-S", "-c", FORK_FLOOR, str(n)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    if r.returncode != 0:
        raise CannotMeasure("fork floor: exit %d: %s" % (r.returncode, r.stderr[-300:]))
    out = json.loads(r.stdout)
    out["us_per_fault"] = out["child_cpu_ms"] * 1000.0 / out["child_minflt"] if out["child_minflt"] else None
    out["load"] = loadavg()
    return out


def timed_argv(argv, env):
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, cwd="/tmp", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000.0


# ---------------------------------------------------------------------------
# The systems behind one interface:
#   purge()                    drop anything left in the queues
#   prefill(kind, tag, n)      put n jobs in the queue (no worker running)
#   start(c) / stop()          the worker side at concurrency c, ready when start returns
#   roots()                    the supervising processes (for CPU and RSS)
#   send(kind, tag)            enqueue one job now (latency)
#   done(tag)                  how many of the tag's jobs ended
#   records(tag)               [(t_enqueued or None, t_start, t_end, ok)] in epoch seconds
#   stamps(tag)                [(t_enqueued, t_task_entry)] of the tag's "stamp" jobs

def tkey(*parts):
    return ":".join(["{%s}" % PREFIX, *parts])


class Taskexec:
    """taskexecd on the ad_hoc task type, [start] mode = fresh ("taskexec") or
    warm ("taskexec-warm"), from a policy copy in the temporary directory."""

    def __init__(self, root, services, r, name="taskexec"):
        self.name, self.mode = name, START_MODE[name]
        self.policy_dir = policy_dir(root, self.mode)
        self.root, self.services, self.r = root, services, r
        self.daemon = None
        self.conn = None
        self.pushed = {}
        self.n = 0
        self.rss_kb = 0

    def db(self, sql, args=()):
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def purge(self):
        keys = [tkey("queue", p) for p in ("high", "normal", "low")] + \
            [tkey("wake"), tkey("delayed"), tkey("processing", EXECUTOR_ID)]
        self.r.delete(*keys)

    def push(self, body):
        """The documented producer step (taskexec-protocol(7)); returns the wall clock just before EXEC."""
        p = self.r.pipeline(transaction=True)
        p.rpush(tkey("queue", "normal"), body)
        p.zadd(tkey("wake"), {"w": 0})
        t = time.time()
        p.execute()
        return t

    def prefill(self, kind, tag, n):
        p = self.r.pipeline(transaction=True)
        for i in range(n):
            p.rpush(tkey("queue", "normal"), payload("%s-%05d" % (tag, i), kind))
        p.zadd(tkey("wake"), {"w": 0})
        p.execute()

    def start(self, c):
        self.n += 1
        state = self.root / "state"
        state.mkdir(exist_ok=True)
        state.chmod(0o755)
        env = runner_env()
        env.update({
            "TASKEXEC_REDIS_URL": self.services.redis_url,
            "TASKEXEC_DB_URL": self.services.db_url,
            "TASKEXEC_QUEUE_PREFIX": PREFIX,
            "TASKEXEC_EXECUTOR_ID": EXECUTOR_ID,
            "TASKEXEC_CONCURRENCY": str(c),
            "TASKEXEC_HEARTBEAT_INTERVAL": "%gs" % HEARTBEAT_S,
            "TASKEXEC_HTTP_LISTEN": "off",
            "TASKEXEC_POLICY_DIR": str(self.policy_dir),
            "TASKEXEC_ISOLATION": "domain",
            "TASKEXEC_STATE_DIR": str(state),
            "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
        })
        self.log_path = self.root / ("taskexecd-%s-%d.log" % (self.mode, self.n))
        with open(self.log_path, "wb") as out:
            self.daemon = subprocess.Popen([str(TASKEXECD)], env=env, cwd=str(self.root),
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while self.conn is None:        # the first daemon creates the schema
            try:
                self.conn = psycopg2.connect(self.services.db_url)
                self.conn.autocommit = True
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise CannotMeasure("PostgreSQL refuses connections:\n" + self.tail())
                time.sleep(0.2)
        # Ready once it says so in its log (it claims right after: the
        # executors row only comes with the first heartbeat to PostgreSQL).
        while time.monotonic() < deadline:
            if not self.alive():
                raise CannotMeasure("taskexecd exited at start:\n" + self.tail())
            try:
                if '"event":"executor.started"' in self.log_path.read_text(errors="replace"):
                    return
            except OSError:
                pass
            time.sleep(0.01)
        raise CannotMeasure("taskexecd not ready after 30 s:\n" + self.tail())

    def tail(self, n=15):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.daemon is not None and self.daemon.poll() is None

    def check(self):
        if not self.alive():
            raise CannotMeasure("taskexecd died:\n" + self.tail())

    def roots(self):
        return [self.daemon.pid]

    def stop(self):
        if self.daemon is not None:
            if self.alive():
                self.rss_kb = max(self.rss_kb, proc_status_kb(self.daemon.pid, "VmHWM") or 0)
            stop_procs([self.daemon])
            self.daemon = None

    def close(self):
        self.stop()
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def send(self, kind, tag):
        jid = "%s-%05d" % (tag, len(self.pushed))
        self.pushed[jid] = self.push(payload(jid, kind))

    def done(self, tag):
        self.check()
        try:
            return self._done(tag)
        except psycopg2.Error:          # the schema is not there yet
            return 0

    def _done(self, tag):
        return self.db("SELECT count(*) FROM taskexec.jobs WHERE job_id LIKE %s "
                       "AND status IN ('COMPLETED', 'FAILED')", (tag + "-%",))[0][0]

    def records(self, tag):
        rows = self.db("SELECT job_id, status, extract(epoch FROM started_at), extract(epoch FROM finished_at) "
                       "FROM taskexec.jobs WHERE job_id LIKE %s", (tag + "-%",))
        return [(self.pushed.get(jid), float(s) if s is not None else None,
                 float(f) if f is not None else None, st == "COMPLETED") for jid, st, s, f in rows]

    def stamps(self, tag):
        rows = self.db("SELECT job_id, result::text FROM taskexec.jobs WHERE job_id LIKE %s "
                       "AND status = 'COMPLETED'", (tag + "-%",))
        out = []
        for jid, result in rows:
            try:
                out.append((self.pushed[jid], float(result)))
            except (KeyError, TypeError, ValueError):
                pass
        return out

    def servers(self):
        """The daemon's direct children: in warm mode its warm servers (each
        pid 1 of its namespace; the attempts are their children); in fresh
        mode, the job processes of the moment."""
        me = self.daemon.pid
        out = []
        for pid in descendants([me]):
            st = read_stat(pid)
            if pid != me and st is not None and st[0] == me:
                out.append({"pid": pid, "rss_kb": proc_status_kb(pid, "VmRSS"),
                            "hwm_kb": proc_status_kb(pid, "VmHWM"),
                            "children": sum(1 for q in descendants([pid]) if q != pid)})
        return out

    def job_stats(self, tag):
        """Median CPU and peak RSS the job processes themselves report (attempts rows)."""
        row = self.db("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY cpu_ms), max(max_rss_kb), "
                      "percentile_cont(0.5) WITHIN GROUP (ORDER BY max_rss_kb) "
                      "FROM taskexec.attempts WHERE job_id LIKE %s", (tag + "-%",))[0]
        return {"job_cpu_ms_p50": row[0], "job_rss_kb_max": row[1], "job_rss_kb_p50": row[2]}


class RQSystem:
    name = "rq"

    def __init__(self, root, redis_url):
        from rq import Queue
        self.root = root
        self.url = with_db(redis_url, 1)
        self.r = redis.Redis.from_url(self.url)
        self.qname = "bench"
        self.q = Queue(self.qname, connection=self.r)
        self.procs = []
        self.ids, self.base, self.pushed = {}, {}, {}
        self.n = 0

    def purge(self):
        self.r.flushdb()
        self.ids, self.base, self.pushed = {}, {}, {}

    def _enqueue(self, kind, tag):
        t = time.time()
        if kind == "noop":
            job = self.q.enqueue("rqtasks.noop")
        elif kind == "stamp":
            job = self.q.enqueue("rqtasks.stamp", tag)
        else:
            job = self.q.enqueue("rqtasks.sleep_ms", SLEEP_MS)
        if tag not in self.ids:
            self.base[tag] = self.ended()    # the jobs of earlier tags have all ended by now
        self.ids.setdefault(tag, []).append(job.id)
        self.pushed[job.id] = t

    def prefill(self, kind, tag, n):
        for _ in range(n):
            self._enqueue(kind, tag)

    def send(self, kind, tag):
        self._enqueue(kind, tag)

    def start(self, c):
        from rq import Worker
        self.n += 1
        for i in range(c):
            out = open(self.root / ("rq-worker-%d-%d.log" % (self.n, i)), "wb")
            self.procs.append(subprocess.Popen(
                [PYTHON, RQ, "worker", "--url", self.url, "--path", str(HERE),
                 "--name", "bench-rq-%d-%d" % (self.n, i), self.qname],
                env=clean_env(), cwd=str(self.root), stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT))
            out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.check()
            if len(Worker.all(connection=self.r)) >= c:
                return
            time.sleep(0.05)
        raise CannotMeasure("rq workers not registered after 30 s")

    def check(self):
        if not all(p.poll() is None for p in self.procs):
            raise CannotMeasure("an rq worker exited")

    def roots(self):
        return [p.pid for p in self.procs]

    def stop(self):
        stop_procs(self.procs)
        self.procs = []

    def close(self):
        self.stop()

    def ended(self):
        """Jobs ended so far (finished or failed), from RQ's registries: two ZCARDs per poll."""
        from rq.registry import FailedJobRegistry, FinishedJobRegistry
        return (FinishedJobRegistry(self.qname, connection=self.r).count
                + FailedJobRegistry(self.qname, connection=self.r).count)

    def done(self, tag):
        self.check()
        return self.ended() - self.base.get(tag, 0)

    def records(self, tag):
        p = self.r.pipeline(transaction=False)
        ids = self.ids.get(tag, [])
        for jid in ids:
            p.hmget("rq:job:" + jid, "status", "started_at", "ended_at")
        out = []
        for jid, (status, started, ended) in zip(ids, p.execute()):
            out.append((self.pushed.get(jid), rq_time(started) if started else None,
                        rq_time(ended) if ended else None, status == b"finished"))
        return out

    def stamps(self, tag):
        out = []
        for line in self.r.lrange("bench:stamp:" + tag, 0, -1):
            jid, t0 = line.decode().split()
            if jid in self.pushed:
                out.append((self.pushed[jid], float(t0)))
        return out


class CelerySystem:
    name = "celery"

    def __init__(self, root, redis_url):
        from celery import Celery
        self.root = root
        self.url = with_db(redis_url, 2)
        self.r = redis.Redis.from_url(self.url)
        self.app = Celery("bench-producer", broker=self.url)
        self.app.conf.task_ignore_result = True
        self.proc = None
        self.n = 0

    def purge(self):
        self.r.flushdb()

    def _send(self, kind, tag):
        if kind in ("noop", "stamp"):       # the no-op task takes time.time() on entry
            self.app.send_task("celerytasks.noop", args=[time.time(), tag])
        else:
            self.app.send_task("celerytasks.sleep_ms", args=[time.time(), tag, SLEEP_MS])

    def prefill(self, kind, tag, n):
        with self.app.producer_or_acquire():
            for _ in range(n):
                self._send(kind, tag)

    def send(self, kind, tag):
        self._send(kind, tag)

    def start(self, c):
        self.n += 1
        env = clean_env()
        env["BENCH_CELERY_BROKER"] = self.url
        env["PYTHONPATH"] = str(HERE)
        self.log_path = self.root / ("celery-worker-%d.log" % self.n)
        with open(self.log_path, "wb") as out:
            # gossip, mingle and heartbeat are the event chatter between workers
            # of a cluster; with one worker they only delay its start.
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "celery", "-A", "celerytasks", "worker", "--pool=prefork",
                 "--concurrency=%d" % c, "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "--loglevel=INFO", "--hostname", "bench%d@%%h" % self.n],
                env=env, cwd=str(HERE), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check()
            try:
                ready = " ready." in self.log_path.read_text(errors="replace")
            except OSError:
                ready = False
            if ready and len(descendants([self.proc.pid])) >= c + 1:
                return
            time.sleep(0.05)
        raise CannotMeasure("celery worker not ready after 60 s:\n" + self.tail())

    def tail(self, n=15):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def check(self):
        if self.proc is None or self.proc.poll() is not None:
            raise CannotMeasure("the celery worker exited:\n" + self.tail())

    def roots(self):
        return [self.proc.pid]

    def stop(self):
        if self.proc is not None:
            stop_procs([self.proc], timeout=30)
            self.proc = None

    def close(self):
        self.stop()

    def done(self, tag):
        self.check()
        return self.r.llen("bench:done:" + tag)

    def records(self, tag):
        out = []
        for line in self.r.lrange("bench:done:" + tag, 0, -1):
            t_enq, t0, t1 = (float(x) for x in line.split())
            out.append((t_enq, t0, t1, True))
        return out

    def stamps(self, tag):
        return [(t_enq, t0) for t_enq, t0, _, _ in self.records(tag)]


# ---------------------------------------------------------------------------
# the measurements on the systems

def wait_done(sysm, tag, n, timeout):
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = sysm.done(tag)
        if done >= n:
            break
        time.sleep(0.2)
    return done


def bench_latency(sysm, svc_cpu, rate, seconds):
    """Enqueue -> start at a steady rate, concurrency LAT_CONCURRENCY; the system is running."""
    warm = "warm-" + uuid.uuid4().hex[:6]
    for _ in range(6):                 # a few jobs first: the measured ones meet a warm system
        sysm.send("noop", warm)
        time.sleep(0.1)
    wait_done(sysm, warm, 6, 30)
    tag = "lat-" + uuid.uuid4().hex[:6]
    interference = Interference(sysm.roots(), svc_cpu)
    paced(rate, seconds, lambda i: sysm.send("noop", tag))
    n = int(rate * seconds)
    done = wait_done(sysm, tag, n, 30)
    other = interference.stop()
    if done < n:
        raise CannotMeasure("only %d of %d latency jobs ended within 30 s" % (done, n))
    lat, e2e, hold, bad = [], [], [], 0
    for t_enq, t0, t1, ok in sysm.records(tag):
        if not ok or t_enq is None or t0 is None:
            bad += 1
            continue
        lat.append((t0 - t_enq) * 1000.0)
        if t1 is not None:
            e2e.append((t1 - t_enq) * 1000.0)
            hold.append((t1 - t0) * 1000.0)
    if not lat:
        raise CannotMeasure("no latency job completed")
    return {"rate": rate, "n": n, "bad": bad, "p50": pct(lat, 50), "p95": pct(lat, 95), "p99": pct(lat, 99),
            "max": max(lat), "e2e_p50": pct(e2e, 50) if e2e else None, "e2e_p99": pct(e2e, 99) if e2e else None,
            # how long a job holds its slot (start -> end), and how many jobs waited for one
            "hold_ms": statistics.mean(hold) if hold else None,
            "waited": sum(1 for x in lat if x > T_LAT_P50_MS) / len(lat),
            "samples": sorted(round(x, 3) for x in lat), "tag": tag, "load": loadavg(), **other}


def bench_stamp(sysm, svc_cpu, rate, seconds):
    """Queue -> task code start at a steady rate, concurrency LAT_CONCURRENCY:
    the enqueue time against time.time() taken on entry to the task function,
    in the process that runs it (taskexec: the job's result; RQ: pushed by the
    work-horse; Celery: pushed by the pool process)."""
    warm = "warm-" + uuid.uuid4().hex[:6]
    for _ in range(6):
        sysm.send("stamp", warm)
        time.sleep(0.05)
    wait_done(sysm, warm, 6, 30)
    tag = "stamp-" + uuid.uuid4().hex[:6]
    interference = Interference(sysm.roots(), svc_cpu)
    paced(rate, seconds, lambda i: sysm.send("stamp", tag))
    n = int(rate * seconds)
    done = wait_done(sysm, tag, n, 30)
    other = interference.stop()
    out = {}
    if hasattr(sysm, "servers"):
        out["servers"] = sysm.servers()
    # A system slower than the offered rate falls behind: the queue grows for
    # the whole run.  What ended within 30 s is reported, marked; the rest
    # would only start later still.
    lat = [(t0 - t_enq) * 1000.0 for t_enq, t0 in sysm.stamps(tag)]
    if not lat:
        raise CannotMeasure("no stamp job recorded its start (%d of %d ended within 30 s)" % (done, n))
    return {"rate": rate, "n": n, "got": len(lat), "behind": done < n, "p50": pct(lat, 50), "p95": pct(lat, 95),
            "p99": pct(lat, 99), "max": max(lat), "samples": sorted(round(x, 3) for x in lat), "tag": tag,
            "load": loadavg(), **other, **out}


def bench_idle(r, redis_url, pid, seconds):
    """The daemon's CPU and Redis traffic while no job arrives.

    total_commands_processed counts the commands Lua scripts run as well;
    MONITOR tells the calls the daemon itself sends (round trips) apart.
    """
    time.sleep(HEARTBEAT_S * 2)           # let the last jobs' bookkeeping settle
    mon = subprocess.Popen(["redis-cli", "-u", redis_url, "monitor"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.2)
    cpu0, _ = proc_stat(pid)
    ns0 = proc_oncpu_ns(pid)
    c0 = int(r.info("stats")["total_commands_processed"])
    time.sleep(seconds)
    c1 = int(r.info("stats")["total_commands_processed"])
    cpu1, _ = proc_stat(pid)
    ns1 = proc_oncpu_ns(pid)
    mon.terminate()
    lines = mon.communicate(timeout=10)[0].splitlines()
    cmds = c1 - c0 - 1                    # less our own first INFO
    calls = {}
    for line in lines:
        # 1795677431.376307 [0 127.0.0.1:60152] "EVAL" ...   /   ... [0 lua] "LPOP" ...
        head, sep, rest = line.partition("] ")
        if not sep or head.endswith(" lua") or not rest.startswith('"'):
            continue
        name = rest[1:].split('"', 1)[0].upper()
        if name == "INFO":
            continue                      # ours
        calls[name] = calls.get(name, 0) + 1
    out = {"seconds": seconds, "cpu_ms": (cpu1 - cpu0) * 1000.0, "redis_cmds": cmds,
           "redis_per_s": cmds / seconds, "calls": calls,
           "calls_per_s": (sum(calls.values()) / seconds) if lines else None}
    if ns0 is not None and ns1 is not None:
        out["cpu_ms_fine"] = (ns1 - ns0) / 1e6
    return out


def bench_point(sysm, svc_cpu, kind, c, jobs, timeout, perf_data=None):
    """jobs of one kind waiting in the queue, the workers started at concurrency c, run until all ended.

    With perf_data, `perf record -a -g` runs from the workers' start to the
    last job's end (a profile, not a figure: perf's own cost is in it)."""
    tag = "thr-%s-%s-%d-%s" % (sysm.name, kind, c, uuid.uuid4().hex[:4])
    load = loadavg()
    sysm.purge()
    sysm.prefill(kind, tag, jobs)
    perf = None
    servers = None
    try:
        sysm.start(c)
        roots = sysm.roots()
        if perf_data is not None:
            perf = subprocess.Popen(["perf", "record", "-a", "-g", "-q", "-o", str(perf_data)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
        t_s0 = time.time()
        interference = Interference(roots, svc_cpu)
        own0, tot0 = tree_cpu(roots)
        flt0 = tree_minflt(roots)
        svc0 = svc_cpu.sample()
        done = wait_done(sysm, tag, jobs, timeout)
        own1, tot1 = tree_cpu(roots)
        flt1 = tree_minflt(roots)
        svc1 = svc_cpu.sample()
        other = interference.stop()
        t_s1 = time.time()
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf_err = perf.communicate(timeout=60)[1]
            if perf.returncode not in (0, -signal.SIGINT):
                raise CannotMeasure("perf record exited %d: %s" % (perf.returncode, perf_err.decode()[-300:]))
            perf = None
        rss_top, rss_sum = tree_hwm_kb(roots)
        if hasattr(sysm, "servers"):
            servers = sysm.servers()
        recs = sysm.records(tag)
    finally:
        if perf is not None and perf.poll() is None:
            perf.send_signal(signal.SIGINT)
            perf.wait(60)
        sysm.stop()
        sysm.purge()
    starts = [t0 for _, t0, _, _ in recs if t0 is not None]
    ends = [t1 for _, _, t1, _ in recs if t1 is not None]
    ok = sum(1 for rec in recs if rec[3] and rec[2] is not None)
    if not starts or not ends or not ok:
        raise CannotMeasure("%s %s c=%d: no job ended" % (sysm.name, kind, c))
    wall = max(ends) - min(starts)
    # The CPU samples bracket the jobs that ended after the first one (the
    # workers may have taken a few before the first sample).
    in_window = sum(1 for t1 in ends if t_s0 < t1 <= t_s1) or 1
    out = {"system": sysm.name, "kind": kind, "c": c, "jobs": jobs, "done": done, "completed": ok,
           "complete": done >= jobs, "wall": wall, "rate": ok / wall if wall > 0 else None,
           "sup_cpu_ms": (own1 - own0) * 1000.0 / in_window,
           "all_cpu_ms": (tot1 - tot0) * 1000.0 / in_window,
           "redis_cpu_ms": (svc1[0] - svc0[0]) * 1000.0 / in_window,
           "pg_cpu_ms": (svc1[1] - svc0[1]) * 1000.0 / in_window,
           "sup_rss_kb": rss_top, "tree_rss_kb": rss_sum, "load": load, "in_window": in_window,
           "daemon_pid": roots[0], "minflt": (flt1 - flt0) / in_window, **other}
    if isinstance(sysm, Taskexec):
        out.update(sysm.job_stats(tag))
        out["servers"] = servers
    return out


# ---------------------------------------------------------------------------
# --perf: where the CPU of a warm no-op job goes

# (category, what it is, what would remove it), in report order.
PERF_CATS = (
    ("fault", "page faults in servers and attempts (first-touch and copy-on-write: exc_page_fault, "
              "do_wp_page; on this VM ~11-15 us each)",
     "fewer pages written per fork: a smaller server heap, no refcount writes on shared objects "
     "(immortal objects, Python 3.12+), prefaulting nothing the child does not write; bare metal pays < 1 us "
     "per fault"),
    ("tlb", "TLB shootdowns/flushes in servers and attempts (flush_tlb_*, after COW and at exit)",
     "single-threaded children on one CPU (affinity per slot) flush locally; fewer COW faults"),
    ("fork", "fork, exit and unmapping in servers and attempts (copy_process, dup_mmap, exit_mmap, wait)",
     "a smaller address space to copy (fewer mappings, no ctypes/libffi in the server); vfork-style "
     "spawn is not possible for a fork server"),
    ("pykernel", "other kernel time in servers and attempts (seccomp filter load, fd passing, setsid, "
                 "reads of the job and setup memfds)",
     "send the job and setup in one memfd; load the job filter without a listener round trip"),
    ("pyuser", "Python userland in servers and attempts (the shim: decode, bind, call, encode, logging)",
     "less shim work per attempt (json of the result only; no logging setup when the job logs nothing)"),
    ("daemon", "taskexecd (claim script, two PostgreSQL functions, SCM_RIGHTS to the server, memfds, reaping)",
     "batch claims and finishes; reuse the job and setup memfds"),
    ("pg", "PostgreSQL (claim and finish functions, WAL)", "fewer round trips per job (one function to finish "
                                                          "and claim the next); synchronous_commit off for "
                                                          "attempt rows"),
    ("redis", "Redis (claim script, wake marker)", "batch claims"),
    ("bench", "the bench itself and perf", "(measurement cost)"),
    ("other", "other processes on the machine (other engineers' tests, kernel threads)", "(not taskexec)"),
)


def is_kernel(ip):
    try:
        return int(ip, 16) >= 0xffff800000000000
    except ValueError:
        return False


def analyze_perf(data, daemon_pid, jobs):
    """Samples of `perf record -a -g` sorted into PERF_CATS (plus idle), from
    `perf script`; processes are told apart by the fork tree perf recorded."""
    r = subprocess.run(["perf", "script", "-i", str(data), "--show-task-events", "-F", "comm,pid,tid,period,ip,sym"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                       errors="replace", timeout=600)
    if not r.stdout:
        raise CannotMeasure("perf script printed nothing (exit %d)" % r.returncode)
    parent, comm_of = {}, {}
    samples = []        # (pid, comm, period, [(ip, sym)])
    cur = None
    for line in r.stdout.splitlines():
        if not line.strip():
            cur = None
            continue
        if line[0] in " \t":
            if cur is not None:
                parts = line.split(None, 1)
                cur[3].append((parts[0], parts[1] if len(parts) > 1 else ""))
            continue
        if "PERF_RECORD_FORK(" in line:
            # comm pid/tid PERF_RECORD_FORK(child:ctid):(parent:ptid)
            try:
                body = line.split("PERF_RECORD_FORK(", 1)[1]
                child = int(body.split(":", 1)[0])
                par = int(body.split(":(", 1)[1].split(":", 1)[0])
                if child != par:
                    parent.setdefault(child, par)
            except (IndexError, ValueError):
                pass
            continue
        if "PERF_RECORD_" in line:
            continue
        # comm may contain spaces: the pid/tid field is the one with a slash before the period
        fields = line.split()
        k = max(i for i, f in enumerate(fields) if "/" in f and f.split("/")[0].isdigit())
        pid = int(fields[k].split("/")[0])
        comm = " ".join(fields[:k])
        try:
            period = int(fields[k + 1])
        except (IndexError, ValueError):
            period = 250000
        cur = (pid, comm, period, [])
        samples.append(cur)
        comm_of[pid] = comm
    me = os.getpid()

    def under(pid, root):
        for _ in range(64):
            if pid == root:
                return True
            pid = parent.get(pid)
            if pid is None:
                return False
        return False

    ns = {c[0]: 0 for c in PERF_CATS}
    ns["idle"] = 0
    cache = {}
    for pid, comm, period, stack in samples:
        if pid == 0:
            ns["idle"] += period
            continue
        if pid not in cache:
            if pid == daemon_pid:
                cache[pid] = "daemon"
            elif under(pid, daemon_pid):
                cache[pid] = "job"
            elif comm.startswith("postgres"):
                cache[pid] = "pg"
            elif comm.startswith("redis") or under(pid, next((p for p, c in comm_of.items()
                                                                if c.startswith("redis-server")), -1)):
                cache[pid] = "redis"
            elif pid == me or comm == "perf" or under(pid, me) and not under(pid, daemon_pid):
                cache[pid] = "bench"
            else:
                cache[pid] = "other"
        cat = cache[pid]
        if cat == "job":
            syms = " ".join(sym for _, sym in stack)
            if stack and not is_kernel(stack[0][0]):
                cat = "pyuser"
            elif "flush_tlb" in syms or "tlb_flush" in syms:
                cat = "tlb"
            elif "exc_page_fault" in syms or "handle_mm_fault" in syms or "do_wp_page" in syms:
                cat = "fault"
            elif any(w in syms for w in ("copy_process", "dup_mm", "exit_mmap", "do_exit", "unmap_",
                                         "wait4", "do_wait", "release_task", "free_pgtables")):
                cat = "fork"
            else:
                cat = "pykernel"
        ns[cat] += period
    busy = sum(v for k, v in ns.items() if k != "idle") or 1
    mine = sum(v for k, v in ns.items() if k not in ("idle", "other", "bench")) or 1
    cow = sum(1 for _, _, _, st in samples if any("do_wp_page" in sym or "wp_page_copy" in sym for _, sym in st))
    return {"jobs": jobs, "samples": len(samples), "busy_ms": busy / 1e6, "idle_ms": ns["idle"] / 1e6,
            "cats": {k: {"ms": v / 1e6, "share": v / busy, "share_te": v / mine if k not in ("other", "bench")
                         else None, "ms_per_job": v / 1e6 / jobs if jobs else None}
                     for k, v in ns.items() if k != "idle"},
            "cow_samples": cow}


# ---------------------------------------------------------------------------
# report

def verdict(ok):
    return "PASS" if ok else "MISS"


def fmt(v, spec="%.1f", none="–"):
    return none if v is None else spec % v


def point(res, system, kind, c):
    return res.get("thr", {}).get("%s/%s/%d" % (system, kind, c))


def ratio(a, b):
    if not a or not b or a.get("rate") is None or not b.get("rate"):
        return None
    return a["rate"] / b["rate"]


def load1(v):
    try:
        return float(v.get("load", "?").split()[0])
    except (ValueError, IndexError, AttributeError):
        return 0.0


def job_total_ms(p):
    """CPU per job of the system's processes plus Redis + PostgreSQL."""
    return p["all_cpu_ms"] + p["redis_cpu_ms"] + p["pg_cpu_ms"]


def target_rows(res, nproc):
    """(measure, figure, target, result) and the reasons of the misses."""
    rows, why = [], []
    # -- issue 8 (and 2): taskexec run, the cost of the domain
    a = res.get("run")
    if a:
        d = a["te"] - a["py"]
        rows.append(("(a) `taskexec run` no-op (fresh, domain) minus `python3 -I -S -c 'import json'`, medians "
                     "of %d [8]" % a["runs"], "%+.1f ms (%.1f vs %.1f ms)" % (d, a["te"], a["py"]),
                     "<= %g ms" % T_RUN_OVERHEAD_MS, verdict(d <= T_RUN_OVERHEAD_MS)))
        rows.append(("(a) of which the isolation domain (namespaces, mounts, tmpfs): `taskexec run` "
                     "TASKEXEC_ISOLATION=domain minus weak [8]", "%+.1f ms (%.1f vs %.1f ms)"
                     % (a["te"] - a["weak"], a["te"], a["weak"]), "(reported)", ""))
        rows.append(("(a) `taskexec run` no-op, [start] mode = warm (server started for the one job, then "
                     "forked)", "%.1f ms (%+.1f ms vs fresh)" % (a["warm"], a["warm"] - a["te"]), "(reported)", ""))
        if d > T_RUN_OVERHEAD_MS:
            parts = []
            if a.get("inner") is not None:
                parts.append("the sandboxed job (fork to exit: sandbox set-up, interpreter, shim) takes %g ms "
                             "against %.1f ms for the bare interpreter (%+.1f ms), the CLI around it the other "
                             "%.1f ms" % (a["inner"], a["py"], a["inner"] - a["py"], a["te"] - a["inner"]))
            parts.append("the domain adds %+.1f ms (weak mode: %.1f ms, %+.1f ms against python3)"
                         % (a["te"] - a["weak"], a["weak"], a["weak"] - a["py"]))
            why.append("(a) " + "; ".join(parts))
    else:
        rows.append(("(a) `taskexec run` overhead [8]", "not measured", "<= %g ms" % T_RUN_OVERHEAD_MS, "ERROR"))
    # -- issues 2 and 3: queue -> RUNNING at 20 jobs/s
    for s in TE_SYSTEMS:
        b = res.get("lat", {}).get(s)
        if not b:
            rows.append(("(b) %s queue -> RUNNING latency" % LABEL[s], "not measured", "p50 <= 5, p99 <= 25 ms",
                         "ERROR"))
            continue
        head = "(b) %s queue -> RUNNING (claim committed), %d jobs at %d/s, c=%d [2, 3]" % (
            LABEL[s], b["n"], LAT_RATE, LAT_CONCURRENCY)
        rows.append((head + ": p50", "%.1f ms" % b["p50"], "<= %g ms" % T_LAT_P50_MS,
                     verdict(b["p50"] <= T_LAT_P50_MS and not b["bad"])))
        rows.append(("(b) %s ... p99" % LABEL[s], "%.1f ms" % b["p99"], "<= %g ms" % T_LAT_P99_MS,
                     verdict(b["p99"] <= T_LAT_P99_MS and not b["bad"])))
        rows.append(("(b) %s ... max (the requirement)" % LABEL[s], "%.1f ms" % b["max"], "< %g ms" % T_LAT_REQ_MS,
                     verdict(b["max"] < T_LAT_REQ_MS and not b["bad"])))
        if (b["p50"] > T_LAT_P50_MS or b["p99"] > T_LAT_P99_MS) and b.get("hold_ms") is not None:
            busy = LAT_RATE * b["hold_ms"] / 1000.0 / LAT_CONCURRENCY
            why.append("(b) %s: a no-op job holds its slot for %.0f ms on average (claim to recorded outcome), so "
                       "at %d jobs/s the %d slots are %.0f %% busy and %.0f %% of the jobs found both taken and "
                       "waited in the queue (%s)%s"
                       % (LABEL[s], b["hold_ms"], LAT_RATE, LAT_CONCURRENCY, 100 * busy, 100 * b["waited"],
                          "a job that finds a free slot starts in about %.1f ms" % statistics.median(
                              [x for x in b["samples"] if x <= T_LAT_P50_MS])
                          if any(x <= T_LAT_P50_MS for x in b["samples"]) else "none started within %g ms"
                          % T_LAT_P50_MS,
                          "; load average %.1f on %d CPUs stretched every job" % (load1(b), nproc)
                          if load1(b) > nproc else ""))
    # -- issue 3: taskexec / RQ >= 2x, daemon CPU, idle
    rq, cel = point(res, "rq", "noop", 2), point(res, "celery", "noop", 2)
    for s in TE_SYSTEMS:
        te = point(res, s, "noop", 2)
        if not te:
            rows.append(("(c) %s no-op jobs/s, c=2" % LABEL[s], "not measured", "", "ERROR"))
            continue
        q = ratio(te, rq)
        if q is not None:
            rows.append(("(c) %s / RQ, no-op jobs/s, c=2 [3]" % LABEL[s], "%.2fx (%.1f vs %.1f jobs/s)"
                         % (q, te["rate"], rq["rate"]), ">= %gx" % T_RATIO,
                         verdict(q >= T_RATIO and te["complete"] and rq["complete"])))
            if q < T_RATIO:
                why.append("(c) %s / RQ: %.1f ms of CPU per job in taskexecd and its processes plus %.1f ms in "
                           "Redis + PostgreSQL bound %d CPUs at about %.0f jobs/s; RQ spends %.1f + %.1f ms"
                           % (LABEL[s], te["all_cpu_ms"], te["redis_cpu_ms"] + te["pg_cpu_ms"], nproc,
                              nproc * 1000.0 / job_total_ms(te), rq["all_cpu_ms"],
                              rq["redis_cpu_ms"] + rq["pg_cpu_ms"]))
        rows.append(("(d) %s: taskexecd CPU per no-op job, c=2 [3, 10]" % LABEL[s], "%.3f ms" % te["sup_cpu_ms"],
                     "<= %g ms" % T_CPU_PER_JOB_MS, verdict(te["sup_cpu_ms"] <= T_CPU_PER_JOB_MS)))
        if te["sup_cpu_ms"] > T_CPU_PER_JOB_MS:
            pf = res.get("perf", {}).get("cats", {}).get("daemon") if s == "taskexec-warm" else None
            why.append("(d) %s: taskexecd spends %.2f ms per job%s: per job it runs the Redis claim script, two "
                       "PostgreSQL functions (claim, finish), %s and reaps the job%s%s"
                       % (LABEL[s], te["sup_cpu_ms"], " (%.0f %% over the target)"
                          % (100 * (te["sup_cpu_ms"] / T_CPU_PER_JOB_MS - 1)),
                          "builds the job and setup memfds, passes 7 fds to the warm server and reads its replies"
                          if s == "taskexec-warm" else "makes a domain (namespaces, tmpfs, mounts), a Landlock "
                          "ruleset, spawns", "" if s == "taskexec-warm" else "; three quarters of it was kernel time "
                          "when profiled on 2026-11-26 (perf, strace -c; before domains)",
                          "; under perf (--perf) %.2f ms per job" % pf["ms_per_job"]
                          if pf else ""))
    i = res.get("idle")
    if i:
        fine = i.get("cpu_ms_fine")
        cpu = fine if fine is not None else i["cpu_ms"]
        rows.append(("(d) taskexecd (fresh) CPU over %d s idle [3]" % i["seconds"], "%.1f ms" % cpu,
                     "<= %g ms (~0)" % T_IDLE_CPU_MS, verdict(cpu <= T_IDLE_CPU_MS)))
        behind = next((e for e in res.get("errors", ()) if e.startswith("(e) %s: only" % LABEL["taskexec"])), None)
        if cpu > T_IDLE_CPU_MS and behind:
            why.append("(d) idle: not idle. This run measured it right after (e), which taskexec fresh could not "
                       "keep up with (%s), so the daemon was still running that backlog (%.0f Redis commands/s); "
                       "the bench now measures idle before (e)" % (behind.split(": ", 1)[1], i["redis_per_s"]))
        if i["calls_per_s"] is not None:
            per_hb = i["calls_per_s"] * HEARTBEAT_S
            rows.append(("(d) Redis calls the idle daemon sends (MONITOR) [3]",
                         "%.1f per heartbeat (%gs); %.1f commands/s incl. Lua" % (per_hb, HEARTBEAT_S,
                                                                                i["redis_per_s"]),
                         "<= %g per heartbeat" % T_IDLE_REDIS_PER_HB, verdict(per_hb <= T_IDLE_REDIS_PER_HB)))
    else:
        rows.append(("(d) idle CPU and Redis calls", "not measured", "", "ERROR"))
    # -- issue 10: warm start
    w = point(res, "taskexec-warm", "noop", 2)
    for other, tgt in (("celery", T_WARM_VS_CELERY), ("rq", T_WARM_VS_RQ)):
        o = point(res, other, "noop", 2)
        q = ratio(w, o)
        if q is None:
            rows.append(("(c) taskexec warm / %s, no-op jobs/s, c=2 [10]" % LABEL[other],
                         "skipped" if other in res.get("skipped", ()) else "not measured", ">= %gx" % tgt,
                         "SKIP" if other in res.get("skipped", ()) else "ERROR"))
            continue
        rows.append(("(c) taskexec warm / %s, no-op jobs/s, c=2 [10]" % LABEL[other], "%.2fx (%.1f vs %.1f jobs/s)"
                     % (q, w["rate"], o["rate"]), ">= %gx" % tgt, verdict(q >= tgt and w["complete"])))
        if q < tgt:
            need = tgt * o["rate"]
            why.append("(c) warm / %s no-op: %.0f jobs/s needs %.0f; a warm no-op job costs %.2f ms of CPU "
                       "(taskexecd %.2f, servers and their forks %.2f, Redis + PostgreSQL %.2f), which bounds %d "
                       "CPUs at %.0f jobs/s; %.0f jobs/s would need <= %.2f ms per job. %s spends %.2f ms per job "
                       "(all its processes %.2f, Redis %.2f)%s"
                       % (LABEL[other], w["rate"], need, job_total_ms(w), w["sup_cpu_ms"],
                          w["all_cpu_ms"] - w["sup_cpu_ms"], w["redis_cpu_ms"] + w["pg_cpu_ms"], nproc,
                          nproc * 1000.0 / job_total_ms(w), need, nproc * 1000.0 / need, LABEL[other],
                          job_total_ms(o), o["all_cpu_ms"], o["redis_cpu_ms"] + o["pg_cpu_ms"],
                          "; other processes used %.0f %% of the machine meanwhile" % w["others_pct"]
                          if w.get("others_pct", 0) > 5 else ""))
            ff = res.get("fork_floor")
            if other == "celery" and ff:
                floor = nproc * 1000.0 / (ff["child_cpu_ms"] + ff["parent_cpu_ms"])
                why.append("(c) warm / Celery, the floor: on this machine in this run a bare python3 that forks a "
                           "no-op child per job (g) spends %.2f ms of CPU per child (%.0f minor page faults, %.1f us "
                           "each if they were all of it) and %.2f ms in the parent, %.0f jobs/s on one loop: even "
                           "with nothing else per job, %d CPUs would top out near %.0f jobs/s, %s the %.0f that "
                           "0.5x Celery asks%s"
                           % (ff["child_cpu_ms"], ff["child_minflt"], ff["us_per_fault"] or 0, ff["parent_cpu_ms"],
                              ff["rate"], nproc, floor, "below" if floor < need else "above", need,
                              "; a warm attempt takes %.0f minor faults" % w["minflt"] if w.get("minflt") else ""))
    w4, c4 = point(res, "taskexec-warm", "sleep20", 4), point(res, "celery", "sleep20", 4)
    q = ratio(w4, c4)
    if q is not None:
        rows.append(("(c) taskexec warm / Celery, 20 ms jobs/s, c=4 [10]", "%.2fx (%.1f vs %.1f jobs/s)"
                     % (q, w4["rate"], c4["rate"]), ">= %gx" % T_WARM_SLEEP_VS_CELERY,
                     verdict(q >= T_WARM_SLEEP_VS_CELERY and w4["complete"])))
        if q < T_WARM_SLEEP_VS_CELERY:
            why.append("(c) warm 20 ms jobs at c=4: each job holds a slot %.1f ms beyond its 20 ms sleep (4 slots / "
                       "%.1f jobs/s), Celery's %.1f ms; the extra is the per-job CPU (%.2f ms all processes + %.2f ms "
                       "Redis + PostgreSQL, vs Celery %.2f ms) queued on %d CPUs shared by 4 slots"
                       % (4000.0 / w4["rate"] - SLEEP_MS, w4["rate"], 4000.0 / c4["rate"] - SLEEP_MS,
                          w4["all_cpu_ms"], w4["redis_cpu_ms"] + w4["pg_cpu_ms"], job_total_ms(c4), nproc))
    else:
        rows.append(("(c) taskexec warm / Celery, 20 ms jobs, c=4 [10]", "not measured",
                     ">= %gx" % T_WARM_SLEEP_VS_CELERY, "ERROR"))
    st = res.get("stamp", {}).get("taskexec-warm")
    if st:
        rows.append(("(e) taskexec warm queue -> task code start, %d jobs at %d/s, c=%d: p50 [10]"
                     % (st["n"], STAMP_RATE, LAT_CONCURRENCY), "%.1f ms" % st["p50"], "<= %g ms" % T_STAMP_P50_MS,
                     verdict(st["p50"] <= T_STAMP_P50_MS and st["got"] == st["n"])))
        rows.append(("(e) taskexec warm queue -> task code start: p99 [10]", "%.1f ms" % st["p99"],
                     "<= %g ms" % T_STAMP_P99_MS, verdict(st["p99"] <= T_STAMP_P99_MS and st["got"] == st["n"])))
        if st["p50"] > T_STAMP_P50_MS or st["p99"] > T_STAMP_P99_MS:
            b = res.get("lat", {}).get("taskexec-warm") or {}
            hold = b.get("hold_ms")
            if st.get("behind"):
                why.append("(e) warm: only %d of %d jobs had ended 30 s after the last enqueue; the percentiles "
                           "are of those" % (st["got"], st["n"]))
            if w and w["rate"] < STAMP_RATE:
                why.append("(e) warm: the offered %d jobs/s is more than the %.1f no-op jobs/s taskexec warm ran at "
                           "concurrency 2 in this run (c), so the queue grew for the whole %d s and the figure is "
                           "mostly time spent waiting in it; the per-job CPU of (c) and (d) is the cause"
                           % (STAMP_RATE, w["rate"], st["n"] // STAMP_RATE))
            why.append("(e) warm: the claim commits %s after the push (queue -> RUNNING p50 at %d/s), the rest to "
                       "task code start is the daemon's hand-off to the server, the fork, the child's set-up "
                       "(fds, memfds, its seccomp filter and listener) and the task module import; %s%s"
                       % ("%.1f ms" % b["p50"] if b else "?", LAT_RATE,
                          "a job holds its slot %.0f ms, so at %d/s the %d slots are %.0f %% busy and late jobs "
                          "wait for one" % (hold, STAMP_RATE, LAT_CONCURRENCY,
                                            100.0 * STAMP_RATE * hold / 1000.0 / LAT_CONCURRENCY)
                          if hold else "", "; load average %.1f on %d CPUs" % (load1(st), nproc)
                          if load1(st) > nproc else ""))
    else:
        rows.append(("(e) taskexec warm queue -> task code start [10]", "not measured", "p50 <= 2, p99 <= 10 ms",
                     "ERROR"))
    if w:
        rows.append(("(d) CPU per no-op job, c=2: taskexec warm daemon + servers + forks (Redis + PostgreSQL) "
                     "[10]", "%.2f ms (+%.2f)" % (w["all_cpu_ms"], w["redis_cpu_ms"] + w["pg_cpu_ms"]),
                     "(reported; Celery %s)" % ("%.2f ms (+%.2f)" % (cel["all_cpu_ms"], cel["redis_cpu_ms"]
                                                                   + cel["pg_cpu_ms"]) if cel else "–"), ""))
        srv = [x for x in (w.get("servers") or []) if x.get("rss_kb")]
        if srv:
            rows.append(("(d) RSS of a warm server (VmRSS of taskexecd's children at the end of the point) [10]",
                         "%.1f MiB (%d servers; peak %.1f MiB)" % (statistics.median(x["rss_kb"] for x in srv)
                                                                  / 1024.0, len(srv),
                                                                  max(x["hwm_kb"] or 0 for x in srv) / 1024.0),
                         "(reported)", ""))
        if w.get("job_rss_kb_p50") is not None:
            rows.append(("(d) peak RSS of a warm no-op child (attempts.max_rss_kb; counts pages shared with "
                         "the server) [10]", "%.1f MiB p50, %.1f max" % (w["job_rss_kb_p50"] / 1024.0,
                                                                        (w["job_rss_kb_max"] or 0) / 1024.0),
                         "(reported)", ""))
    for key, name in (("rss_kb", "fresh"), ("rss_kb_warm", "warm")):
        if res.get(key):
            rows.append(("(d) taskexecd (%s) peak RSS (VmHWM, largest over all runs)" % name,
                         "%.1f MiB" % (res[key] / 1024.0), "(reported)", ""))
    return rows, why


def systems_measured(res):
    return [s for s in SYSTEMS if s not in res.get("skipped", ())]


def latency_rows(res):
    rows = []
    lat = res.get("lat", {})
    for s in systems_measured(res):
        v = lat.get(s)
        if v:
            rows.append((LABEL[s], "%.1f" % v["p50"], "%.1f" % v["p95"], "%.1f" % v["p99"], "%.1f" % v["max"],
                         "%d" % (v["n"] - v["bad"]), fmt(v.get("e2e_p50")), fmt(v.get("others_pct"), "%.0f")))
        else:
            rows.append((LABEL[s], "–", "–", "–", "–", "not measured", "–", "–"))
    for t in TE_SYSTEMS:
        te = lat.get(t)
        for s in ("rq", "celery"):
            v = lat.get(s)
            if te and v:
                rows.append(("%s / %s" % (LABEL[t], LABEL[s]), *("%.2fx" % (te[k] / v[k]) if v[k] > 0 else "–"
                                                                for k in ("p50", "p95", "p99", "max")), "", "", ""))
    return rows


def stamp_rows(res):
    rows = []
    st = res.get("stamp", {})
    for s in systems_measured(res):
        v = st.get(s)
        if v:
            rows.append((LABEL[s], "%.1f" % v["p50"], "%.1f" % v["p95"], "%.1f" % v["p99"], "%.1f" % v["max"],
                         "%d of %d" % (v["got"], v["n"]) + (" (fell behind: the rest had not ended 30 s after "
                                                            "the last enqueue)" if v.get("behind") else ""),
                         fmt(v.get("others_pct"), "%.0f")))
        else:
            err = next((e.split(": ", 1)[1] for e in res.get("errors", ())
                        if e.startswith("(e) %s: " % LABEL[s])), None)
            cap = point(res, s, "noop", 2)
            rows.append((LABEL[s], "–", "–", "–", "–", "not measured" + (": " + err if err else "")
                         + ("; it ran %.1f no-op jobs/s at c=2 in (c), below the offered %d/s" % (cap["rate"], STAMP_RATE)
                            if cap and cap["rate"] < STAMP_RATE else ""), "–"))
    for t in TE_SYSTEMS:
        te = st.get(t)
        for s in ("rq", "celery"):
            v = st.get(s)
            if te and v:
                rows.append(("%s / %s" % (LABEL[t], LABEL[s]), *("%.2fx" % (te[k] / v[k]) if v[k] > 0 else "–"
                                                                for k in ("p50", "p95", "p99", "max")), "", ""))
    return rows


def throughput_rows(res):
    rows = []
    for kind in KINDS:
        for s in systems_measured(res):
            cells = []
            for c in CONCURRENCY:
                p = point(res, s, kind, c)
                cells.append(("%.1f" % p["rate"] + ("" if p["complete"] else " (cut off at %d)" % p["done"])
                              + (" " + DAGGER if p.get("others_pct", 0) > OTHERS_MARK_PCT else ""))
                             if p else "–")
            rows.append((KIND_LABEL[kind], LABEL[s], *cells))
        for t in TE_SYSTEMS:
            for s in ("rq", "celery"):
                if s not in systems_measured(res):
                    continue
                cells = []
                for c in CONCURRENCY:
                    q = ratio(point(res, t, kind, c), point(res, s, kind, c))
                    cells.append("–" if q is None else "%.2fx" % q)
                rows.append((KIND_LABEL[kind], "%s / %s" % (LABEL[t], LABEL[s]), *cells))
    return rows


def resource_rows(res):
    rows = []
    sup_name = {"taskexec": "taskexecd", "taskexec-warm": "taskexecd", "rq": "`rq worker` x c",
                "celery": "celery main process"}
    for kind in KINDS:
        for s in systems_measured(res):
            p = point(res, s, kind, 2)
            if not p:
                continue
            rows.append((KIND_LABEL[kind], LABEL[s], sup_name[s], "%.2f" % p["sup_cpu_ms"],
                         "%.2f" % (p["all_cpu_ms"] - p["sup_cpu_ms"]), "%.2f" % p["all_cpu_ms"],
                         "%.2f" % (p["redis_cpu_ms"] + p["pg_cpu_ms"]),
                         fmt(p.get("minflt"), "%.0f"),
                         "%.1f" % (p["sup_rss_kb"] / 1024.0), "%.1f" % (p["tree_rss_kb"] / 1024.0)))
    return rows


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(str(v).replace("|", "\\|") for v in r) + " |")
    return "\n".join(out)


def text_table(head, rows):
    widths = [max(len(str(r[k])) for r in list(rows) + [head]) for k in range(len(head))]
    out = ["  ".join("%-*s" % (w, h) for w, h in zip(widths, head)).rstrip(),
           "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join("%-*s" % (w, v) for w, v in zip(widths, r)).rstrip())
    return "\n".join(out)


TARGET_HEAD = ("measure [issue]", "figure", "target", "result")
LAT_HEAD = ("system", "p50 ms", "p95 ms", "p99 ms", "max ms", "jobs", "enqueue -> end p50 ms",
            "other work, % of CPU")
THR_HEAD = ("job", "system", "c = 1", "c = 2", "c = 4")
STAMP_HEAD = ("system", "p50 ms", "p95 ms", "p99 ms", "max ms", "jobs", "other work, % of CPU")
RES_HEAD = ("job", "system", "supervisor", "supervisor CPU ms/job",
            "job processes CPU ms/job (forks, servers, work-horses, pool)", "all its processes CPU ms/job",
            "Redis + PostgreSQL CPU ms/job", "minor page faults/job (all its processes)", "supervisor peak RSS MiB", "resident peak RSS MiB (sum)")


def notes(res, jobs):
    out = []
    a = res.get("run")
    if a:
        out.append("(a) p90: taskexec run %.1f ms (weak %.1f, warm %.1f), python3 %.1f ms; the sandboxed job itself "
                   "(summary duration_ms, fork to exit) median %s ms (weak %s, warm %s); `taskexec --version` alone "
                   "%.1f ms. All `taskexec run` figures use ad_hoc with [start] mode = fresh unless marked warm"
                   % (a["te_p90"], a["weak_p90"], a["warm_p90"], a["py_p90"],
                      *("?" if a.get(k) is None else "%g" % a[k] for k in ("inner", "inner_weak", "inner_warm")),
                      a["version"]))
    out.append("taskexec fresh and taskexec warm are one build, on the ad_hoc task type from two policy copies in "
               "the bench's temporary directory that differ only in [start] mode (fresh | warm), both with "
               "TASKEXEC_ISOLATION=domain; the shipped default does not matter")
    out.append("(b) started: taskexec when the claim commits in PostgreSQL (jobs.started_at, before the fork); "
               "RQ in the forked work-horse (job.started_at); Celery on entry to the task in the pool process. "
               "Each system ran %d workers/slots" % LAT_CONCURRENCY)
    out.append("(c) %d jobs per point, put in the queue before the workers start; rate = completed jobs / (first "
               "start -> last end) by each system's own timestamps (taskexec jobs.started_at/finished_at, RQ "
               "started_at/ended_at, Celery time.time() in the task). Concurrency: taskexecd "
               "TASKEXEC_CONCURRENCY=c; c `rq worker` processes (RQ 1.x has no pool); one Celery worker, "
               "--pool=prefork --concurrency=c, default prefetch, no result backend (each task RPUSHes its "
               "timestamps to Redis instead). Issue 3 asks (c) for 2,000 jobs; 600 keep `make bench` under 6 "
               "minutes (--jobs 2000 for the issue's count). Each figure is one run: on a shared machine "
               "compare ratios across runs rather than single points" % jobs if jobs == 600 else
               "(c) %d jobs per point, put in the queue before the workers start; rate = completed jobs / (first "
               "start -> last end) by each system's own timestamps" % jobs)
    out.append("(d) CPU from /proc over the run of each point, per job: supervisor = taskexecd / the `rq worker` "
               "processes / Celery's main process; all its processes adds the job processes, RQ's forked "
               "work-horses, Celery's pool processes; Redis from INFO cpu, PostgreSQL all its processes (the "
               "bench's own polling included, RQ and Celery do not use PostgreSQL). Resident = the sum of VmHWM "
               "of the processes alive at the end (taskexec's job processes are gone by then). /proc counts CPU in "
               "clock ticks of %.0f ms: figures below about 0.1 ms/job are at the edge of what %d jobs resolve"
               % (1000.0 / CLK_TCK, jobs))
    out.append("(e) queue -> task code start at %d jobs/s, concurrency %d: the wall clock just before the "
               "enqueue against time.time() on entry to the task function, in the process that runs it "
               "(taskexec: benchtasks.noop.stamp returns it, read from taskexec.jobs.result; RQ: rqtasks.stamp "
               "RPUSHes it from the work-horse; Celery: the no-op task's own entry stamp)"
               % (STAMP_RATE, LAT_CONCURRENCY))
    for s in TE_SYSTEMS:
        te = point(res, s, "noop", 2)
        if te and te.get("job_cpu_ms_p50") is not None:
            out.append("(d) %s job processes (attempts rows, no-op, c=2): CPU p50 %.0f ms, peak RSS p50 %.1f MiB, "
                       "max %.1f MiB" % (LABEL[s], te["job_cpu_ms_p50"], (te["job_rss_kb_p50"] or 0) / 1024.0,
                                         (te["job_rss_kb_max"] or 0) / 1024.0))
    w = point(res, "taskexec-warm", "noop", 2)
    if w and w.get("servers"):
        out.append("(d) taskexec warm: taskexecd's direct children at the end of the no-op c=2 point (the warm "
                   "servers, pid 1 of their namespaces): %s. In warm mode \"job processes\" in the CPU table "
                   "are the servers and the forks they reaped" % "; ".join(
                       "pid %d VmRSS %.1f MiB, VmHWM %.1f MiB" % (x["pid"], (x["rss_kb"] or 0) / 1024.0,
                                                                  (x["hwm_kb"] or 0) / 1024.0)
                       for x in w["servers"]))
    ff = res.get("fork_floor")
    if ff:
        out.append("(g) fork floor (load %s): a bare `python3 -I -S` with json, inspect, logging and traceback "
                   "imported and gc.freeze() forks a no-op child per job and reaps it: %.0f jobs/s on one loop, "
                   "%.2f ms CPU per child, %.2f ms in the parent, %.0f minor faults per child"
                   % (ff["load"], ff["rate"], ff["child_cpu_ms"], ff["parent_cpu_ms"], ff["child_minflt"]))
    i = res.get("idle")
    if i and i.get("calls"):
        out.append("(d) calls the idle daemon sent in %d s: %s" % (i["seconds"], ", ".join(
            "%s %d" % kv for kv in sorted(i["calls"].items(), key=lambda kv: -kv[1]))))
    loads = [p["load"] for p in res.get("thr", {}).values()]
    if loads:
        ones = [float(x.split()[0]) for x in loads if x != "?"]
        if ones:
            out.append("1-minute load average at the start of the throughput points: min %.2f, max %.2f "
                       "(on %s CPUs; it counts the bench's own processes too)" % (min(ones), max(ones),
                                                                                 os.cpu_count()))
    marked = ["%s %s c=%d: %.0f %%" % (LABEL[p["system"]], "no-op" if p["kind"] == "noop" else "20 ms", p["c"],
                                       p["others_pct"])
              for p in res.get("thr", {}).values() if p.get("others_pct", 0) > OTHERS_MARK_PCT]
    if marked:
        out.append("%s other processes on the machine used more than %g %% of its CPU during: %s"
                   % (DAGGER, OTHERS_MARK_PCT, "; ".join(marked)))
    for s in res.get("skipped", ()):
        out.append("%s: %s" % (LABEL[s], res.get("skip_note", {}).get(s, "skipped")))
    for e in res.get("errors", []):
        out.append("could not measure: " + e)
    return out


def interference_summary(res):
    pts = [p for p in list(res.get("thr", {}).values()) + list(res.get("lat", {}).values())
           + list(res.get("stamp", {}).values()) if "others_pct" in p]
    if not pts:
        return "?"
    worst = max(pts, key=lambda p: p["others_pct"])
    return ("%.1f %% on average, at most %.1f %%; hypervisor steal at most %.1f %%"
            % (statistics.mean(p["others_pct"] for p in pts), worst["others_pct"],
               max(p["steal_pct"] for p in pts)))


def header(m, res):
    v = res.get("versions", {})
    return ["- date: %s" % m["date"],
            "- machine: %s CPUs, %s, kernel %s, Python %s" % (m["nproc"], m["model"], m["kernel"], m["python"]),
            "- load average (1, 5, 15 min): %s at the start, %s at the end — other work on this shared machine "
            "skews the figures" % (m["load"], res.get("load_end", "?")),
            "- CPU used by other processes (other tests, the VM's agent, kernel threads) while each figure was "
            "measured, /proc/stat less the measured processes, Redis, PostgreSQL and the bench: %s of the "
            "machine; figures taken while it exceeded %g %% are marked %s"
            % (interference_summary(res), OTHERS_MARK_PCT, DAGGER),
            "- versions: %s" % ", ".join("%s %s" % kv for kv in v.items()),
            "- `make bench` (tests/bench/bench.py), total %.0f s; one Redis (taskexec DB 0, RQ DB 1, Celery DB 2) "
            "and one PostgreSQL 15, started by the bench" % res.get("total_s", 0)] + (
                ["- this report was written again (`bench.py --render`, %s) from the run's figures, unchanged; "
                 "only the explanations are newer" % res["rendered"]] if res.get("rendered") else [])


def write_report(out_dir, m, res, jobs, target, why, png_ok):
    lines = ["# taskexec benchmark: taskexec fresh and warm vs RQ vs Celery", ""] + header(m, res) + [""]
    if png_ok:
        lines += ["![latency CDFs and throughput vs concurrency](report.png)", ""]
    lines += ["## Targets", "", md_table(TARGET_HEAD, target), ""]
    if why:
        lines += ["Why the misses:", ""] + ["- " + w for w in why] + [""]
    lines += ["## Enqueue -> start latency at %d jobs/s (concurrency %d)" % (LAT_RATE, LAT_CONCURRENCY), "",
              "Ratios taskexec / X below 1 mean taskexec starts jobs sooner.", "",
              md_table(LAT_HEAD, latency_rows(res)), "",
              "## Queue -> task code start at %d jobs/s (concurrency %d)" % (STAMP_RATE, LAT_CONCURRENCY), "",
              "A timestamp taken inside the task against the enqueue time. Issue 10's targets for taskexec warm: "
              "p50 <= %g ms, p99 <= %g ms." % (T_STAMP_P50_MS, T_STAMP_P99_MS), "",
              md_table(STAMP_HEAD, stamp_rows(res)), "",
              "## Throughput, jobs/s (%d jobs per point)" % jobs, "",
              "Ratios taskexec / X above 1 mean taskexec runs more jobs per second.", "",
              md_table(THR_HEAD, throughput_rows(res)), "",
              "## CPU and memory at concurrency 2", "",
              md_table(RES_HEAD, resource_rows(res)), ""] + perf_section(res) + [
              "## Notes", ""] + ["- " + n for n in notes(res, jobs)] + [""]
    (out_dir / "report.md").write_text("\n".join(lines))


def perf_section(res):
    pf = res.get("perf")
    if not pf:
        return []
    rows = []
    for key, what, fix in PERF_CATS:
        c = pf["cats"].get(key)
        if c:
            rows.append((what, fmt(None if c.get("share_te") is None else 100 * c["share_te"], "%.0f %%"),
                         "%.0f %%" % (100 * c["share"]), fmt(c["ms_per_job"], "%.2f"), fix))
    return ["## Where the CPU of a warm no-op job goes (perf, --perf)", "",
            "`perf record -a -g` (cpu-clock, every CPU) over one extra run of %d warm no-op jobs at concurrency 2 "
            "(%.1f jobs/s under perf, %.2f ms CPU per job in taskexecd and its processes by /proc); %d samples, "
            "%.0f ms busy, %.0f ms idle. Shares are of the busy time of the whole machine; the kernel share of "
            "the forks is split by the stack: a sample under exc_page_fault is a page fault (on this PVM guest "
            "the fault's time is charged where it re-enables interrupts, so first-touch and copy-on-write "
            "(do_wp_page, seen in %d stacks) are not told apart)."
            % (pf["jobs"], pf.get("rate") or 0, pf.get("all_cpu_ms") or 0, pf["samples"], pf["busy_ms"],
               pf["idle_ms"], pf["cow_samples"]), "",
            md_table(("where", "share of taskexec's CPU (daemon, servers and forks, PostgreSQL, Redis)",
                      "share of the machine's busy CPU", "ms per job", "what would remove it"), rows), ""]


def write_json(out_dir, m, res):
    doc = {"machine": m, **{k: v for k, v in res.items()}}
    (out_dir / "report.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str) + "\n")


COLORS = {"taskexec": "#1f77b4", "taskexec-warm": "#9467bd", "rq": "#d62728", "celery": "#2ca02c"}


def write_png(out_dir, m, res):
    """Three panels: enqueue -> start CDF at 20 jobs/s, queue -> task code start CDF at 50 jobs/s,
    throughput vs concurrency; one colour per system. False if it cannot."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError as e:
        res.setdefault("errors", []).append("plot: matplotlib not importable (%s)" % e)
        return False
    fig, (ax1, ax3, ax2) = plt.subplots(1, 3, figsize=(18, 5.4))

    def cdf(ax, key, title, xlabel, marks):
        for s in systems_measured(res):
            v = res.get(key, {}).get(s)
            if not v or not v.get("samples"):
                continue
            xs = [max(x, 0.01) for x in v["samples"]]
            ys = [(k + 1) / len(xs) for k in range(len(xs))]
            ax.step(xs, ys, where="post", color=COLORS[s],
                    label="%s  p50 %.1f / p99 %.1f ms" % (LABEL[s], v["p50"], v["p99"]))
        for x, ls, text in marks:
            ax.axvline(x, color="grey", ls=ls, lw=1)
            ax.text(x, 0.55, " " + text, color="grey", fontsize=7, rotation=90)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "%g" % v))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("fraction of jobs")
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)

    cdf(ax1, "lat", "Enqueue -> start at %d jobs/s, concurrency %d" % (LAT_RATE, LAT_CONCURRENCY),
        "enqueue -> start (ms, log; taskexec: claim committed)",
        ((T_LAT_P50_MS, ":", "p50 target (issue 3)"), (T_LAT_P99_MS, "--", "p99 target (issue 3)")))
    cdf(ax3, "stamp", "Queue -> task code start at %d jobs/s, concurrency %d" % (STAMP_RATE, LAT_CONCURRENCY),
        "queue -> time.time() inside the task (ms, log)",
        ((T_STAMP_P50_MS, ":", "warm p50 target (issue 10)"), (T_STAMP_P99_MS, "--", "warm p99 target (issue 10)")))
    for s in systems_measured(res):
        for kind, ls, mk in (("noop", "-", "o"), ("sleep20", "--", "s")):
            cs, rates = [], []
            for c in CONCURRENCY:
                p = point(res, s, kind, c)
                if p and p["rate"]:
                    cs.append(c)
                    rates.append(p["rate"])
            if cs:
                ax2.plot(cs, rates, ls=ls, marker=mk, color=COLORS[s],
                         label="%s, %s" % (LABEL[s], "no-op" if kind == "noop" else "20 ms jobs"))
    ax2.set_xscale("log", base=2)
    ax2.set_xticks(list(CONCURRENCY))
    ax2.set_xticklabels([str(c) for c in CONCURRENCY])
    ax2.set_yscale("log")
    ax2.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: "%g" % v))
    ax2.set_xlabel("concurrency (slots / worker processes)")
    ax2.set_ylabel("jobs/s (log scale)")
    ax2.set_title("Throughput vs concurrency")
    ax2.grid(True, which="both", alpha=0.3)
    ax2.legend(loc="best", fontsize=8)
    fig.suptitle("taskexec fresh and warm vs RQ vs Celery — %s — %s CPUs, %s, kernel %s — load %s"
                 % (m["date"], m["nproc"], m["model"], m["kernel"], m["load"]), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(out_dir / "report.png", dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", metavar="DIR", default=str(DEFAULT_OUT),
                    help="where report.md, report.png and report.json go (default build/bench)")
    ap.add_argument("--jobs", type=int, default=None, help="jobs per throughput point (default 600)")
    ap.add_argument("--quick", action="store_true", help="fewer runs and jobs (a trial, not the figures)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--skip-rq", action="store_true", help="do not run RQ")
    ap.add_argument("--skip-celery", action="store_true", help="do not run Celery")
    ap.add_argument("--render", metavar="JSON",
                    help="measure nothing: write report.md and report.png again from a report.json")
    ap.add_argument("--perf", action="store_true",
                    help="profile one extra warm no-op point at concurrency 2 with `perf record -a -g`")
    args = ap.parse_args()

    if args.render:
        doc = json.loads(Path(args.render).read_text())
        m = doc.pop("machine")
        doc["rendered"] = "%s from %s" % (datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                                          Path(args.render).name)
        out_dir = Path(args.out).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        target, why = target_rows(doc, m["nproc"])
        write_report(out_dir, m, doc, doc["jobs_per_point"], target, why, write_png(out_dir, m, doc))
        return 0

    m = machine()                   # date and load average at the start
    runs = 10 if args.quick else 40
    lat_seconds = 3 if args.quick else 10
    jobs = args.jobs or (100 if args.quick else 600)
    idle_s = 3 if args.quick else 10
    point_timeout = 60 if args.quick else 120
    out_dir = Path(args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    for f in (TASKEXEC, TASKEXECD):
        if not os.access(f, os.X_OK):
            log("%s is not built (run make)" % f)
            return 1
    # The sandbox cannot write __pycache__; compile the bench tasks like `make pyc` does for tasks/.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(HERE / "benchtasks")], check=True)

    res = {"errors": [], "skipped": [], "skip_note": {}, "lat": {}, "stamp": {}, "thr": {}, "jobs_per_point": jobs,
           "versions": versions()}
    for s, flag, mod, pkg in (("rq", args.skip_rq, "rq", "python3-rq"),
                              ("celery", args.skip_celery, "celery", "python3-celery")):
        if flag:
            res["skipped"].append(s)
            res["skip_note"][s] = "skipped (--skip-%s)" % s
            continue
        try:
            __import__(mod)
        except ImportError as e:
            res["skipped"].append(s)
            res["skip_note"][s] = "not measured: %s not importable (%s; Debian %s)" % (mod, e, pkg)
            res["errors"].append("%s not importable" % mod)

    root = Path(tempfile.mkdtemp(prefix="taskexec-bench-", dir="/tmp"))
    root.chmod(0o755)               # the postgres and job users must reach it
    services = Services(root)
    systems = {}
    t_start = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    try:
        log("(a) taskexec run (fresh: domain, weak; warm) vs python3, %d interleaved runs" % runs)
        try:
            res["run"] = bench_run(runs, root)
        except CannotMeasure as e:
            res["errors"].append("(a) %s" % e)

        log("(g) fork floor: a bare python3 forking a no-op child per job")
        try:
            res["fork_floor"] = bench_fork_floor(100 if args.quick else 400)
        except (CannotMeasure, ValueError, subprocess.SubprocessError) as e:
            res["errors"].append("(g) %s" % e)

        log("starting Redis and PostgreSQL (scripts/services)")
        services.start()
        r = redis.Redis.from_url(services.redis_url)
        for name in TE_SYSTEMS:
            systems[name] = Taskexec(root, services, r, name)
        if "rq" not in res["skipped"]:
            systems["rq"] = RQSystem(root, services.redis_url)
        if "celery" not in res["skipped"]:
            systems["celery"] = CelerySystem(root, services.redis_url)
        svc_cpu = None

        for name, sysm in systems.items():
            log("(b) %s: enqueue -> start latency, %d jobs/s for %d s, concurrency %d"
                % (LABEL[name], LAT_RATE, lat_seconds, LAT_CONCURRENCY))
            try:
                sysm.purge()
                sysm.start(LAT_CONCURRENCY)
                if svc_cpu is None:
                    svc_cpu = ServiceCPU(r, services)     # PostgreSQL runs by now
                res["lat"][name] = bench_latency(sysm, svc_cpu, LAT_RATE, lat_seconds)
                if name == "taskexec":
                    # Before (e): a system that cannot keep up with 50 jobs/s
                    # is still working off its queue after it.
                    log("(d) taskexecd idle, %d s" % idle_s)
                    res["idle"] = bench_idle(r, services.redis_url, sysm.daemon.pid, idle_s)
                log("(e) %s: queue -> task code start, %d jobs/s for %d s" % (LABEL[name], STAMP_RATE, lat_seconds))
                try:
                    res["stamp"][name] = bench_stamp(sysm, svc_cpu, STAMP_RATE, lat_seconds)
                except CannotMeasure as e:
                    res["errors"].append("(e) %s: %s" % (LABEL[name], e))
            except CannotMeasure as e:
                res["errors"].append("(b) %s: %s" % (LABEL[name], e))
            finally:
                sysm.stop()
                sysm.purge()

        # Interleaved (system innermost) so that a change in the machine's
        # background load hits every system alike.
        for kind in KINDS:
            for c in CONCURRENCY:
                for name, sysm in systems.items():
                    log("(c) %s: %d %s jobs at concurrency %d" % (LABEL[name], jobs, KIND_LABEL[kind], c))
                    try:
                        p = bench_point(sysm, svc_cpu, kind, c, jobs, point_timeout)
                        res["thr"]["%s/%s/%d" % (name, kind, c)] = p
                        log("    %.1f jobs/s, %s CPU %.2f ms/job, all %.2f ms/job"
                            % (p["rate"], "supervisor", p["sup_cpu_ms"], p["all_cpu_ms"]))
                        if not p["complete"]:
                            res["errors"].append("(c) %s %s c=%d: only %d of %d jobs ended within %d s"
                                                 % (LABEL[name], kind, c, p["done"], jobs, point_timeout))
                    except CannotMeasure as e:
                        res["errors"].append("(c) %s %s c=%d: %s" % (LABEL[name], kind, c, e))
        if args.perf:
            perf_data = root / "perf.data"
            log("(f) perf record -a -g: taskexec warm, %d no-op jobs at concurrency 2" % jobs)
            try:
                p = bench_point(systems["taskexec-warm"], svc_cpu, "noop", 2, jobs, point_timeout, perf_data)
                res["perf"] = analyze_perf(perf_data, p["daemon_pid"], p["completed"])
                res["perf"]["rate"] = p["rate"]
                res["perf"]["all_cpu_ms"] = p["all_cpu_ms"]
            except (CannotMeasure, OSError, subprocess.SubprocessError) as e:
                res["errors"].append("(f) perf: %s" % e)
        res["rss_kb"] = systems["taskexec"].rss_kb
        res["rss_kb_warm"] = systems["taskexec-warm"].rss_kb
    except CannotMeasure as e:
        res["errors"].append(str(e))
    except KeyboardInterrupt:
        log("interrupted")
        res["errors"].append("interrupted")
    finally:
        for sysm in systems.values():
            try:
                sysm.close()
            except Exception as e:          # stop the others and the services all the same
                log("stopping %s: %s" % (sysm.name, e))
        services.stop()
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    res["load_end"] = loadavg()
    res["total_s"] = time.monotonic() - t_start
    target, why = target_rows(res, m["nproc"])
    png_ok = write_png(out_dir, m, res)
    write_report(out_dir, m, res, jobs, target, why, png_ok)
    write_json(out_dir, m, res)

    print()
    print("taskexec fresh and warm vs RQ vs Celery — %s — %s CPUs, %s, kernel %s — load average %s at start, %s at end"
          % (m["date"], m["nproc"], m["model"], m["kernel"], m["load"], res["load_end"]))
    print()
    print(text_table(TARGET_HEAD, target))
    if why:
        print()
        for w in why:
            print("  why: " + w)
    print()
    print("enqueue -> start latency at %d jobs/s, concurrency %d" % (LAT_RATE, LAT_CONCURRENCY))
    print(text_table(LAT_HEAD, latency_rows(res)))
    print()
    print("queue -> task code start at %d jobs/s, concurrency %d" % (STAMP_RATE, LAT_CONCURRENCY))
    print(text_table(STAMP_HEAD, stamp_rows(res)))
    print()
    print("throughput, jobs/s, %d jobs per point" % jobs)
    print(text_table(THR_HEAD, throughput_rows(res)))
    print()
    print("CPU and memory at concurrency 2")
    print(text_table(RES_HEAD, resource_rows(res)))
    print()
    for line in perf_section(res):
        print(line)
    for n in notes(res, jobs):
        print("  " + n)
    shown = out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir
    print("\n(also in %s/report.md, report.png, report.json)" % shown)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
