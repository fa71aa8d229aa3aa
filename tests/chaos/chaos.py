#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""make chaos: taskexecd keeps its promises while daemons, Redis and PostgreSQL die.

Starts a throwaway Redis (AOF on) and PostgreSQL (scripts/services), four
build/taskexecd at concurrency 2 (heartbeat 1 s), and pushes a mix of jobs
with the documented producer MULTI (taskexec-protocol(7)):

  quick    no-op                                           -> COMPLETED
  slow     sleeps 1-3 s                                    -> COMPLETED
  flaky    raises on attempts 1..K (K = 1 or 2), then ok   -> COMPLETED
  timeout  sleeps 5 s with timeout_seconds = 1             -> FAILED after max_retries + 1 timeouts
  poison   a payload whose rejection quotes a field cut
           inside a UTF-8 character                         -> FAILED, rejected, never run
  unstorable  sends back a result jsonb cannot hold          -> FAILED, outcome unstorable

(tests/chaos/chaostasks/work.py).  The producer writes each job's QUEUED row
before its Redis entry, as taskexec submit does.  Meanwhile a driver
SIGKILLs a random daemon every few seconds and starts it again, with the same
executor id half the time and a new one otherwise; restarts Redis once (2 s
down) and PostgreSQL once (2 s down); stops reading one daemon's standard
output for 15 s; fills the scratch file system for 5 s (as root: it is a
tmpfs then); and restarts Redis once more without its data.  When every job
is terminal it stops the daemons with SIGTERM and checks:

  * lost = 0: every pushed job has a COMPLETED or FAILED row;
  * no attempt row is left with outcome NULL;
  * attempts are numbered 1..jobs.attempts, lost_count = executor_lost attempts;
  * retries within policy: failed attempts (not counting executor_lost and
    shutdown) <= max_retries + 1, and a timeout job fails exactly that often;
  * every job ends as its kind says (a job lost 3 times may end FAILED
    "executor lost repeatedly"; >= 99.9 % of the jobs meant to succeed do);
  * no COMPLETED job ran successfully more than once unless is_duplicate:
    each successful run appends "<job_id> <attempt>" to
    ${STATE_DIR}/chaos/runs-<job_id>, the harness counts the lines;
  * every executor_lost attempt belongs to an executor the driver killed;
  * nothing is left in the Redis queues, delayed set or processing lists;
  * every daemon exits 0 on SIGTERM, none dies on its own;

and prints a summary table.  Exit status: 0 all held, 1 a violation, 2 the
harness itself failed.

  tests/chaos/chaos.py [--jobs 5000] [--kills 0 (= until done)] [--rate 20]
                       [--kill-interval 3-6] [--timeout S] [--seed N] [--keep]
                       [--report FILE]

