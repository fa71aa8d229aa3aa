#!/usr/bin/python3
"""make bench: what taskexec costs on this machine, side by side with its references.

One run prints, with the targets of issues 2 and 3 next to the figures:

  (a) `taskexec run benchtasks.noop:noop`, median wall time over interleaved
      runs, vs `/usr/bin/python3 -I -S -c 'import json'` (the least any shim
      must do) and the difference                                  target <= 5 ms
  (b) queue -> RUNNING latency at a steady 20 jobs/s with free slots:
      push time (the documented producer MULTI) to jobs.started_at
                                                   target p50 <= 5 ms, p99 <= 25 ms
      and RQ's enqueue -> start latency measured the same way (reference)
  (c) no-op jobs/s at concurrency 2 for 2,000 jobs, taskexecd (2 slots) vs
      RQ (2 `rq worker` processes on the same Redis, DB 1)         target >= 2x RQ
  (d) the daemon's own CPU per job during (c)                  target <= 0.5 ms/job
      its CPU and the Redis commands/s over 10 s idle, its peak RSS

and writes the same table as Markdown to build/bench/report.md.

It starts its own Redis and PostgreSQL (scripts/services, in a temporary
directory under /tmp) and stops them at the end, always.  Misses are reported,
not hidden: the exit status is 0 unless something could not be measured.

Options: --quick (fewer runs and jobs, for trying the script), --keep (keep
the temporary directory: daemon log, services), --skip-rq.
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
REPORT = BUILD / "bench" / "report.md"
PYTHON = "/usr/bin/python3"
RQ = "/usr/bin/rq"

PREFIX = "bench"
EXECUTOR_ID = "bench-1"
TASK_TYPE = "ad_hoc"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets (issues 2 and 3, performance sections).
T_RUN_OVERHEAD_MS = 5.0
T_LAT_P50_MS = 5.0
T_LAT_P99_MS = 25.0
T_RATIO = 2.0
T_CPU_PER_JOB_MS = 0.5
T_IDLE_CPU_MS = 10.0        # "about 0": at most 10 ms of CPU in 10 s idle (0.1 % of a core)
T_IDLE_REDIS_PER_HB = 5.0   # "at most a few Redis calls per heartbeat interval"
HEARTBEAT_S = 1.0


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


def proc_stat(pid):
    """(utime+stime, cutime+cstime) of pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    own = (int(rest[11]) + int(rest[12])) / CLK_TCK
    children = (int(rest[13]) + int(rest[14])) / CLK_TCK
    return own, children


