#!/usr/bin/python3
# SPDX-License-Identifier: ISC
"""Failover run: a steady stream of jobs through 3 daemons while Redis and
PostgreSQL fail over underneath them (issue 13).

scripts/services start-ha gives a Redis primary + replica under three
sentinels and a PostgreSQL primary + streaming standby.  The daemons and the
producer (the Python client, taskexec.Client) use the redis+sentinel:// URL
and the multi-host database URL.  Each round:

  redis  SIGSTOP the replica and cut its link (CLIENT KILL TYPE replica)
         for --freeze seconds while jobs flow (the master acknowledges
         writes the replica never gets), SIGKILL the
         master, SIGCONT the replica; Sentinel promotes it, so those writes
         (enqueues, claims, acknowledgements) are really lost and must come
         back through the reconciliation; the old master is started again
         as a replica
  pg     stop the PostgreSQL primary (pg_ctl stop -m fast), pg_ctl promote
         the standby, then rebuild the old primary as the new standby

--rounds N runs N rounds of "redis, then pg", every second one reversed
("pg, then redis").  Measured: the time from the Redis master's death to
the first job claimed afterwards and COMPLETED (claims need the new
master), and from pg_ctl promote to the first job COMPLETED afterwards.

Checked (exit 0 only when all hold):
  - lost = 0: every job whose enqueue the client acknowledged has a
    terminal row (COMPLETED: they are all no-op or short jobs);
  - a job refused to the producer (the enqueue raised) is recorded FAILED
    'enqueue failed' or ran anyway, never left QUEUED/RUNNING;
  - a job that ran more than once is flagged is_duplicate;
  - Redis holds no queue, delayed or processing entry at the end;
  - every daemon exits 0 on SIGTERM.
With --report FILE the table and the checks are written there too.
"""
import argparse
import json
import os
import urllib.request
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "client"))

import testlib  # noqa: E402
from testlib import DB, Daemon  # noqa: E402

import taskexec  # noqa: E402

TASKEXECD = Path(os.environ.get("ITEST_TASKEXECD", REPO / "build" / "taskexecd"))


