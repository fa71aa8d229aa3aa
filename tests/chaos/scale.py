#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""make scale: 100 taskexecd on this machine against one Redis and one PostgreSQL.

Starts a throwaway Redis + PostgreSQL (scripts/services), D daemons
(default 100) at concurrency 1 and heartbeat 5 s, then:

  1. idle, D daemons: Redis commands/s (INFO stats total_commands_processed
     delta over --idle-seconds, default 20), Redis CPU, PostgreSQL
     transactions/s, the daemons' own CPU; PostgreSQL connections in use
     (pg_stat_activity) and RSS per daemon;
  2. burst: --jobs no-op jobs (default 10,000) pushed at once with the
     documented producer MULTI: throughput (first push -> last finished_at),
     push -> jobs.started_at (queue -> RUNNING) distribution, jobs per daemon;
  3. paced: --paced-jobs more (default 500) at half the burst throughput, so
     there is always a free slot: the queue -> RUNNING latency a producer sees
     when the executors keep up;
  4. every job executed exactly once: COMPLETED, one attempt row, one run
     marker line (chaostasks.work.quick appends "<job_id> <attempt>" to
     ${STATE_DIR}/chaos/runs-<job_id>), not flagged is_duplicate;
  5. SIGTERM to all but --compare-daemons (default 10) and the idle figures of
     step 1 again, to show how they grow with the number of daemons.

Prints the tables (and writes them to --report FILE when given).  Exit status:
0 every job ran exactly once and no daemon failed, 1 otherwise, 2 the harness
failed.  Targets (queue -> RUNNING < 500 ms, linear growth) are reported, not
enforced.

  tests/chaos/scale.py [--daemons 100] [--jobs 10000] [--paced-jobs 500]
                       [--compare-daemons 10] [--idle-seconds 20] [--keep]