def proc_oncpu_ns(pid):
    """Time on CPU in ns from /proc/PID/schedstat (finer than clock ticks), or None."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


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
    try:
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
    except OSError:
        load = "?"
    return {"nproc": os.cpu_count(), "model": model, "kernel": platform.release(), "load": load,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


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


def payload(job_id, method="noop", parameters=None):
    return json.dumps({
        "job_id": job_id,
        "task_type": TASK_TYPE,
        "module_path": "benchtasks.noop",
        "class_name": None,
        "method_name": method,
        "parameters": parameters or {},
        "priority": "normal",
        "enqueued_at": iso_utc(time.time()),
    }, separators=(",", ":"))


def with_db(url, db):
    u = urlsplit(url)
    return urlunsplit((u.scheme, u.netloc, "/%d" % db, u.query, u.fragment))


# ---------------------------------------------------------------------------
# the processes the bench starts (each stopped by its own pid)

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

    def stop(self):
        if not self.started:
            return
        r = subprocess.run([str(SERVICES), "stop", str(self.dir)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
        if r.returncode != 0:
            log("scripts/services stop failed (%d): %s" % (r.returncode, r.stderr.strip()))


class Daemon:
    def __init__(self, root, services, concurrency):
        self.root = root
        self.log_path = root / "taskexecd.log"
        state = root / "state"
        state.mkdir(exist_ok=True)
        state.chmod(0o755)
        env = runner_env()
        env.update({
            "TASKEXEC_REDIS_URL": services.redis_url,
            "TASKEXEC_DB_URL": services.db_url,
            "TASKEXEC_QUEUE_PREFIX": PREFIX,
            "TASKEXEC_EXECUTOR_ID": EXECUTOR_ID,
            "TASKEXEC_CONCURRENCY": str(concurrency),
            "TASKEXEC_HEARTBEAT_INTERVAL": "%gs" % HEARTBEAT_S,
            "TASKEXEC_HTTP_LISTEN": "off",
            "TASKEXEC_POLICY_DIR": str(REPO / "policy"),
            "TASKEXEC_STATE_DIR": str(state),
            "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
        })
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([str(TASKEXECD)], env=env, cwd=str(root), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def tail(self, n=15):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class RQWorkers:
    def __init__(self, root, url, queue, n):
        self.procs = []
        for i in range(n):
            out = open(root / ("rq-worker-%d.log" % i), "wb")
            self.procs.append(subprocess.Popen(
                [PYTHON, RQ, "worker", "--url", url, "--path", str(HERE), "--name", "bench-rq-%d" % i, queue],
                env=clean_env(), cwd=str(root), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT))
            out.close()

    def alive(self):
        return all(p.poll() is None for p in self.procs)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)     # warm shutdown: finish the current job, then exit
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)


# ---------------------------------------------------------------------------
# (a) taskexec run vs a bare interpreter

def bench_run(runs):
    env = runner_env()
    te = [str(TASKEXEC), "run", "benchtasks.noop:noop"]
    py = [PYTHON, "-I", "-S", "-c", "import json"]

    def timed(argv):
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, cwd="/tmp", stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return (time.perf_counter() - t0) * 1000.0, r

    _, r = timed(te)
    summary = r.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
    if r.returncode != 0 or '"outcome":"completed"' not in summary[0].replace(" ", ""):
        raise CannotMeasure("taskexec run benchtasks.noop:noop exited %d: %s"
                            % (r.returncode, r.stderr.decode(errors="replace").strip()[-500:]))
    for _ in range(3):       # warm the page cache for both
        timed(te)
        timed(py)
    t_te, t_py, inner = [], [], []
    for _ in range(runs):
        ms, r = timed(te)
        if r.returncode != 0:
            raise CannotMeasure("taskexec run failed during the runs: exit %d" % r.returncode)
        t_te.append(ms)
        try:
            inner.append(json.loads(r.stderr.decode().strip().splitlines()[-1].split(" ", 2)[2])["duration_ms"])
        except (ValueError, IndexError, KeyError):
            pass
        ms, r = timed(py)
        t_py.append(ms)
    # Where the difference goes: the CLI process alone (exec, dynamic linking, no job).
    t_ver = [timed([str(TASKEXEC), "--version"])[0] for _ in range(10)]
    return {"version": statistics.median(t_ver), "runs": runs, "te": statistics.median(t_te), "py": statistics.median(t_py),
            "te_p90": pct(t_te, 90), "py_p90": pct(t_py, 90),
            "inner": statistics.median(inner) if inner else None}


# ---------------------------------------------------------------------------
# taskexecd: producer, waiting, rows

def key(*parts):
    return ":".join(["{%s}" % PREFIX, *parts])


def push(r, body):
    """The documented producer step (taskexec-protocol(7)); returns the wall clock just before EXEC."""
    p = r.pipeline(transaction=True)
    p.rpush(key("queue", "normal"), body)
    p.zadd(key("wake"), {"w": 0})
    t = time.time()
    p.execute()
    return t


def db_query(conn, sql, args=()):
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


def wait_terminal(conn, daemon, like, n, timeout):
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = db_query(conn, "SELECT count(*) FROM taskexec.jobs WHERE job_id LIKE %s "
                              "AND status IN ('COMPLETED', 'FAILED')", (like,))[0][0]
        if done >= n:
            return done
        if not daemon.alive():
            raise CannotMeasure("taskexecd died:\n" + daemon.tail())
        time.sleep(0.2)
    return done


def wait_ready(r, conn, daemon, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not daemon.alive():
            raise CannotMeasure("taskexecd exited at start:\n" + daemon.tail())
        if r.exists(key("heartbeat", EXECUTOR_ID)):
            try:
                if db_query(conn, "SELECT 1 FROM taskexec.executors WHERE executor_id = %s", (EXECUTOR_ID,)):
                    return
            except psycopg2.Error:
                conn.rollback()
        time.sleep(0.1)
    raise CannotMeasure("taskexecd not ready after %ds:\n%s" % (timeout, daemon.tail()))


def paced(rate, seconds, send):
    """Call send(i) at a steady rate; returns the list of what send returned."""
    n = int(rate * seconds)
    t0 = time.monotonic() + 0.05
    out = []
    for i in range(n):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        out.append(send(i))
    return out


def bench_latency(r, conn, daemon, rate, seconds):
    run = uuid.uuid4().hex[:6]
    # Warm-up: a few jobs so the measured ones meet a daemon that has run jobs.
    for i in range(6):
        push(r, payload("warm-%s-%d" % (run, i)))
        time.sleep(0.1)
    wait_terminal(conn, daemon, "warm-%s-%%" % run, 6, 30)

    pushed = {}

    def send(i):
        jid = "lat-%s-%05d" % (run, i)
        pushed[jid] = push(r, payload(jid))

    paced(rate, seconds, send)
    n = len(pushed)
    done = wait_terminal(conn, daemon, "lat-%s-%%" % run, n, 30)
    if done < n:
        raise CannotMeasure("only %d of %d latency jobs finished within 30 s" % (done, n))
    rows = db_query(conn, "SELECT job_id, status, extract(epoch FROM started_at), extract(epoch FROM finished_at) "
                          "FROM taskexec.jobs WHERE job_id LIKE %s", ("lat-%s-%%" % run,))
    lat, e2e, bad = [], [], 0
    for jid, status, started, finished in rows:
        if status != "COMPLETED" or started is None:
            bad += 1
            continue
        lat.append((float(started) - pushed[jid]) * 1000.0)
        e2e.append((float(finished) - pushed[jid]) * 1000.0)
    if not lat:
        raise CannotMeasure("no latency job completed")
    return {"n": n, "bad": bad, "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat),
            "e2e_p50": pct(e2e, 50), "e2e_p99": pct(e2e, 99)}


def bench_idle(r, redis_url, daemon, seconds):
    """The daemon's CPU and Redis traffic while no job arrives.

    total_commands_processed counts the commands Lua scripts run as well;
    MONITOR tells the calls the daemon itself sends (round trips) apart.
    """
    time.sleep(HEARTBEAT_S * 2)           # let the last jobs' bookkeeping settle
    mon = subprocess.Popen(["redis-cli", "-u", redis_url, "monitor"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(0.2)
    cpu0, _ = proc_stat(daemon.pid)
    ns0 = proc_oncpu_ns(daemon.pid)
    c0 = int(r.info("stats")["total_commands_processed"])
    time.sleep(seconds)
    c1 = int(r.info("stats")["total_commands_processed"])
    cpu1, _ = proc_stat(daemon.pid)
    ns1 = proc_oncpu_ns(daemon.pid)
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


def bench_throughput_te(r, conn, daemon, jobs, timeout):
    run = uuid.uuid4().hex[:6]
    like = "thr-%s-%%" % run
    bodies = [payload("thr-%s-%05d" % (run, i)) for i in range(jobs)]
    own0, kids0 = proc_stat(daemon.pid)
    t_first = push(r, bodies[0])
    for b in bodies[1:]:
        push(r, b)
    t_pushed = time.time()
    done = wait_terminal(conn, daemon, like, jobs, timeout)
    own1, kids1 = proc_stat(daemon.pid)
    rows = db_query(conn, "SELECT count(*) FILTER (WHERE status = 'COMPLETED'), "
                          "count(*) FILTER (WHERE status = 'FAILED'), extract(epoch FROM max(finished_at)) "
                          "FROM taskexec.jobs WHERE job_id LIKE %s", (like,))
    completed, failed, last = rows[0]
    if not completed or last is None:
        raise CannotMeasure("no throughput job completed")
    wall = float(last) - t_first
    # How busy the two slots were: the attempts' own spans (claim recorded -> outcome recorded).
    att = db_query(conn, "SELECT extract(epoch FROM sum(ended_at - started_at)), "
                         "extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY ended_at - started_at)) "
                         "FROM taskexec.attempts WHERE job_id LIKE %s", (like,))[0]
    return {"jobs": jobs, "done": done, "completed": completed, "failed": failed, "wall": wall,
            "rate": completed / wall, "push_s": t_pushed - t_first,
            "cpu_per_job_ms": (own1 - own0) * 1000.0 / max(1, done),
            "child_cpu_per_job_ms": (kids1 - kids0) * 1000.0 / max(1, done),
            "busy": (float(att[0]) / (2 * wall)) if att[0] is not None else None,
            "attempt_p50_ms": float(att[1]) * 1000.0 if att[1] is not None else None,
            "complete": done >= jobs}


# ---------------------------------------------------------------------------
# RQ

def rq_ended(r1, queue):
    """How many jobs of the queue have ended (finished or failed), from RQ's registries."""
    from rq.registry import FailedJobRegistry, FinishedJobRegistry
    return (FinishedJobRegistry(queue, connection=r1).count + FailedJobRegistry(queue, connection=r1).count)