def services(d, *args):
    r = subprocess.run([str(REPO / "scripts" / "services"), args[0], str(d), *args[1:]], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
    if r.returncode:
        raise RuntimeError("scripts/services %s: %s%s" % (args[0], r.stdout, r.stderr))
    return r.stdout


class Producer(threading.Thread):
    """Enqueues itasks.basic:noop (and a few sleeps) at RATE/s with the
    Python client; remembers which enqueues were acknowledged."""

    def __init__(self, env, prefix, rate):
        super().__init__(daemon=True)
        self.client = taskexec.Client(redis_url=env["TASKEXEC_REDIS_URL"], db_url=env["TASKEXEC_DB_URL"],
                                      queue_prefix=prefix, policy_dir=env["TASKEXEC_POLICY_DIR"])
        self.rate = rate
        self.run_id = prefix
        self.acked, self.refused = [], []
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            n += 1
            # Distinct parameters: an identical payload would be flagged a
            # possible duplicate of its twin, hiding the flags a failover sets.
            entry, params = (("itasks.basic:sleep", {"seconds": round(0.3 + n / 1e6, 6)}) if n % 5 == 0
                             else ("itasks.basic:echo", {"n": n, "run": self.run_id}))
            try:
                job = self.client.enqueue(entry, "ad_hoc", params)
                self.acked.append(job.id)
            except Exception as e:          # noqa: BLE001 (any failure: not acknowledged)
                self.refused.append(str(e).splitlines()[0][:200])
                self.client.close()
            self.stop.wait(1.0 / self.rate)


def wall():
    return datetime.now(timezone.utc)


def first_completion_after(db, t, started_after=False):
    """Seconds from t to the first COMPLETED attempt ending after t (that
    also started after t when started_after), or None."""
    rows = db.query("SELECT min(a.ended_at) AS first FROM taskexec.attempts a WHERE a.outcome = 'completed' "
                    "AND a.ended_at > %s" + (" AND a.started_at > %s" if started_after else ""),
                    (t, t) if started_after else (t,))
    return (rows[0]["first"] - t).total_seconds() if rows and rows[0]["first"] else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemons", type=int, default=3)
    ap.add_argument("--rate", type=float, default=10.0, help="jobs enqueued per second")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds of steady flow between failovers")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for the last jobs to finish")
    ap.add_argument("--freeze", type=float, default=1.0,
                    help="seconds the Redis replica misses writes before the master is killed")
    ap.add_argument("--burst", type=int, default=12,
                    help="jobs enqueued behind busy slots just before each Redis kill")
    ap.add_argument("--report")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="taskexec-fo-", dir="/tmp"))
    root.chmod(0o755)
    ha = root / "services"
    run_id = os.urandom(3).hex()
    prefix = "fo-" + run_id
    daemons, measures, events = [], [], []
    t_start = time.monotonic()
    checks = []
    try:
        out = services(ha, "start-ha")
        urls = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        env = testlib.daemon_env(root, urls, prefix, TASKEXEC_SHUTDOWN_TIMEOUT="10s", TASKEXEC_CONCURRENCY="2")
        db = DB(env["TASKEXEC_DB_URL"])
        http = testlib.spare_port()
        for i in range(args.daemons):
            e = dict(env, TASKEXEC_EXECUTOR_ID="fo-%s-%d" % (run_id, i))
            if i == 0:
                e["TASKEXEC_HTTP_LISTEN"] = "127.0.0.1:%d" % http
            daemons.append(Daemon(e, root, root / ("daemon-%d.log" % i)))
        for d in daemons:
            d.wait_event("redis.master", timeout=30)
        producer = Producer(env, prefix, args.rate)
        producer.start()
        time.sleep(args.settle)

        ports = dict(line.split("=", 1) for line in (ha / "ha" / "ports").read_text().splitlines())

        def redis_failover():
            master = services(ha, "env-ha") and producer.client.redis.connection_pool.get_master_address()[1]
            replica = [p for p in ports["REDIS_PORTS"].strip('"').split() if int(p) != master][0]
            seen = [len(d.events("redis.master_changed")) for d in daemons]
            pid = int((ha / "ha" / ("redis-%s" % replica) / "redis.pid").read_text())
            os.kill(pid, signal.SIGSTOP)
            try:
                # Cut the replication link while the replica cannot reconnect:
                # what the master acknowledges from now on, it alone holds.
                subprocess.run(["redis-cli", "-p", str(master), "CLIENT", "KILL", "TYPE", "replica"],
                               stdout=subprocess.DEVNULL, check=True)
                # Every slot busy, and a backlog behind them: enqueues (and
                # claims) that only the doomed master will ever hold.
                burst = taskexec.Client(redis_url=env["TASKEXEC_REDIS_URL"], db_url=env["TASKEXEC_DB_URL"],
                                        queue_prefix=prefix, policy_dir=env["TASKEXEC_POLICY_DIR"])
                for i in range(2 * args.daemons):
                    producer.acked.append(burst.enqueue("itasks.basic:sleep", "ad_hoc",
                                                        {"seconds": round(1.5 + (100 * len(events) + i) / 1e6,
                                                                          6)}).id)
                for i in range(args.burst):
                    producer.acked.append(burst.enqueue("itasks.basic:echo", "ad_hoc",
                                                        {"burst": i, "at": time.time()}).id)
                burst.close()
                time.sleep(args.freeze)
                old = services(ha, "kill-redis-primary").strip()
                t = wall()
            finally:
                os.kill(pid, signal.SIGCONT)
            for d, k in zip(daemons, seen):
                testlib.wait_for(lambda: len(d.events("redis.master_changed")) > k, 60,
                                 "%s to follow the new Redis master" % d.executor_id)
            switched = (wall() - t).total_seconds()
            testlib.wait_for(lambda: first_completion_after(db, t, started_after=True), 60,
                             "a job claimed and completed after the Redis failover")
            n = len(events) + 1
            measures.append(("%d. Redis: master killed -> every daemon on the new master" % n, switched))
            measures.append(("%d. Redis: master killed -> first job claimed after it COMPLETED" % n,
                             first_completion_after(db, t, started_after=True)))
            services(ha, "revive-redis")
            events.append("Redis master :%s killed after its replica missed %gs of writes" % (old, args.freeze))

        def pg_failover():
            old = services(ha, "stop-pg-primary").strip()
            t = wall()
            new = services(ha, "promote-pg").strip()
            testlib.wait_for(lambda: first_completion_after(db, t), 60, "a job completed after pg_ctl promote")
            measures.append(("%d. PostgreSQL: pg_ctl promote -> first job COMPLETED" % (len(events) + 1),
                             first_completion_after(db, t)))
            services(ha, "rebuild-pg-standby")
            events.append("PostgreSQL primary :%s stopped, standby :%s promoted" % (old, new))

        for r in range(args.rounds):
            steps = (redis_failover, pg_failover) if r % 2 == 0 else (pg_failover, redis_failover)
            for step in steps:
                step()
                time.sleep(args.settle)
        producer.stop.set()
        producer.join(30)

        acked = list(producer.acked)

        def unfinished():
            rows = db.query("SELECT job_id FROM taskexec.jobs WHERE job_id = ANY(%s) AND status IN "
                            "('COMPLETED', 'FAILED')", (acked,))
            return len(acked) - len(rows)
        deadline = time.monotonic() + args.timeout
        while unfinished() and time.monotonic() < deadline:
            time.sleep(0.5)

        rows = {r["job_id"]: r for r in db.query(
            "SELECT j.job_id, j.status, j.error, j.is_duplicate, j.attempts, "
            "(SELECT count(*) FROM taskexec.attempts a WHERE a.job_id = j.job_id AND a.outcome = 'completed') AS runs, "
            "(SELECT count(*) FROM taskexec.attempts a WHERE a.job_id = j.job_id AND a.outcome = 'executor_lost') "
            "AS lost_attempts FROM taskexec.jobs j WHERE j.job_id LIKE '%%'")}
        lost = [j for j in acked if rows.get(j, {}).get("status") not in ("COMPLETED", "FAILED")]
        failed_acked = [j for j in acked if rows.get(j, {}).get("status") == "FAILED"]
        refused_rows = [r for r in rows.values() if r["job_id"] not in set(acked)]
        refused_stuck = [r for r in refused_rows if r["status"] not in ("COMPLETED", "FAILED")]
        ran_twice = [r for r in rows.values() if r["runs"] > 1]
        unflagged = [r for r in ran_twice if not r["is_duplicate"]]
        flagged = [r for r in rows.values() if r["is_duplicate"]]
        import redis as redislib
        rds = producer.client.redis
        leftovers = sum(rds.llen(testlib.key(prefix, "queue", p)) for p in ("high", "normal", "low"))
        leftovers += rds.zcard(testlib.key(prefix, "delayed"))
        leftovers += sum(rds.llen(k) for k in rds.scan_iter(match=testlib.key(prefix, "processing", "*")))
        reconciled = sum(len(d.events("queue.reconciled")) and sum(e.get("jobs", 0) for e in d.events("queue.reconciled"))
                         for d in daemons)
        # What an operator sees: the servers in use, on /readyz and /metrics.
        master = "127.0.0.1:%d" % rds.connection_pool.get_master_address()[1]
        primary = "127.0.0.1:%s" % db.query("SELECT current_setting('port') AS p")[0]["p"]
        ready = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/readyz" % http, timeout=10).read())
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % http, timeout=10).read().decode()
        n_redis = sum(1 for e in events if e.startswith("Redis"))
        n_pg = len(events) - n_redis
        exits = []
        for d in daemons:
            exits.append(d.terminate(30))
        del redislib

        checks = [
            (not lost, "lost = 0 among %d acknowledged enqueues%s" % (len(acked), "" if not lost else
                                                                        " (lost: %s)" % ", ".join(lost[:10]))),
            (not failed_acked, "every acknowledged job COMPLETED (%d FAILED)" % len(failed_acked)),
            (not refused_stuck, "no refused enqueue left QUEUED/RUNNING (%d refused)" % len(producer.refused)),
            (not unflagged, "no job ran twice unless flagged is_duplicate (%d ran twice)" % len(ran_twice)),
            (leftovers == 0, "Redis empty after the run (%d entries left)" % leftovers),
            (all(x == 0 for x in exits), "every daemon exits 0 on SIGTERM (%s)" % exits),
            (ready.get("redis_master") == master and ready.get("postgres_primary") == primary,
             "/readyz names the Redis master %s and PostgreSQL server %s in use (%s, %s)"
             % (master, primary, ready.get("redis_master"), ready.get("postgres_primary"))),
            ('taskexec_redis_master_info{address="%s"} 1' % master in metrics and
             'taskexec_postgres_primary_info{address="%s"} 1' % primary in metrics and
             "taskexec_redis_failovers_total %d" % n_redis in metrics and
             "taskexec_postgres_failovers_total %d" % n_pg in metrics,
             "/metrics names both and counts %d Redis and %d PostgreSQL failovers" % (n_redis, n_pg)),
        ]
        table = [
            ("jobs pushed (acknowledged / refused)", "%d / %d" % (len(acked), len(producer.refused))),
            ("terminal (acknowledged)", "%d (COMPLETED %d, FAILED %d)" % (
                len(acked) - len(lost), sum(1 for j in acked if rows.get(j, {}).get("status") == "COMPLETED"),
                len(failed_acked))),
            ("refused enqueues: recorded FAILED / ran anyway / no row", "%d / %d / %d" % (
                sum(1 for r in refused_rows if r["status"] == "FAILED"),
                sum(1 for r in refused_rows if r["status"] == "COMPLETED"),
                len(producer.refused) - len(refused_rows))),
            ("lost", str(len(lost))),
            ("duplicates flagged (is_duplicate) / ran twice / unflagged", "%d / %d / %d" % (
                len(flagged), len(ran_twice), len(unflagged))),
            ("executor_lost attempts", str(sum(r["lost_attempts"] for r in rows.values()))),
            ("jobs pushed again by the reconciliation sweep", str(reconciled)),
        ] + [(k, "%.2fs" % v if v is not None else "none") for k, v in measures] + [
            ("wall time", "%.1fs" % (time.monotonic() - t_start)),
        ]
    finally:
        for d in daemons:
            if d.alive():
                d.stop(15)
        try:
            services(ha, "stop")
        except Exception as e:                  # noqa: BLE001
            print("stopping services: %s" % e, file=sys.stderr)
    w = max(len(k) for k, _ in table)
    v = max(len(x) for _, x in table)
    line = "+-%s-+-%s-+" % ("-" * w, "-" * v)
    text = ["taskexec failover run %s, %s, %s, %d CPUs: %d daemons x concurrency 2, heartbeat 1s, %g jobs/s, "
            "%d round(s), replica frozen %gs before each Redis kill" % (run_id, wall().strftime("%Y-%m-%d %H:%M"), socket.gethostname(), os.cpu_count(),
                             args.daemons, args.rate, args.rounds, args.freeze), line,
            "| %s | %s |" % ("what".ljust(w), "value".ljust(v)), line]
    text += ["| %s | %s |" % (k.ljust(w), x.rjust(v)) for k, x in table] + [line, ""]
    text += ["failover %d: %s" % (i + 1, e) for i, e in enumerate(events)] + [""]
    text += ["%s  %s" % ("PASS" if ok else "FAIL", what) for ok, what in checks]
    if producer.refused:
        text += ["", "first refused enqueues (not acknowledged, so not counted as lost):"]
        text += ["  " + r for r in sorted(set(producer.refused))[:5]]
    out = "\n".join(text) + "\n"
    print(out)
    if args.report:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text("```\n" + out + "```\n")
    failed = [what for ok, what in checks if not ok]
    if failed:
        for d in daemons:
            print(d.tail(40))
    import shutil
    if not failed and not os.environ.get("ITEST_KEEP"):
        shutil.rmtree(root, ignore_errors=True)
    else:
        print("files kept in %s" % root)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