"""
import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from datetime import datetime

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TASK_TYPE, TASKEXECD, DB, Daemon, Services, compile_tasks, daemon_env,  # noqa: E402
                     iso_now, log, make_policy_dir, make_root, percentile, redis_leftovers, table)
from testlib import batch_pusher, push, push_batch  # noqa: E402 (on the path through harness)

HEARTBEAT = "5s"
HEARTBEAT_S = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
LATENCY_TARGET_MS = 500


def proc_cpu_s(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def ms(x):
    return "%.0f ms" % (x * 1000) if x == x else "n/a"


class Scale:
    def __init__(self, args):
        self.args = args
        self.run_id = uuid.uuid4().hex[:6]
        self.prefix = "scale-" + self.run_id
        self.root = make_root("taskexec-scale-")
        self.services = Services(self.root / "services")
        self.daemons = []
        self.jobs = []            # job ids, in push order
        self.pushed_at = {}
        self.phase_of = {}
        self.notes = []
        self.sections = []        # (title, rows)
        self.problems = []

    # ---- setup ------------------------------------------------------------------

    def setup(self):
        a = self.args
        if not TASKEXECD.exists():
            raise RuntimeError("%s is not built (run make)" % TASKEXECD)
        log("scale", "run %s in %s" % (self.run_id, self.root))
        self.services.start()
        self.db = DB(self.services.db_url)
        self.rds = redis.Redis.from_url(self.services.redis_url, decode_responses=True, socket_timeout=30)
        need = a.daemons + 20
        have = int(self.db.query("SHOW max_connections")[0]["max_connections"])
        if have < need:
            # scripts/services sets its own value; raise it for this cluster only.
            new = max(300, need)
            self.db.query("ALTER SYSTEM SET max_connections = %d" % new)
            self.db.close()
            self.services.restart_pg(0)
            self.notes.append("PostgreSQL max_connections was %d (< %d daemons + 20); raised to %d with "
                              "ALTER SYSTEM + restart-pg" % (have, a.daemons, new))
            have = new
        self.max_connections = have
        policy_dir = make_policy_dir(self.root)
        compile_tasks()
        self.env = daemon_env(self.root, self.services, policy_dir, self.prefix, 1, HEARTBEAT, a.log_level)
        t0 = time.monotonic()
        for i in range(a.daemons):
            self.daemons.append(Daemon(self.root, self.env, "scale-d%03d" % (i + 1)))
        for d in self.daemons:
            if not d.wait_ready(self.rds, self.prefix, 120):
                raise RuntimeError("taskexecd %s never published its heartbeat:\n%s" % (d.executor_id, d.tail()))
        self.startup_s = time.monotonic() - t0
        log("scale", "%d daemons ready in %.1fs" % (a.daemons, self.startup_s))

    def live(self):
        return [d for d in self.daemons if d.alive()]

    # ---- idle measurement --------------------------------------------------------------

    def redis_counters(self):
        stats = self.rds.info("stats")
        cpu = self.rds.info("cpu")
        cmd = self.rds.info("commandstats")
        return (stats["total_commands_processed"], cpu["used_cpu_sys"] + cpu["used_cpu_user"],
                {k[len("cmdstat_"):]: v["calls"] for k, v in cmd.items()})

    def pg_xacts(self):
        return self.db.query("SELECT xact_commit + xact_rollback AS n FROM pg_stat_database "
                             "WHERE datname = current_database()")[0]["n"]

    def pg_connections(self):
        rows = self.db.query("SELECT application_name, count(*) AS n FROM pg_stat_activity "
                             "WHERE backend_type = 'client backend' AND datname = current_database() "
                             "GROUP BY application_name")
        by = {r["application_name"]: r["n"] for r in rows}
        harness = by.pop("chaos-harness", 0)
        return sum(by.values()), harness

    def measure_idle(self, label):
        a = self.args
        daemons = self.live()
        log("scale", "idle measurement with %d daemons: settling %.0fs, measuring %.0fs"
            % (len(daemons), 2 * HEARTBEAT_S, a.idle_seconds))
        time.sleep(2 * HEARTBEAT_S)     # deliberate: what the last jobs started dies down
        c0, cpu0, cs0 = self.redis_counters()
        x0 = self.pg_xacts()
        d0 = sum(proc_cpu_s(d.pid) for d in daemons)
        t0 = time.monotonic()
        time.sleep(a.idle_seconds)      # the measurement window itself
        c1, cpu1, cs1 = self.redis_counters()
        x1 = self.pg_xacts()
        d1 = sum(proc_cpu_s(d.pid) for d in daemons)
        dt = time.monotonic() - t0
        # 3 of the commands are this measurement's own INFO calls.
        cmds = (c1 - c0 - 3) / dt
        per_cmd = {k: (cs1.get(k, 0) - cs0.get(k, 0)) / dt for k in cs1}
        per_cmd = {k: v for k, v in per_cmd.items() if v > 0.01 and k != "info"}
        conns, harness = self.pg_connections()
        rss = [r for r in (d.rss_kb() for d in daemons) if r]
        m = {
            "daemons": len(daemons),
            "cmds": cmds,
            "per_cmd": per_cmd,
            "redis_cpu_ms": (cpu1 - cpu0) * 1000 / dt,
            "pg_xacts": (x1 - x0) / dt,
            "daemon_cpu_ms": (d1 - d0) * 1000 / dt,
            "pg_conns": conns,
            "harness_conns": harness,
            "rss": rss,
            "redis_clients": self.rds.info("clients")["connected_clients"] - 1,
        }
        log("scale", "%s: %.1f Redis commands/s, %d PostgreSQL connections" % (label, cmds, conns))
        return m

    # ---- load phases -------------------------------------------------------------------

    def payload(self, n):
        job_id = "%s-%06d" % (self.prefix, n)
        return job_id, json.dumps({"job_id": job_id, "task_type": TASK_TYPE, "module_path": "chaostasks.work",
                                   "class_name": None, "method_name": "quick", "parameters": {"n": n},
                                   "priority": "normal", "enqueued_at": iso_now()})

    def push_one(self, n, phase):
        job_id, p = self.payload(n)
        self.pushed_at[job_id] = time.time()
        push(self.rds, self.prefix, p)
        self.jobs.append(job_id)
        self.phase_of[job_id] = phase

    def wait_terminal(self, ids, timeout):
        deadline = time.monotonic() + timeout
        last = 0
        while True:
            n = self.db.query("SELECT count(*) AS n FROM taskexec.jobs WHERE job_id = ANY(%s) "
                              "AND status IN ('COMPLETED', 'FAILED')", (ids,))[0]["n"]
            if n >= len(ids):
                return True
            for d in self.daemons:
                if not d.alive() and d.exit_status is None:
                    d.exit_status = d.proc.returncode
                    self.problems.append("taskexecd %s died (exit %s):\n%s" % (d.executor_id, d.proc.returncode,
                                                                               d.tail()))
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                log("scale", "%d/%d terminal" % (n, len(ids)))
            if time.monotonic() >= deadline:
                self.problems.append("%d of %d jobs not terminal after %.0fs; Redis: %s"
                                     % (len(ids) - n, len(ids), timeout, redis_leftovers(self.rds, self.prefix)))
                return False
            time.sleep(0.5)

    def rows(self, ids):
        return {r["job_id"]: r for r in self.db.query(
            "SELECT job_id, status, attempts, is_duplicate, executor_id, started_at, finished_at "
            "FROM taskexec.jobs WHERE job_id = ANY(%s)", (ids,))}

    def latency_stats(self, ids, rows):
        lat = sorted(max(0.0, rows[j]["started_at"].timestamp() - self.pushed_at[j]) for j in ids
                     if j in rows and rows[j]["started_at"] is not None)
        return lat

    def burst(self):
        a = self.args
        log("scale", "burst: pushing %d jobs at once" % a.jobs)
        raw = batch_pusher(self.services.redis_url)
        t0 = time.time()
        for start in range(0, a.jobs, 500):
            batch = [self.payload(n) for n in range(start, min(a.jobs, start + 500))]
            t = time.time()
            push_batch(raw, self.prefix, [p for _, p in batch])
            for job_id, _ in batch:
                self.pushed_at[job_id] = t
                self.jobs.append(job_id)
                self.phase_of[job_id] = "burst"
        push_s = time.time() - t0
        raw.close()
        ids = [j for j in self.jobs if self.phase_of[j] == "burst"]
        self.wait_terminal(ids, a.timeout)
        rows = self.rows(ids)
        ends = [r["finished_at"].timestamp() for r in rows.values() if r["finished_at"]]
        span = (max(ends) - t0) if ends else float("nan")
        lat = self.latency_stats(ids, rows)
        per_exec = Counter(r["executor_id"] for r in rows.values())
        counts = sorted(per_exec.values()) or [0]
        self.burst_tput = len(ids) / span if span == span and span > 0 else 0.0
        self.sections.append(("burst: %d no-op jobs pushed at once" % len(ids), [
            ("push time (%d MULTI/EXEC, pipelined 500 a round trip)" % len(ids), "%.1fs (%.0f jobs/s)" % (push_s, len(ids) / push_s)),
            ("first push -> last finished", "%.1fs" % span),
            ("throughput", "%.1f jobs/s" % self.burst_tput),
            ("queue -> RUNNING p50 / p90 / p99 / max", "%s / %s / %s / %s"
             % (ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99)),
                ms(lat[-1] if lat else float("nan")))),
            ("daemons that ran jobs", "%d of %d" % (len(per_exec), a.daemons)),
            ("jobs per daemon min / median / max", "%d / %d / %d"
             % (counts[0], counts[len(counts) // 2], counts[-1])),
        ]))

    def paced(self):
        a = self.args
        if a.paced_jobs <= 0:
            return
        rate = a.paced_rate or max(1.0, min(200.0, self.burst_tput / 2))
        log("scale", "paced: %d jobs at %.1f/s" % (a.paced_jobs, rate))
        base = a.jobs
        t0 = time.monotonic()
        for i in range(a.paced_jobs):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.push_one(base + i, "paced")
        ids = [j for j in self.jobs if self.phase_of[j] == "paced"]
        self.wait_terminal(ids, 120 + a.paced_jobs / rate)
        rows = self.rows(ids)
        lat = self.latency_stats(ids, rows)
        p99 = percentile(lat, 99)
        buckets = [(0.005, "< 5 ms"), (0.025, "< 25 ms"), (0.1, "< 100 ms"), (0.5, "< 500 ms"), (1e9, "all")]
        dist = ", ".join("%s %.1f%%" % (name, 100.0 * sum(1 for x in lat if x < lim) / len(lat))
                         for lim, name in buckets[:-1]) if lat else "n/a"
        self.sections.append(("paced: %d no-op jobs at %.1f jobs/s (half the burst throughput)" % (len(ids), rate), [
            ("queue -> RUNNING p50 / p90 / p99 / max", "%s / %s / %s / %s"
             % (ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(p99), ms(lat[-1] if lat else float("nan")))),
            ("queue -> RUNNING mean", ms(statistics.mean(lat)) if lat else "n/a"),
            ("share of jobs started within", dist),
            ("target p99 < %d ms" % LATENCY_TARGET_MS, "met" if p99 * 1000 < LATENCY_TARGET_MS else "MISSED"),
        ]))

    # ---- exactly once --------------------------------------------------------------------

    def exactly_once(self):
        ids = self.jobs
        rows = self.rows(ids)
        natt = {r["job_id"]: r["n"] for r in self.db.query(
            "SELECT job_id, count(*) AS n FROM taskexec.attempts WHERE job_id = ANY(%s) GROUP BY job_id", (ids,))}
        marks = defaultdict(int)
        d = self.root / "state" / "chaos"
        if d.is_dir():
            for f in d.iterdir():
                if f.name.startswith("runs-"):
                    marks[f.name[5:]] += len(f.read_text().splitlines())
        bad = []
        for j in ids:
            r = rows.get(j)
            if r is None or r["status"] != "COMPLETED" or r["attempts"] != 1 or natt.get(j) != 1 \
                    or marks.get(j) != 1 or r["is_duplicate"]:
                bad.append("%s: %s, attempts %s, attempt rows %s, run markers %s, is_duplicate %s"
                           % (j, r["status"] if r else "no row", r["attempts"] if r else "-", natt.get(j, 0),
                              marks.get(j, 0), r["is_duplicate"] if r else "-"))
        runs = sum(marks.get(j, 0) for j in ids)
        self.sections.append(("exactly once", [
            ("jobs pushed", len(ids)),
            ("COMPLETED", sum(1 for r in rows.values() if r["status"] == "COMPLETED")),
            ("attempt rows", sum(natt.values())),
            ("successful runs (marker lines)", runs),
            ("jobs not run exactly once", len(bad)),
        ]))
        if bad:
            self.problems.append("%d jobs were not executed exactly once:\n  %s%s"
                                 % (len(bad), "\n  ".join(bad[:20]), "\n  ..." if len(bad) > 20 else ""))

    # ---- the run -----------------------------------------------------------------------------

    def idle_rows(self, m):
        rss = sorted(m["rss"]) or [0]
        return [
            ("Redis commands/s (total_commands_processed)", "%.1f (%.2f per daemon)"
             % (m["cmds"], m["cmds"] / m["daemons"])),
            ("  per daemon per heartbeat (%gs)" % HEARTBEAT_S, "%.1f" % (m["cmds"] / m["daemons"] * HEARTBEAT_S)),
            ("Redis CPU", "%.2f ms/s" % m["redis_cpu_ms"]),
            ("Redis client connections", "%d (%.1f per daemon)" % (m["redis_clients"], m["redis_clients"] / m["daemons"])),
            ("PostgreSQL transactions/s (pg_stat_database, approx.)", "%.1f" % m["pg_xacts"]),
            ("PostgreSQL connections (daemons)", "%d (%.2f per daemon; max_connections %d)"
             % (m["pg_conns"], m["pg_conns"] / m["daemons"], self.max_connections)),
            ("daemons' own CPU, all together", "%.2f ms/s" % m["daemon_cpu_ms"]),
            ("RSS per daemon min / median / max", "%.1f / %.1f / %.1f MiB"
             % (rss[0] / 1024, rss[len(rss) // 2] / 1024, rss[-1] / 1024)),
        ]

    def run(self):
        a = self.args
        self.setup()
        idle_n = self.measure_idle("idle, %d daemons" % a.daemons)
        self.burst()
        self.paced()
        self.exactly_once()
        rss_after = sorted(r for r in (d.rss_kb() for d in self.live()) if r) or [0]
        # The CLI holds no connection: run one command and look while nothing runs.
        keep = self.live()[:a.compare_daemons]
        stop = [d for d in self.live() if d not in keep]
        log("scale", "SIGTERM to %d daemons, keeping %d" % (len(stop), len(keep)))
        for d in stop:
            d.proc.send_signal(signal.SIGTERM)
        for d in stop:
            st = d.stop(30)
            if st != 0:
                self.problems.append("taskexecd %s: %s after SIGTERM" % (d.executor_id, st))
        idle_k = self.measure_idle("idle, %d daemons" % len(keep)) if keep else None
        for d in keep:
            st = d.stop(30)
            if st != 0:
                self.problems.append("taskexecd %s: %s after SIGTERM" % (d.executor_id, st))
        left = redis_leftovers(self.rds, self.prefix)
        if left:
            self.problems.append("entries left in Redis after the run: %s" % left)
        conns_after, _ = self.pg_connections()
        return self.report(idle_n, idle_k, rss_after, conns_after)

    def report(self, idle_n, idle_k, rss_after, conns_after):
        a = self.args
        out = []
        out.append("taskexec scale run %s, %s, %s, %d CPUs, %.1f GiB RAM"
                   % (self.run_id, datetime.now().strftime("%Y-%m-%d %H:%M"), platform.node(), os.cpu_count(),
                      os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30))
        out.append("%d taskexecd at concurrency 1, heartbeat %s, one Redis, one PostgreSQL (scripts/services); "
                   "all %d ready %.1fs after start" % (a.daemons, HEARTBEAT, a.daemons, self.startup_s))
        for n in self.notes:
            out.append("note: " + n)
        out.append("")
        headers = ("idle (%.0fs)" % a.idle_seconds, "%d daemons" % idle_n["daemons"])
        rows_n = self.idle_rows(idle_n)
        if idle_k:
            rows_k = self.idle_rows(idle_k)
            headers = headers + ("%d daemons" % idle_k["daemons"],)
            rows = [(r[0], r[1], k[1]) for r, k in zip(rows_n, rows_k)]
            ratio_d = idle_n["daemons"] / idle_k["daemons"]
            ratio_c = idle_n["cmds"] / idle_k["cmds"] if idle_k["cmds"] else float("nan")
            ratio_cpu = idle_n["redis_cpu_ms"] / idle_k["redis_cpu_ms"] if idle_k["redis_cpu_ms"] else float("nan")
            rows.append(("growth, %d -> %d daemons (x%.0f)" % (idle_k["daemons"], idle_n["daemons"], ratio_d),
                         "commands x%.1f, Redis CPU x%.1f" % (ratio_c, ratio_cpu),
                         "linear" if ratio_c <= ratio_d * 1.3 else "FASTER THAN LINEAR"))
        else:
            rows = rows_n
        out.append(table(rows, headers))
        for m in (idle_n, idle_k):
            if m:
                top = sorted(m["per_cmd"].items(), key=lambda kv: -kv[1])[:10]
                out.append("  Redis calls/s by command, %d daemons idle (INFO commandstats, commands run by "
                           "scripts included): %s" % (m["daemons"], ", ".join("%s %.1f" % kv for kv in top)))
        for title, rows in self.sections:
            out.append("")
            out.append(table(rows, (title, "")))
        out.append("")
        out.append(table([
            ("RSS per daemon after the load, min / median / max", "%.1f / %.1f / %.1f MiB"
             % (rss_after[0] / 1024, rss_after[len(rss_after) // 2] / 1024, rss_after[-1] / 1024)),
            ("PostgreSQL connections after every daemon stopped", conns_after),
            ("the taskexec CLI", "connects per command, holds none while idle"),
        ], ("connections and memory", "")))
        out.append("")
        if self.problems:
            out.append("PROBLEMS:")
            for p in self.problems:
                out.append("  " + p.replace("\n", "\n  "))
        else:
            out.append("OK: every job executed exactly once, every daemon stopped cleanly")
        text = "\n".join(out)
        print(text)
        if a.report:
            os.makedirs(os.path.dirname(os.path.abspath(a.report)), exist_ok=True)
            with open(a.report, "w") as f:
                f.write("```\n" + text + "\n```\n")
            log("scale", "report written to %s" % a.report)
        return not self.problems

    def kill_all(self):
        for d in self.daemons:
            if d.alive():
                d.proc.kill()
                try:
                    d.proc.wait(10)
                except Exception:
                    pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemons", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=10000)
    ap.add_argument("--paced-jobs", type=int, default=500)
    ap.add_argument("--paced-rate", type=float, default=None, help="default: half the burst throughput")
    ap.add_argument("--compare-daemons", type=int, default=10)
    ap.add_argument("--idle-seconds", type=float, default=20.0)
    ap.add_argument("--timeout", type=float, default=None, help="for the burst (default 120 + 0.2 s a job)")
    ap.add_argument("--log-level", default="warn", choices=("debug", "info", "warn", "error"))
    ap.add_argument("--report", default=None, help="also write the tables to this file")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.timeout is None:
        args.timeout = 120 + 0.2 * args.jobs
    args.compare_daemons = max(0, min(args.compare_daemons, args.daemons - 1))

    def on_term(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)

    s = Scale(args)
    ok, rc = False, 2
    try:
        ok = s.run()
        rc = 0 if ok else 1
    except KeyboardInterrupt:
        log("scale", "interrupted")
    except Exception as e:
        import traceback
        traceback.print_exc()
        log("scale", "harness error: %s" % e)
    finally:
        s.kill_all()
        if getattr(s, "db", None):
            s.db.close()
        s.services.stop()
        if ok and not args.keep:
            shutil.rmtree(s.root, ignore_errors=True)
        else:
            log("scale", "run directory kept: %s" % s.root)
    sys.exit(rc)


if __name__ == "__main__":
    main()