def rq_wait(r1, queue, base, n, timeout):
    """Wait until n more jobs than `base` have ended; returns how many did."""
    deadline = time.monotonic() + timeout
    done = 0
    while time.monotonic() < deadline:
        done = rq_ended(r1, queue) - base
        if done >= n:
            break
        time.sleep(0.2)
    return done


def rq_fields(r1, ids, *fields):
    p = r1.pipeline(transaction=False)
    for jid in ids:
        p.hmget("rq:job:" + jid, *fields)
    return p.execute()


def rq_ready(r1, workers, n, timeout=30):
    from rq import Worker
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not workers.alive():
            raise CannotMeasure("an rq worker exited at start")
        if len(Worker.all(connection=r1)) >= n:
            return
        time.sleep(0.1)
    raise CannotMeasure("rq workers not registered after %ds" % timeout)


def bench_rq(root, redis_url, lat_rate, lat_seconds, jobs, timeout):
    from rq import Queue
    url = with_db(redis_url, 1)
    r1 = redis.Redis.from_url(url)
    r1.flushdb()
    qname = "bench"
    q = Queue(qname, connection=r1)
    workers = RQWorkers(root, url, qname, 2)
    out = {}
    try:
        rq_ready(r1, workers, 2)
        # Latency, with free slots: a rate the two workers keep up with.
        for _ in range(4):
            q.enqueue("rqtasks.noop")
        time.sleep(1.0)
        base = rq_ended(r1, qname)
        pushed = {}

        def send(i):
            t = time.time()
            job = q.enqueue("rqtasks.noop")
            pushed[job.id] = t

        paced(lat_rate, lat_seconds, send)
        ids = list(pushed)
        rq_wait(r1, qname, base, len(ids), 30)
        lat = []
        for jid, (started,) in zip(ids, rq_fields(r1, ids, "started_at")):
            if started:
                lat.append((rq_time(started) - pushed[jid]) * 1000.0)
        if lat:
            out["lat"] = {"rate": lat_rate, "n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99)}

        # Throughput.
        base = rq_ended(r1, qname)
        ids = []
        t_first = time.time()
        for _ in range(jobs):
            ids.append(q.enqueue("rqtasks.noop").id)
        push_s = time.time() - t_first
        ended = rq_wait(r1, qname, base, jobs, timeout)
        t_stop = time.time()
        ends, ok = [], 0
        for status, end in rq_fields(r1, ids, "status", "ended_at"):
            if end:
                ends.append(rq_time(end))
            if status == b"finished":
                ok += 1
        if not ends:
            raise CannotMeasure("no RQ job ended")
        if ended >= jobs:
            wall = max(ends) - t_first
        else:
            wall = t_stop - t_first         # cut off: rate over what finished in time
        out["thr"] = {"jobs": jobs, "done": ended, "completed": ok, "wall": wall, "rate": ok / wall,
                      "complete": ended >= jobs, "push_s": push_s}
    finally:
        workers.stop()
    return out


# ---------------------------------------------------------------------------
# report

def verdict(ok):
    return "PASS" if ok else "MISS"


def build_rows(res, errors):
    rows = []   # (measure, taskexec, reference, target, result)
    a = res.get("run")
    if a:
        d = a["te"] - a["py"]
        rows.append(("(a) `taskexec run` no-op, median of %d" % a["runs"], "%.1f ms" % a["te"],
                     "python3 -I -S -c 'import json': %.1f ms" % a["py"], "", ""))
        rows.append(("(a) added by sandbox + shim + CLI", "%+.1f ms" % d, "", "<= %g ms" % T_RUN_OVERHEAD_MS,
                     verdict(d <= T_RUN_OVERHEAD_MS)))
    else:
        rows.append(("(a) `taskexec run` overhead", "not measured", "", "<= %g ms" % T_RUN_OVERHEAD_MS, "ERROR"))
    b = res.get("lat")
    rq = res.get("rq", {})
    rql = rq.get("lat")
    rq_lat_ref = ("RQ p50 %.1f ms (at %g jobs/s)" % (rql["p50"], rql["rate"])) if rql else \
        ("RQ: " + res.get("rq_note", "not measured"))
    if b:
        rows.append(("(b) queue -> RUNNING p50, %d jobs at 20/s" % b["n"], "%.1f ms" % b["p50"], rq_lat_ref,
                     "<= %g ms" % T_LAT_P50_MS, verdict(b["p50"] <= T_LAT_P50_MS and not b["bad"])))
        rows.append(("(b) queue -> RUNNING p99", "%.1f ms" % b["p99"],
                     ("RQ p99 %.1f ms" % rql["p99"]) if rql else "", "<= %g ms" % T_LAT_P99_MS,
                     verdict(b["p99"] <= T_LAT_P99_MS and not b["bad"])))
    else:
        rows.append(("(b) queue -> RUNNING latency", "not measured", rq_lat_ref, "p50 <= 5, p99 <= 25 ms",
                     "ERROR"))
    c = res.get("thr")
    rqt = rq.get("thr")
    if c:
        ref = ("RQ 2 workers: %.1f jobs/s%s" % (rqt["rate"], "" if rqt["complete"] else
                                                 " (cut off after %d jobs)" % rqt["done"])) if rqt else \
            "RQ: " + res.get("rq_note", "not measured")
        rows.append(("(c) no-op jobs/s, concurrency 2, %d jobs" % c["jobs"],
                     "%.1f jobs/s (%.1f s)" % (c["rate"], c["wall"]), ref, "", "" if c["complete"] else "ERROR"))
        if rqt:
            ratio = c["rate"] / rqt["rate"]
            rows.append(("(c) taskexec / RQ", "%.2fx" % ratio, "", ">= %gx" % T_RATIO,
                         verdict(ratio >= T_RATIO and c["complete"] and not c["failed"])))
        else:
            skipped = res.get("rq_note", "").startswith("skipped")
            rows.append(("(c) taskexec / RQ", "skipped" if skipped else "not measured", "", ">= %gx" % T_RATIO,
                         "SKIP" if skipped else "ERROR"))
        rows.append(("(d) daemon CPU per job during (c)", "%.3f ms" % c["cpu_per_job_ms"],
                     "job processes: %.1f ms/job" % c["child_cpu_per_job_ms"], "<= %g ms" % T_CPU_PER_JOB_MS,
                     verdict(c["cpu_per_job_ms"] <= T_CPU_PER_JOB_MS)))
    else:
        rows.append(("(c) no-op jobs/s, concurrency 2", "not measured", "", ">= %gx RQ" % T_RATIO, "ERROR"))
        rows.append(("(d) daemon CPU per job", "not measured", "", "<= %g ms" % T_CPU_PER_JOB_MS, "ERROR"))
    i = res.get("idle")
    if i:
        fine = i.get("cpu_ms_fine")
        shown = "%.1f ms" % (fine if fine is not None else i["cpu_ms"])
        rows.append(("(d) daemon CPU over %d s idle" % i["seconds"], shown,
                     "clock ticks: %.0f ms" % i["cpu_ms"], "<= %g ms (~0)" % T_IDLE_CPU_MS,
                     verdict((fine if fine is not None else i["cpu_ms"]) <= T_IDLE_CPU_MS)))
        rows.append(("(d) Redis commands/s idle (INFO stats)", "%.1f/s" % i["redis_per_s"],
                     "%d in %d s, incl. those Lua scripts run" % (i["redis_cmds"], i["seconds"]), "", ""))
        if i["calls_per_s"] is not None:
            per_hb = i["calls_per_s"] * HEARTBEAT_S
            rows.append(("(d) Redis calls the idle daemon sends", "%.1f per heartbeat (%gs)" % (per_hb, HEARTBEAT_S),
                         "MONITOR, %d in %d s" % (sum(i["calls"].values()), i["seconds"]),
                         "<= %g per heartbeat" % T_IDLE_REDIS_PER_HB, verdict(per_hb <= T_IDLE_REDIS_PER_HB)))
    else:
        rows.append(("(d) idle CPU and Redis commands", "not measured", "", "", "ERROR"))
    if res.get("rss_kb") is not None:
        rows.append(("(d) daemon peak RSS (VmHWM)", "%.1f MiB" % (res["rss_kb"] / 1024.0), "", "(reported)", ""))
    return rows


def text_table(rows):
    head = ("measure", "taskexec", "reference", "target", "")
    widths = [max(len(r[k]) for r in rows + [head]) for k in range(5)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, head))
    out = [line, "  ".join("-" * w for w in widths)]
    for r in rows:
        out.append("  ".join("%-*s" % (w, v) for w, v in zip(widths, r)).rstrip())
    return "\n".join(out)