The short version inside `make check` is --jobs 300 --kills 3
(tests/chaos/test_chaos_short.py).  The run directory (logs of every daemon
incarnation, services, markers) is kept on failure or with --keep.
"""
import argparse
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TASK_TYPE, TERMINAL, TASKEXECD, DB, Daemon, Services, compile_tasks, daemon_env,  # noqa: E402
                     iso_now, log, make_policy_dir, make_root, percentile, redis_leftovers, table)
from testlib import fill_inodes, push  # noqa: E402 (on the path through harness)

DAEMONS = 4
CONCURRENCY = 2
HEARTBEAT = "1s"
SHUTDOWN_S = 5
MAX_RETRIES = 3                  # chaos.policy
SERVICE_PAUSE_S = 2
# kind -> share of the jobs
MIX = (("quick", 0.51), ("slow", 0.15), ("flaky", 0.25), ("timeout", 0.05), ("poison", 0.02),
       ("unstorable", 0.02))
MEANT_TO_SUCCEED = ("quick", "slow", "flaky")
# Outcomes that are not the job's failure: they never use up its retries.
UNCHARGED = (None, "completed", "executor_lost", "shutdown", "executor_fault")
LOG_STALL_S = 15
SCRATCH_FULL_S = 5
PRIORITIES = (("high", 0.1), ("normal", 0.8), ("low", 0.1))
SUCCESS_TARGET = 0.999


def pick(rng, table_):
    x = rng.random()
    for name, share in table_:
        if x < share:
            return name
        x -= share
    return table_[-1][0]


class Chaos:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = "chaos-" + self.run_id
        self.root = make_root("taskexec-chaos-")
        self.services = Services(self.root / "services")
        self.db = None
        self.rds = None
        self.env = None
        self.slots = []                  # the current incarnation in each of the 4 slots
        self.incarnations = []           # every Daemon ever started
        self.incarnation_n = Counter()
        self.next_new_id = DAEMONS + 1
        self.kills = []                  # dicts: t, executor_id, pid, restarted_as, same_id
        self.service_events = []         # (name, t_start, t_end)
        self.harness_errors = []
        self.crashes = []                # daemons that exited without being killed
        self.jobs = []                   # payload dicts (with _kind, _prio)
        self.pushed_at = {}              # job_id -> epoch seconds
        self.progress = 0.0
        self.stop = threading.Event()
        self.redis_gate = threading.Lock()   # the producer pauses while Redis restarts
        self.scratch_fs = False
        self.slots_lock = threading.Lock()

    # ---- setup ---------------------------------------------------------------

    def setup(self):
        if not TASKEXECD.exists():
            raise RuntimeError("%s is not built (run make)" % TASKEXECD)
        log("chaos", "run %s in %s" % (self.run_id, self.root))
        self.services.start()
        self.db = DB(self.services.db_url)
        self.rds = redis.Redis.from_url(self.services.redis_url, decode_responses=True, socket_timeout=10)
        policy_dir = make_policy_dir(self.root)
        # As root the scratch dir is a small tmpfs the driver can fill.
        if os.geteuid() == 0:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m,nr_inodes=4096,mode=0755", "tmpfs",
                            str(self.root / "scratch")], check=True)
            self.scratch_fs = True
        compile_tasks()
        self.env = daemon_env(self.root, self.services, policy_dir, self.prefix, CONCURRENCY, HEARTBEAT)
        for i in range(DAEMONS):
            self.slots.append(self.start_daemon("chaos-d%d" % (i + 1)))
        for d in self.slots:
            if not d.wait_ready(self.rds, self.prefix, 60):
                raise RuntimeError("taskexecd %s never published its heartbeat:\n%s" % (d.executor_id, d.tail()))
        self.make_jobs()

    def start_daemon(self, executor_id):
        self.incarnation_n[executor_id] += 1
        d = Daemon(self.root, self.env, executor_id, self.incarnation_n[executor_id], piped=True)
        self.incarnations.append(d)
        return d

    def make_jobs(self):
        for i in range(self.args.jobs):
            kind = pick(self.rng, MIX)
            prio = pick(self.rng, PRIORITIES)
            p = {"job_id": "%s-%05d-%s" % (self.prefix, i, kind), "task_type": TASK_TYPE,
                 "module_path": "chaostasks.work", "class_name": None, "method_name": kind,
                 "parameters": {"n": i}, "priority": prio}
            if kind == "slow":
                p["parameters"]["seconds"] = round(self.rng.uniform(1, 3), 2)
            elif kind == "flaky":
                p["parameters"]["fail_first"] = self.rng.choice((1, 2))
            elif kind == "timeout":
                p["parameters"]["seconds"] = 5
                p["timeout_seconds"] = 1
            elif kind == "poison":
                p["module_path"] = "chaostasks." + "\u00e9" * 200
            self.jobs.append(p)

    # ---- producer -------------------------------------------------------------

    def queued_row(self, db, p, payload):
        """The QUEUED row taskexec submit writes before its Redis entry: what
        the reconciliation sweep puts back when Redis loses the entry."""
        db.query("INSERT INTO taskexec.jobs (job_id, task_type, module_path, class_name, method_name, parameters, "
                 "priority, payload) VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s) ON CONFLICT (job_id) DO NOTHING",
                 (p["job_id"], p["task_type"], p["module_path"], p["class_name"], p["method_name"],
                  json.dumps(p["parameters"]), p["priority"], payload))

    def producer(self):
        rate = self.args.rate
        t0 = time.monotonic()
        db = DB(self.services.db_url)
        try:
            for i, p in enumerate(self.jobs):
                if self.stop.is_set():
                    return
                if rate > 0:
                    delay = t0 + i / rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                p["enqueued_at"] = iso_now()
                payload = json.dumps(p)
                self.queued_row(db, p, payload)
                for tries in range(100):
                    try:
                        with self.redis_gate:
                            self.pushed_at[p["job_id"]] = time.time()
                            push(self.rds, self.prefix, payload, p["priority"])
                        break
                    except redis.ConnectionError as e:
                        # Redis is only ever down inside the gate; an error here is unexpected.
                        if tries == 99:
                            raise
                        log("producer", "push failed (%s); retrying" % e)
                        time.sleep(0.2)
            log("producer", "%d jobs pushed in %.1fs" % (len(self.jobs), time.monotonic() - t0))
        except Exception as e:
            self.harness_errors.append("producer: %r" % e)
            self.stop.set()
        finally:
            db.close()

    # ---- chaos driver -----------------------------------------------------------

    def driver(self):
        a = self.args
        redis_done = pg_done = stall_done = scratch_done = empty_done = False
        stall_thread = None
        next_kill = time.monotonic() + self.rng.uniform(*a.kill_interval)
        try:
            while not self.stop.is_set():
                if not redis_done and self.progress >= 0.20:
                    redis_done = True
                    t = time.time()
                    log("driver", "restarting Redis (%ds down)" % SERVICE_PAUSE_S)
                    with self.redis_gate:
                        self.services.restart_redis(SERVICE_PAUSE_S)
                    self.service_events.append(("redis", t, time.time()))
                    log("driver", "Redis is back after %.1fs" % (time.time() - t))
                    continue
                if not pg_done and self.progress >= 0.45:
                    pg_done = True
                    t = time.time()
                    log("driver", "restarting PostgreSQL (%ds down)" % SERVICE_PAUSE_S)
                    self.services.restart_pg(SERVICE_PAUSE_S)
                    self.service_events.append(("postgresql", t, time.time()))
                    log("driver", "PostgreSQL is back after %.1fs" % (time.time() - t))
                    continue
                if not stall_done and self.progress >= 0.30:
                    stall_done = True
                    with self.slots_lock:
                        d = self.slots[0]
                    log("driver", "not reading the output of %s for %ds" % (d.executor_id, LOG_STALL_S))

                    def stall(d=d, t=time.time()):
                        d.stall_reader(LOG_STALL_S)
                        self.service_events.append(("log stall", t, time.time()))
                    # In a thread of its own: the other faults go on meanwhile.
                    stall_thread = threading.Thread(target=stall, name="stall", daemon=True)
                    stall_thread.start()
                    continue
                if not scratch_done and self.progress >= 0.55:
                    scratch_done = True
                    if self.scratch_fs:
                        t = time.time()
                        log("driver", "scratch file system full for %ds" % SCRATCH_FULL_S)
                        filler = fill_inodes(self.root / "scratch")
                        time.sleep(SCRATCH_FULL_S)      # the outage itself
                        shutil.rmtree(filler)
                        self.service_events.append(("scratch full", t, time.time()))
                    continue
                if not empty_done and self.progress >= 0.70:
                    empty_done = True
                    t = time.time()
                    log("driver", "restarting Redis without its data (%ds down)" % SERVICE_PAUSE_S)
                    with self.redis_gate:
                        self.services.restart_redis_empty(SERVICE_PAUSE_S)
                    self.service_events.append(("redis data lost", t, time.time()))
                    continue
                if (a.kills == 0 or len(self.kills) < a.kills) and time.monotonic() >= next_kill:
                    self.kill_one()
                    next_kill = time.monotonic() + self.rng.uniform(*a.kill_interval)
                    continue
                if (redis_done and pg_done and stall_done and scratch_done and empty_done and a.kills
                        and len(self.kills) >= a.kills):
                    stall_thread.join(LOG_STALL_S + 5)
                    return
                time.sleep(0.1)
        except Exception as e:
            self.harness_errors.append("driver: %r" % e)

    def kill_one(self):
        with self.slots_lock:
            i = self.rng.randrange(len(self.slots))
            d = self.slots[i]
        d.kill()
        same = self.rng.random() < 0.5
        if same:
            new_id = d.executor_id
        else:
            new_id = "chaos-d%d" % self.next_new_id
            self.next_new_id += 1
        ev = {"t": d.killed_at, "executor_id": d.executor_id, "pid": d.pid, "restarted_as": new_id, "same_id": same}
        self.kills.append(ev)
        log("driver", "kill #%d: SIGKILL %s (pid %d), restarting as %s"
            % (len(self.kills), d.executor_id, d.pid, new_id + (" (same id)" if same else "")))
        time.sleep(self.rng.uniform(0, 1))     # deliberate: a supervisor's restart delay
        nd = self.start_daemon(new_id)
        with self.slots_lock:
            self.slots[i] = nd
        if not nd.wait_ready(self.rds, self.prefix, 30):
            self.harness_errors.append("restarted taskexecd %s did not publish its heartbeat within 30s" % new_id)

    # ---- waiting ------------------------------------------------------------------

    def check_daemons(self):
        with self.slots_lock:
            for i, d in enumerate(self.slots):
                if not d.alive() and d.killed_at is None:
                    self.crashes.append("taskexecd %s (pid %d) exited with %s on its own; last lines:\n%s"
                                        % (d.executor_id, d.pid, d.proc.returncode, d.tail()))
                    log("chaos", "taskexecd %s died on its own (exit %s); starting it again"
                        % (d.executor_id, d.proc.returncode))
                    d.killed_at = time.time()     # no longer counted as running
                    self.slots[i] = self.start_daemon(d.executor_id)

    def wait_terminal(self):
        n = len(self.jobs)
        deadline = time.monotonic() + self.args.timeout
        last_print = 0
        last_done, last_change, stall_reported = -1, time.monotonic(), False
        like = self.prefix + "-%"
        while True:
            rows = self.db.query("SELECT status, count(*) AS n FROM taskexec.jobs WHERE job_id LIKE %s "
                                 "GROUP BY status", (like,))
            by = {r["status"]: r["n"] for r in rows}
            done = by.get("COMPLETED", 0) + by.get("FAILED", 0)
            self.progress = done / n
            self.check_daemons()
            if time.monotonic() - last_print >= 5:
                last_print = time.monotonic()
                log("chaos", "%d/%d terminal %s, %d kills, pushed %d"
                    % (done, n, dict(sorted(by.items())), len(self.kills), len(self.pushed_at)))
            if done >= n and len(self.pushed_at) == n:
                return True
            if done != last_done:
                last_done, last_change = done, time.monotonic()
            elif time.monotonic() - last_change >= 20 and not stall_reported:
                # Nothing finished for 20 s: say what the stragglers are doing while it happens.
                stall_reported = True
                log("chaos", "STALL: no job finished for 20s\n" + self.describe_pending(limit=5, why="now"))
            if self.harness_errors and self.stop.is_set():
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)

    def describe_pending(self, limit=20, why=None):
        ids = [p["job_id"] for p in self.jobs]
        rows = {r["job_id"]: r for r in self.db.query(
            "SELECT job_id, status, attempts, lost_count, is_duplicate, executor_id, next_attempt_at, error "
            "FROM taskexec.jobs WHERE job_id = ANY(%s)", (ids,))}
        pending = [j for j in ids if j not in rows or rows[j]["status"] not in TERMINAL]
        out = ["%d jobs are not terminal %s:" % (len(pending), why or "after %ss" % self.args.timeout)]
        for j in pending[:limit]:
            out.append("  %s: %s" % (j, {k: str(v) for k, v in rows[j].items() if v is not None}
                                     if j in rows else "NO ROW (pushed %s)" % (j in self.pushed_at)))
            for a in self.db.query("SELECT attempt, executor_id, outcome, started_at, ended_at, error_message "
                                   "FROM taskexec.attempts WHERE job_id = %s ORDER BY attempt", (j,)):
                out.append("      attempt %s" % {k: str(v) for k, v in a.items() if v is not None})
        if len(pending) > limit:
            out.append("  ... and %d more" % (len(pending) - limit))
        try:
            out.append("Redis: %s" % redis_leftovers(self.rds, self.prefix))
            where = self.locate(pending[:limit])
            for j in pending[:limit]:
                out.append("  %s is in Redis at: %s" % (j, where.get(j) or "nowhere"))
            out.append("Redis executors set: %s" % sorted(self.rds.smembers("{%s}:executors" % self.prefix)))
            for k in sorted(self.rds.scan_iter(match="{%s}:heartbeat:*" % self.prefix)):
                out.append("  %s ttl %d ms" % (k, self.rds.pttl(k)))
        except redis.RedisError as e:
            out.append("Redis: %s" % e)
        for r in self.db.query("SELECT executor_id, pid, state, slots_busy, last_heartbeat, now() - last_heartbeat "
                               "AS age FROM taskexec.executors ORDER BY executor_id"):
            out.append("  executors row %s" % {k: str(v) for k, v in r.items()})
        live = ["%s pid %d (incarnation %d)" % (d.executor_id, d.pid, d.incarnation) for d in self.slots if d.alive()]
        out.append("running daemons: %s" % ", ".join(live))
        return "\n".join(out)

    def locate(self, job_ids):
        """job_id -> the Redis keys whose entries mention it (queues, delayed, processing lists)."""
        found = defaultdict(list)
        keys = ["{%s}:queue:%s" % (self.prefix, q) for q in ("high", "normal", "low")]
        keys += list(self.rds.scan_iter(match="{%s}:processing:*" % self.prefix))
        for k in keys:
            for i, e in enumerate(self.rds.lrange(k, 0, -1)):
                for j in job_ids:
                    if '"%s"' % j in e:
                        found[j].append("%s[%d]" % (k, i))
        for e, score in self.rds.zrange("{%s}:delayed" % self.prefix, 0, -1, withscores=True):
            for j in job_ids:
                if '"%s"' % j in e:
                    found[j].append("delayed (due in %.1fs)" % (score / 1000 - time.time()))
        return found

    # ---- shutdown ---------------------------------------------------------------

    def drain_redis(self, timeout=30):
        """With the daemons still up, wait for every entry to leave Redis."""
        deadline = time.monotonic() + timeout
        while True:
            left = redis_leftovers(self.rds, self.prefix)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.5)

    def stop_daemons(self):
        bad = []
        with self.slots_lock:
            live = [d for d in self.slots if d.alive()]
        for d in live:
            d.proc.send_signal(signal.SIGTERM)
        for d in live:
            st = d.stop(SHUTDOWN_S + 10)
            if st != 0:
                bad.append("taskexecd %s (pid %d): %s after SIGTERM; last lines:\n%s"
                           % (d.executor_id, d.pid, "had to be SIGKILLed" if st is None else "exit %s" % st,
                              d.tail()))
        return bad

    def kill_all(self):
        for d in self.incarnations:
            if d.alive():
                d.proc.kill()
                try:
                    d.proc.wait(10)
                except Exception:
                    pass

    # ---- analysis ---------------------------------------------------------------

    def log_count(self, event, field):
        """FIELD of every EVENT line in every incarnation's log."""
        out = []
        for d in self.incarnations:
            try:
                text = d.log_path.read_text(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if '"%s"' % event in line:
                    try:
                        out.append(int(json.loads(line).get(field, 0)))
                    except (ValueError, TypeError):
                        pass
        return out

    def markers(self):
        runs = defaultdict(list)
        d = self.root / "state" / "chaos"
        if d.is_dir():
            for f in d.iterdir():
                if not f.name.startswith("runs-"):
                    continue
                for line in f.read_text(errors="replace").splitlines():
                    parts = line.split()
                    if len(parts) == 2 and parts[1].isdigit():
                        runs[parts[0]].append(int(parts[1]))
        return runs

    def started_by(self):
        """(job_id, attempt) -> the Daemon incarnation whose log says it started that attempt."""
        by = {}
        for d in self.incarnations:
            try:
                f = open(d.log_path, errors="replace")
            except OSError:
                continue
            with f:
                for line in f:
                    if '"job.started"' not in line:
                        continue
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    by[(ev.get("job_id"), ev.get("attempt"))] = d
        return by

    def lost_explained(self, a, started_by):
        """An executor_lost attempt is explained when the incarnation that ran it was SIGKILLed."""
        d = started_by.get((a["job_id"], a["attempt"]))
        if d is None:
            # Killed between the claim and its job.started line: the latest
            # incarnation of that id started before the claim ran it.
            t = a["started_at"].timestamp()
            cands = [x for x in self.incarnations if x.executor_id == a["executor_id"] and x.started <= t]
            if not cands:
                return False
            d = max(cands, key=lambda x: x.started)
        return d.killed_at is not None

    def analyse(self, wall, finished, leftovers_before, leftovers_after, stop_problems):
        ids = [p["job_id"] for p in self.jobs]
        kind_of = {p["job_id"]: p["method_name"] for p in self.jobs}
        payload_of = {p["job_id"]: p for p in self.jobs}
        jobs = {r["job_id"]: r for r in self.db.query(
            "SELECT job_id, status, attempts, max_retries, lost_count, is_duplicate, duplicate_of, error, "
            "started_at, finished_at FROM taskexec.jobs WHERE job_id = ANY(%s)", (ids,))}
        atts = defaultdict(list)
        for a in self.db.query("SELECT job_id, attempt, executor_id, outcome, started_at, ended_at, error_message "
                               "FROM taskexec.attempts WHERE job_id = ANY(%s) ORDER BY job_id, attempt", (ids,)):
            atts[a["job_id"]].append(a)
        foreign = self.db.query("SELECT count(*) AS n FROM taskexec.jobs WHERE job_id NOT IN "
                                "(SELECT unnest(%s::text[]))", (ids,))[0]["n"]
        runs = self.markers()

        checks = []   # (name, [problem lines])

        def check(name, problems):
            checks.append((name, problems))

        lost = [j for j in ids if j not in jobs or jobs[j]["status"] not in TERMINAL]
        check("lost = 0 (every pushed job has a terminal row)",
              ["%s: %s" % (j, jobs[j]["status"] if j in jobs else "no row") for j in lost])
        check("no unexpected job rows (invalid-*, strays)",
              ["%d rows of jobs nobody pushed" % foreign] if foreign else [])
        open_atts = [a for j in ids for a in atts[j] if a["outcome"] is None]
        check("no attempt left RUNNING (outcome NULL)",
              ["%s attempt %d on %s since %s" % (a["job_id"], a["attempt"], a["executor_id"], a["started_at"])
               for a in open_atts])

        numbering, lostcount = [], []
        for j in ids:
            if j not in jobs:
                continue
            nums = [a["attempt"] for a in atts[j]]
            if nums != list(range(1, jobs[j]["attempts"] + 1)):
                numbering.append("%s: jobs.attempts=%d, attempt rows %s" % (j, jobs[j]["attempts"], nums))
            nl = sum(1 for a in atts[j] if a["outcome"] == "executor_lost")
            if nl != jobs[j]["lost_count"]:
                lostcount.append("%s: lost_count=%d, executor_lost attempts=%d" % (j, jobs[j]["lost_count"], nl))
        check("attempt rows numbered 1..jobs.attempts", numbering)
        check("lost_count = executor_lost attempts", lostcount)

        retry_viol, outcome_viol, status_viol, lost_repeatedly = [], [], [], []
        failures_of = {}
        for j in ids:
            if j not in jobs:
                continue
            row, kind = jobs[j], kind_of[j]
            fails = [a for a in atts[j] if a["outcome"] not in UNCHARGED]
            failures_of[j] = len(fails)
            if len(fails) > row["max_retries"] + 1:
                retry_viol.append("%s: %d failed attempts, max_retries %d" % (j, len(fails), row["max_retries"]))
            if row["max_retries"] != MAX_RETRIES:
                retry_viol.append("%s: max_retries %d, policy says %d" % (j, row["max_retries"], MAX_RETRIES))
            k = payload_of[j]["parameters"].get("fail_first", 0)
            for a in atts[j]:
                o = a["outcome"]
                if o in (None, "executor_lost", "executor_fault"):
                    continue
                want = {"quick": "completed", "slow": "completed", "timeout": "timeout", "poison": "no attempt",
                        "unstorable": "unstorable",
                        "flaky": "exception" if a["attempt"] <= k else "completed"}[kind]
                if o != want:
                    outcome_viol.append("%s attempt %d: outcome %s (%s), expected %s"
                                        % (j, a["attempt"], o, a["error_message"], want))
            if row["status"] == "FAILED" and row["error"] == "executor lost repeatedly":
                lost_repeatedly.append(j)
                if row["lost_count"] < 3:
                    status_viol.append("%s: FAILED 'executor lost repeatedly' with lost_count %d"
                                       % (j, row["lost_count"]))
                continue
            if kind == "poison":
                if row["status"] != "FAILED" or "module_path" not in (row["error"] or ""):
                    status_viol.append("%s: %s, error %r (expected FAILED naming module_path)"
                                       % (j, row["status"], row["error"]))
            elif kind == "unstorable":
                if row["status"] != "FAILED" or "not storable" not in (row["error"] or ""):
                    status_viol.append("%s: %s, error %r (expected FAILED, not storable)"
                                       % (j, row["status"], row["error"]))
            elif kind == "timeout":
                if row["status"] != "FAILED" or len(fails) != row["max_retries"] + 1:
                    status_viol.append("%s: %s after %d failed attempts (expected FAILED after %d): %s"
                                       % (j, row["status"], len(fails), row["max_retries"] + 1, row["error"]))
            elif row["status"] != "COMPLETED":
                status_viol.append("%s (%s): %s, error %r" % (j, kind, row["status"], row["error"]))
            else:
                comp = [a["attempt"] for a in atts[j] if a["outcome"] == "completed"]
                if comp != [row["attempts"]]:
                    status_viol.append("%s: COMPLETED but completed attempts %s, jobs.attempts %d"
                                       % (j, comp, row["attempts"]))
        check("retries within policy (failures <= max_retries + 1, max_retries = %d)" % MAX_RETRIES, retry_viol)
        check("every attempt ended as its task planned (or executor_lost)", outcome_viol)
        check("every job ended as its kind says", status_viol)

        meant = [j for j in ids if kind_of[j] in MEANT_TO_SUCCEED]
        ok = sum(1 for j in meant if j in jobs and jobs[j]["status"] == "COMPLETED")
        rate = ok / len(meant) if meant else 1.0
        check("success rate of jobs meant to succeed >= %.1f%%" % (100 * SUCCESS_TARGET),
              [] if rate >= SUCCESS_TARGET else ["%d of %d completed (%.2f%%); lost repeatedly: %s"
                                                  % (ok, len(meant), 100 * rate, lost_repeatedly[:10])])

        double_unflagged, marker_viol, double_runs = [], [], []
        for j in ids:
            r = runs.get(j, [])
            row = jobs.get(j)
            if row is None:
                continue
            outcome_of = {a["attempt"]: a["outcome"] for a in atts[j]}
            for n in r:
                if outcome_of.get(n) not in ("completed", "executor_lost"):
                    marker_viol.append("%s: a successful run of attempt %d, recorded as %s"
                                       % (j, n, outcome_of.get(n, "no attempt row")))
            if len(r) != len(set(r)):
                marker_viol.append("%s: attempt numbers run more than once: %s" % (j, sorted(r)))
            if row["status"] == "COMPLETED":
                if row["attempts"] not in r:
                    marker_viol.append("%s: COMPLETED by attempt %d, which left no run marker (markers %s)"
                                       % (j, row["attempts"], r))
                if len(r) > 1:
                    double_runs.append(j)
                    if not row["is_duplicate"]:
                        double_unflagged.append("%s: %d successful runs %s, is_duplicate false; attempts %s"
                                                % (j, len(r), sorted(r), [(a["attempt"], a["executor_id"],
                                                                          a["outcome"]) for a in atts[j]]))
            elif kind_of[j] not in MEANT_TO_SUCCEED and r:
                marker_viol.append("%s: a %s job completed a run: %s" % (j, kind_of[j], r))
        check("no COMPLETED job executed twice unless flagged is_duplicate", double_unflagged)
        check("run markers agree with the recorded attempts", marker_viol)

        flagged = [j for j in ids if j in jobs and jobs[j]["is_duplicate"]]
        unexplained = [j for j in flagged if jobs[j]["lost_count"] == 0]
        check("every is_duplicate flag follows a lost executor",
              ["%s: is_duplicate, duplicate_of %s, lost_count 0" % (j, jobs[j]["duplicate_of"]) for j in unexplained])

        lost_atts = [a for j in ids for a in atts[j] if a["outcome"] == "executor_lost"]
        started_by = self.started_by()
        spurious = [a for a in lost_atts if not self.lost_explained(a, started_by)]
        check("every executor_lost attempt ran on an executor the driver killed",
              ["%s attempt %d on %s, started %s, marked lost %s (that executor was not killed then)"
               % (a["job_id"], a["attempt"], a["executor_id"], a["started_at"], a["ended_at"]) for a in spurious])

        check("Redis empty after the run (queues, delayed, processing lists)",
              (["with daemons up, 30s after the last job ended: %s" % leftovers_before] if leftovers_before else []) +
              (["after the daemons stopped: %s" % leftovers_after] if leftovers_after else []))
        check("every daemon exits 0 on SIGTERM", stop_problems)
        check("no daemon died on its own", self.crashes)
        done_events = {e[0] for e in self.service_events}
        planned = {"redis", "postgresql", "log stall", "redis data lost"} | ({"scratch full"} if self.scratch_fs
                                                                             else set())
        check("every fault was injected once: %s" % ", ".join(sorted(planned)),
              [] if done_events == planned else ["injected: %s" % sorted(done_events)])
        check("the harness ran as planned", list(self.harness_errors))

        # ---- summary ----
        by_status = Counter(jobs[j]["status"] for j in ids if j in jobs)
        by_kind = Counter(kind_of.values())
        n_atts = sum(len(atts[j]) for j in ids)
        outcomes = Counter(a["outcome"] for j in ids for a in atts[j])
        lat = sorted(max(0.0, jobs[j]["started_at"].timestamp() - self.pushed_at[j]) for j in ids
                     if j in jobs and jobs[j]["started_at"] is not None and j in self.pushed_at)
        rows = [
            ("jobs pushed", "%d (%s)" % (len(ids), ", ".join("%s %d" % (k, by_kind[k]) for k, _ in MIX))),
            ("terminal", "%d (COMPLETED %d, FAILED %d)" % (by_status["COMPLETED"] + by_status["FAILED"],
                                                          by_status["COMPLETED"], by_status["FAILED"])),
            ("attempts", "%d (%s)" % (n_atts, ", ".join("%s %d" % (k or "NULL", v)
                                                         for k, v in outcomes.most_common()))),
            ("daemon kills (SIGKILL)", "%d (restarted: %d same id, %d new id)"
             % (len(self.kills), sum(k["same_id"] for k in self.kills),
                sum(not k["same_id"] for k in self.kills))),
            ("Redis / PostgreSQL restarts", "%d / %d (%ds down each)"
             % (sum(e[0] == "redis" for e in self.service_events),
                sum(e[0] == "postgresql" for e in self.service_events), SERVICE_PAUSE_S)),
            ("other faults", ", ".join("%s (%.1fs)" % (e[0], e[2] - e[1]) for e in self.service_events
                                       if e[0] not in ("redis", "postgresql")) +
             ("" if self.scratch_fs else "; scratch full not injected: needs root")),
            ("jobs pushed again by the reconciliation sweep", sum(self.log_count("queue.reconciled", "jobs"))),
            ("log lines dropped for a slow reader", sum(self.log_count("log.dropped", "lines"))),
            ("recoveries (executor_lost attempts)", "%d (%d not explained by a kill)"
             % (len(lost_atts), len(spurious))),
            ("duplicates flagged (is_duplicate)", len(flagged)),
            ("COMPLETED jobs that ran twice", "%d (unflagged: %d)" % (len(double_runs), len(double_unflagged))),
            ("lost (no terminal row)", len(lost)),
            ("attempts left RUNNING", len(open_atts)),
            ("retry-policy violations", len(retry_viol)),
            ("FAILED 'executor lost repeatedly'", len(lost_repeatedly)),
            ("success of jobs meant to succeed", "%d/%d = %.2f%%" % (ok, len(meant), 100 * rate)),
            ("push -> first RUNNING p50 / p95 / max", "%.2fs / %.2fs / %.2fs"
             % (percentile(lat, 50), percentile(lat, 95), lat[-1] if lat else float("nan"))),
            ("wall time", "%.1fs (%s, %.1f jobs/s)" % (wall, "all terminal" if finished else "TIMED OUT",
                                                       len(ids) / wall if wall else 0)),
        ]
        out = ["taskexec chaos run %s, %s, %s, %d CPUs: %d daemons x concurrency %d, heartbeat %s, %d jobs at %s, "
               "seed %s" % (self.run_id, time.strftime("%Y-%m-%d %H:%M"), platform.node(), os.cpu_count(), DAEMONS,
                            CONCURRENCY, HEARTBEAT, len(ids),
                            "%g/s" % self.args.rate if self.args.rate > 0 else "once", self.args.seed),
               table(rows), ""]
        failed = 0
        for name, problems in checks:
            out.append("%s  %s" % ("PASS" if not problems else "FAIL", name))
            if problems:
                failed += 1
                for p in problems[:10]:
                    out.append("        " + p.replace("\n", "\n        "))
                if len(problems) > 10:
                    out.append("        ... and %d more" % (len(problems) - 10))
        out.append("")
        out.append("%s: %d of %d checks failed" % ("VIOLATIONS" if failed else "OK", failed, len(checks)))
        text = "\n".join(out)
        print("\n" + text)
        if self.args.report:
            os.makedirs(os.path.dirname(os.path.abspath(self.args.report)), exist_ok=True)
            with open(self.args.report, "w") as f:
                f.write("```\n" + text + "\n```\n")
            log("chaos", "report written to %s" % self.args.report)
        return failed == 0

    # ---- the run -------------------------------------------------------------------

    def run(self):
        self.setup()
        t0 = time.time()
        threads = [threading.Thread(target=self.producer, name="producer", daemon=True),
                   threading.Thread(target=self.driver, name="driver", daemon=True)]
        for t in threads:
            t.start()
        finished = self.wait_terminal()
        wall = time.time() - t0
        if not finished:
            log("chaos", "TIMED OUT\n" + self.describe_pending())
        else:
            # A fast run may end before the driver's last fault: let it
            # finish its plan (it ends by itself once every fault and kill
            # is done) rather than stop it halfway.
            threads[1].join(180)
        self.stop.set()
        for t in threads:
            t.join(300)
        self.check_daemons()
        log("chaos", "all terminal after %.1fs; waiting for Redis to drain, then SIGTERM to the daemons" % wall)
        before = self.drain_redis(30)
        stop_problems = self.stop_daemons()
        after = redis_leftovers(self.rds, self.prefix)
        return self.analyse(wall, finished, before, after, stop_problems)


def interval(text):
    a, _, b = text.partition("-")
    lo, hi = float(a), float(b or a)
    if lo <= 0 or hi < lo:
        raise argparse.ArgumentTypeError("expected A-B seconds, 0 < A <= B")
    return lo, hi


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--kills", type=int, default=0, help="SIGKILLs in all; 0 = keep killing until done")
    ap.add_argument("--kill-interval", type=interval, default=(3.0, 6.0), metavar="A-B",
                    help="seconds between kills, uniform (default 3-6)")
    ap.add_argument("--rate", type=float, default=20.0, help="jobs pushed per second; 0 = all at once")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds to wait for every job to be terminal (default 90 + 0.4 s a job)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the run directory even when all checks pass")
    ap.add_argument("--report", default=None, help="also write the summary and the checks to this file")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    if args.timeout is None:
        args.timeout = 90 + 0.4 * args.jobs
    if args.jobs < 20:
        ap.error("--jobs must be at least 20")

    def on_term(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)

    c = Chaos(args)
    ok = False
    rc = 2
    try:
        ok = c.run()
        rc = 0 if ok else 1
    except KeyboardInterrupt:
        log("chaos", "interrupted")
    except Exception as e:
        import traceback
        traceback.print_exc()
        log("chaos", "harness error: %s" % e)
    finally:
        c.stop.set()
        c.kill_all()
        if c.db:
            c.db.close()
        c.services.stop()
        if c.scratch_fs:
            subprocess.run(["umount", "-l", str(c.root / "scratch")], check=False)
        if ok and not args.keep:
            shutil.rmtree(c.root, ignore_errors=True)
        else:
            log("chaos", "run directory kept: %s (logs/ has every daemon incarnation)" % c.root)
    sys.exit(rc)


if __name__ == "__main__":
    main()