def md_table(rows):
    out = ["| measure | taskexec | reference | target | result |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append("| " + " | ".join(v.replace("|", "\\|") for v in r) + " |")
    return "\n".join(out)


def details(res):
    lines = []
    a = res.get("run")
    if a:
        lines.append("(a) p90: taskexec run %.1f ms, python3 %.1f ms; the sandboxed job itself (summary "
                     "duration_ms: fork to exit) median %s ms; `taskexec --version` alone %.1f ms"
                     % (a["te_p90"], a["py_p90"], "?" if a["inner"] is None else "%g" % a["inner"], a["version"]))
    b = res.get("lat")
    if b:
        lines.append("(b) %d jobs, max %.1f ms; push -> finished_at (whole job) p50 %.1f ms, p99 %.1f ms%s"
                     % (b["n"], b["max"], b["e2e_p50"], b["e2e_p99"],
                        "; %d jobs not COMPLETED" % b["bad"] if b["bad"] else ""))
    c = res.get("thr")
    if c:
        lines.append("(c) taskexec: %d/%d COMPLETED, %d FAILED, enqueueing took %.2f s; attempts (started_at -> "
                     "ended_at) p50 %s ms; the 2 slots were inside an attempt %s of the wall time"
                     % (c["completed"], c["jobs"], c["failed"], c["push_s"],
                        "?" if c["attempt_p50_ms"] is None else "%.1f" % c["attempt_p50_ms"],
                        "?" if c["busy"] is None else "%.0f %%" % (100 * c["busy"])))
    rq = res.get("rq", {})
    if rq.get("thr"):
        t = rq["thr"]
        lines.append("(c) RQ: %d/%d finished in %.1f s (2 x `rq worker`, started before the first enqueue, "
                     "same Redis, DB 1), enqueueing took %.2f s" % (t["completed"], t["jobs"], t["wall"], t["push_s"]))
    if rq.get("lat"):
        flat = (", they run %.0f jobs/s flat out" % rq["thr"]["rate"]) if rq.get("thr") else ""
        lines.append("(b) RQ latency: enqueue -> job.started_at, %d jobs at %g jobs/s (2 workers with free "
                     "slots%s); RQ sets started_at in the forked work-horse, taskexec when the claim commits, "
                     "before its fork" % (rq["lat"]["n"], rq["lat"]["rate"], flat))
    i = res.get("idle")
    if i and i.get("calls"):
        lines.append("(d) calls the idle daemon sent in %d s: %s" % (i["seconds"], ", ".join(
            "%s %d" % kv for kv in sorted(i["calls"].items(), key=lambda kv: -kv[1]))))
    if res.get("rq_note"):
        lines.append("RQ: " + res["rq_note"])
    for e in res.get("errors", []):
        lines.append("could not measure: " + e)
    return lines


def write_report(m, rows, notes):
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    text = ["# taskexec benchmark", "",
            "- date: %s" % m["date"],
            "- machine: %s CPUs, %s, kernel %s" % (m["nproc"], m["model"], m["kernel"]),
            "- load average when the bench started: %s (other work on the machine skews the figures)" % m["load"],
            "- `make bench` (tests/bench/bench.py); targets from issues 2 and 3", "",
            md_table(rows), ""]
    if notes:
        text += ["Notes:", ""] + ["- " + n for n in notes] + [""]
    REPORT.write_text("\n".join(text))


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs and jobs (a trial, not the figures)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--skip-rq", action="store_true", help="do not run the RQ reference")
    args = ap.parse_args()

    m = machine()                   # date and load average at the start
    runs = 10 if args.quick else 40
    lat_seconds = 4 if args.quick else 15
    jobs = 200 if args.quick else 2000
    idle_s = 3 if args.quick else 10

    for f in (TASKEXEC, TASKEXECD):
        if not os.access(f, os.X_OK):
            log("%s is not built (run make)" % f)
            return 1
    # The sandbox cannot write __pycache__; compile the bench tasks like `make pyc` does for tasks/.
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(HERE / "benchtasks")], check=True)

    root = Path(tempfile.mkdtemp(prefix="taskexec-bench-", dir="/tmp"))
    root.chmod(0o755)               # the postgres and job users must reach it
    services = Services(root)
    daemon = None
    res = {"errors": []}
    t_start = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    try:
        log("(a) taskexec run vs python3, %d interleaved runs" % runs)
        try:
            res["run"] = bench_run(runs)
        except CannotMeasure as e:
            res["errors"].append("(a) %s" % e)

        log("starting Redis and PostgreSQL (scripts/services)")
        services.start()
        r = redis.Redis.from_url(services.redis_url)
        r.delete(*[key("queue", p) for p in ("high", "normal", "low")], key("wake"), key("delayed"))
        conn = None
        try:
            daemon = Daemon(root, services, 2)
            # The daemon creates the schema; connect once it accepts connections.
            deadline = time.monotonic() + 30
            while True:
                try:
                    conn = psycopg2.connect(services.db_url)
                    conn.autocommit = True
                    break
                except psycopg2.OperationalError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            wait_ready(r, conn, daemon)

            log("(b) queue -> RUNNING latency, 20 jobs/s for %d s" % lat_seconds)
            try:
                res["lat"] = bench_latency(r, conn, daemon, 20, lat_seconds)
            except CannotMeasure as e:
                res["errors"].append("(b) %s" % e)

            log("(c) taskexecd throughput, %d no-op jobs at concurrency 2" % jobs)
            try:
                res["thr"] = bench_throughput_te(r, conn, daemon, jobs, 150)
                if not res["thr"]["complete"]:
                    res["errors"].append("(c) only %d of %d jobs finished within 150 s"
                                         % (res["thr"]["done"], jobs))
            except CannotMeasure as e:
                res["errors"].append("(c) %s" % e)

            log("(d) idle daemon, %d s" % idle_s)
            if daemon.alive():
                res["idle"] = bench_idle(r, services.redis_url, daemon, idle_s)
                res["rss_kb"] = proc_status_kb(daemon.pid, "VmHWM")
            else:
                res["errors"].append("(d) taskexecd died:\n" + daemon.tail())
        except CannotMeasure as e:
            res["errors"].append(str(e))
        finally:
            if daemon:
                daemon.stop()
            if conn is not None:
                conn.close()

        if args.skip_rq:
            res["rq_note"] = "skipped (--skip-rq)"
        else:
            log("RQ reference: latency at 20 jobs/s, then %d no-op jobs with 2 workers" % jobs)
            try:
                res["rq"] = bench_rq(root, services.redis_url, 20, 4 if args.quick else 6, jobs,
                                     60 if args.quick else 150)
            except ImportError as e:
                res["rq_note"] = "python3-rq not importable (%s)" % e
            except CannotMeasure as e:
                res["rq_note"] = "could not measure (%s)" % e
                res["errors"].append("RQ: %s" % e)
    except CannotMeasure as e:
        res["errors"].append(str(e))
    except KeyboardInterrupt:
        log("interrupted")
        res["errors"].append("interrupted")
    finally:
        if daemon:
            daemon.stop()
        services.stop()
        if args.keep:
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)

    rows = build_rows(res, res["errors"])
    notes = details(res)
    notes.append("total bench time %.0f s" % (time.monotonic() - t_start))
    print()
    print("taskexec benchmark — %s — %s CPUs, %s, kernel %s — load average at start %s"
          % (m["date"], m["nproc"], m["model"], m["kernel"], m["load"]))
    print()
    print(text_table(rows))
    print()
    for n in notes:
        print("  " + n)
    write_report(m, rows, notes)
    print("\n(also in %s)" % REPORT.relative_to(REPO))
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
