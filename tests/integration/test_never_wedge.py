# SPDX-License-Identifier: ISC
"""Issue "never wedge": no payload, result or fault holds a slot, the loop or
the queue.  Each test ends with the next good job completing on a daemon of
concurrency 1: a wedged slot would stop it."""
import json
import os
import re

import pytest

from ithelpers import TASK_TYPE, assert_rejected, describe, invalid_job_id, job_payload, wait_for
from testlib import fill_inodes

E = "\u00e9"      # two bytes in UTF-8: a byte limit can cut it in half


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


# ------------------------------------------------------------------ 1. payloads

def test_rejection_quoting_a_field_cut_mid_character_is_recorded(daemon, push, submit, wait_terminal, db):
    d = daemon()
    cases = []
    p = job_payload(module_path=E * 200)
    cases.append((p["job_id"], "module_path"))
    push(p)
    p = job_payload(class_name=E * 200)
    cases.append((p["job_id"], "class_name"))
    push(p)
    p = job_payload(task_type="t" + E * 40)
    cases.append((p["job_id"], "task_type"))
    push(p)
    p = job_payload(parameters={E * 40: 1})
    cases.append((p["job_id"], "parameters."))
    push(p)
    p = job_payload()
    p[E * 40] = 1
    cases.append((p["job_id"], "unknown field"))
    push(p)
    good = submit("itasks.basic:noop")
    rows = wait_terminal([j for j, _ in cases] + [good], 20)
    for job_id, words in cases:
        row = assert_rejected(db, job_id, words)
        assert "\ufffd" not in row["error"], row["error"]
    assert rows[good]["status"] == "COMPLETED", describe(db, good)
    assert d.alive()


def test_unknown_member_with_a_valid_job_id_fails_that_job_row(daemon, push, submit, wait_terminal, db, cli):
    """The QUEUED row a producer wrote ends FAILED under its own id, not under
    invalid-<hash>, so `submit --wait` and the row see the outcome."""
    d = daemon()
    p = job_payload(colour="blue")
    push(p)
    rows = wait_terminal([p["job_id"]], 20)
    assert_rejected(db, p["job_id"], "colour: unknown field")
    assert db.job(invalid_job_id(json.dumps(p))) is None
    assert d.alive()


def test_oversized_payload_is_stored_as_a_prefix_and_a_hash(daemon, push, submit, wait_terminal, db):
    d = daemon()
    big = json.dumps(job_payload(parameters={"blob": "x" * (3 << 20)}))
    push(big)
    good = submit("itasks.basic:noop")
    job_id = invalid_job_id(big)
    rows = wait_terminal([job_id, good], 30)
    row = assert_rejected(db, job_id, "over the limit")
    assert len(row["payload"]) < 70000, len(row["payload"])
    assert "sha256" in row["payload"]
    assert rows[good]["status"] == "COMPLETED", describe(db, good)
    assert d.alive()


# ------------------------------------------------------------------ 2. results

UNSTORABLE_RESULTS = [
    ('{"ok":true,"result":1E-20000}', "numeric"),
    ('{"ok":true,"result":{"n":1E+200000}}', "overflow"),
    ('{"ok":true,"result":"a\\u0000b"}', ""),
    ('{"ok":false,"type":"ValueError","message":"nul \\u0000 here","traceback":"t","retryable":true}', ""),
    ('{"ok":true,"result":"\\ud800"}', ""),
]


@pytest.mark.parametrize("text,word", UNSTORABLE_RESULTS, ids=["underflow", "overflow", "nul", "nul-error",
                                                                "lone-surrogate"])
def test_result_postgres_cannot_store_ends_the_job_recorded(daemon, push, submit, wait_terminal, db, text, word):
    d = daemon()
    p = job_payload(method_name="raw_result", parameters={"text": text}, max_retries=0)
    push(p)
    good = submit("itasks.basic:noop")
    rows = wait_terminal([p["job_id"], good], 20)
    row = rows[p["job_id"]]
    assert row["status"] == "FAILED", describe(db, p["job_id"])
    assert row["result"] is None
    assert word in (row["error"] or ""), describe(db, p["job_id"])
    att = db.attempts(p["job_id"])
    assert len(att) == 1 and att[0]["outcome"] is not None, describe(db, p["job_id"])
    assert rows[good]["status"] == "COMPLETED", describe(db, good)
    assert d.alive()


def test_unstorable_results_on_every_slot_do_not_stop_the_daemon(daemon, push, submit, wait_terminal, db):
    d = daemon(concurrency=2)
    bad = []
    for _ in range(4):
        p = job_payload(method_name="raw_result", parameters={"text": UNSTORABLE_RESULTS[0][0]}, max_retries=1)
        push(p)
        bad.append(p["job_id"])
    good = [submit("itasks.basic:noop") for _ in range(3)]
    rows = wait_terminal(bad + good, 30)
    assert all(rows[j]["status"] == "FAILED" for j in bad), [describe(db, j) for j in bad]
    assert all(rows[j]["status"] == "COMPLETED" for j in good)
    assert d.alive()


# ------------------------------------------------------------------ 5. leaks

def test_rejected_payloads_with_big_parameters_do_not_grow_the_daemon(daemon, push, submit, wait_terminal, db):
    # Under ASan freed memory waits in a quarantine (256 MB by default) before
    # it is reused: a small one keeps RSS a measure of what is still held.
    # LeakSanitizer reports true leaks at exit all the same.
    asan = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=4"]))
    d = daemon(env={"ASAN_OPTIONS": asan})
    blob = {"k%d" % i: "v" * 64 for i in range(9000)}          # ~0.9 MB, many objects
    blob["not a name"] = 1
    first = job_payload(parameters=blob)
    push(first)
    wait_terminal([first["job_id"]], 30)
    before = rss_kb(d.pid)
    ids = []
    for _ in range(30):
        p = job_payload(parameters=blob)
        push(p)
        ids.append(p["job_id"])
    good = submit("itasks.basic:noop")
    rows = wait_terminal(ids + [good], 60)
    assert all(rows[j]["status"] == "FAILED" for j in ids)
    grown = rss_kb(d.pid) - before
    # 30 leaked trees would be about 57 MiB.
    assert grown < 16 * 1024, "RSS grew by %d KiB over 30 rejected payloads" % grown


# ------------------------------------------------------------------ 8. idempotency

def test_two_jobs_with_one_idempotency_key_queued_together_run_once(ctx, daemon, push, wait_terminal, db):
    d = daemon(concurrency=2)
    marker_dir = ctx.marker_dir()
    jobs = [job_payload(method_name="sleep_once", parameters={"marker_dir": marker_dir, "seconds": 1},
                        idempotency_key="key-" + ctx.prefix) for _ in range(2)]
    for p in jobs:
        push(p)
    ids = [p["job_id"] for p in jobs]
    rows = wait_terminal(ids, 30)
    assert [rows[j]["status"] for j in ids] == ["COMPLETED", "COMPLETED"], [describe(db, j) for j in ids]
    assert len([n for n in os.listdir(marker_dir) if n.startswith("run-")]) == 1
    dup = [j for j in ids if rows[j]["is_duplicate"]]
    assert len(dup) == 1, [describe(db, j) for j in ids]
    assert rows[dup[0]]["duplicate_of"] in ids and rows[dup[0]]["duplicate_of"] != dup[0]
    assert db.attempts(dup[0]) == [], describe(db, dup[0])
    assert d.alive()


# ------------------------------------------------------------------ 11. smaller ones

def test_queued_row_takes_the_fields_of_the_payload_that_ran(daemon, push, wait_terminal, db):
    d = daemon()
    p = job_payload(method_name="echo", parameters={"ran": True})
    db.query("INSERT INTO taskexec.jobs (job_id, task_type, module_path, method_name, parameters) "
             "VALUES (%s, %s, 'itasks.basic', 'noop', '{\"written\": true}')", (p["job_id"], TASK_TYPE))
    push(p)
    row = wait_terminal(p["job_id"], 20)[p["job_id"]]
    assert row["status"] == "COMPLETED", describe(db, p["job_id"])
    assert row["result"] == {"ran": True}
    assert (row["method_name"], row["parameters"]) == ("echo", {"ran": True})
    assert d.alive()


def test_rerun_of_a_job_stopped_by_a_drain_is_flagged_a_possible_duplicate(ctx, daemon, submit, wait_status,
                                                                           wait_terminal, db):
    d = daemon(shutdown_timeout="1s")
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=30")
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 15, "the first run to start")
    assert d.terminate(timeout=20) == 0
    daemon()
    row = wait_terminal(job, 20)[job]
    assert row["status"] == "COMPLETED", describe(db, job)
    assert [a["outcome"] for a in db.attempts(job)] == ["shutdown", "completed"]
    assert row["is_duplicate"] is True


def test_late_outcome_of_a_presumed_lost_executor_is_not_counted(ctx, daemon, submit, wait_terminal, db):
    import signal
    a = daemon()
    marker_dir = ctx.marker_dir()
    job = submit("itasks.basic:sleep_once", "marker_dir=%s" % marker_dir, "seconds=4")
    wait_for(lambda: os.path.exists(os.path.join(marker_dir, "run-0")), 15, "the first run to start")
    a.signal(signal.SIGSTOP)
    try:
        b = daemon()
        row = wait_terminal(job, 30)[job]
        assert row["status"] == "COMPLETED" and db.attempts(job)[-1]["executor_id"] == b.executor_id
    finally:
        a.signal(signal.SIGCONT)

    def a_saw_it():
        return [e for e in a.log_lines() if e.get("job_id") == job and e.get("event", "").startswith("job.")
                and e.get("event") in ("job.late_outcome_ignored", "job.completed", "job.failed")]
    seen = wait_for(a_saw_it, 15, "the first executor to record its late outcome")
    assert [e["event"] for e in seen] == ["job.late_outcome_ignored"], seen
    assert db.job(job)["status"] == "COMPLETED"


# ------------------------------------------------------------------ 3. executor faults

def http_get(address, path):
    import http.client
    host, _, port = address.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


@pytest.fixture
def small_fs(ctx):
    """A 1 MiB tmpfs with 64 inodes, mounted for this test (root only: the
    daemon must see the mount)."""
    import subprocess
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run the suite as root, as CI does")
    mnt = ctx.dir / "scratchfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64,mode=0755", "tmpfs", str(mnt)],
                   check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_scratch_puts_jobs_back_uncharged_and_says_so(ctx, daemon, submit, wait_terminal, db, small_fs):
    import shutil
    from testlib import spare_port
    listen = "127.0.0.1:%d" % spare_port()
    d = daemon(env={"TASKEXEC_SCRATCH_DIR": str(small_fs), "TASKEXEC_HTTP_LISTEN": listen})
    filler = fill_inodes(small_fs)
    jobs = [submit("itasks.basic:noop") for _ in range(6)]
    wait_for(lambda: any(e.get("event") == "executor.fault" for e in d.log_lines()), 15,
             "the daemon to report its fault")
    status, body = http_get(listen, "/readyz")
    assert status == 503 and "No space left on device" in body, body
    assert http_get(listen, "/livez")[0] == 200
    rows = {j: db.job(j) for j in jobs}
    assert all(r["status"] in ("QUEUED", "RUNNING") for r in rows.values()), [describe(db, j) for j in jobs]
    assert "taskexec_executor_fault 1" in http_get(listen, "/metrics")[1]
    shutil.rmtree(filler)
    rows = wait_terminal(jobs, 60)
    assert all(r["status"] == "COMPLETED" for r in rows.values()), [describe(db, j) for j in jobs]
    for j in jobs:
        outs = [a["outcome"] for a in db.attempts(j)]
        assert outs[-1] == "completed" and set(outs[:-1]) <= {"executor_fault"}, describe(db, j)
    assert any(a["outcome"] == "executor_fault" for j in jobs for a in db.attempts(j))
    assert http_get(listen, "/readyz")[0] == 200
    faults = [e for e in d.log_lines() if e.get("event") == "executor.fault"]
    assert len(faults) == 1, faults          # once per cause, not once per probe
    assert d.alive()


# ------------------------------------------------------------------ 9. a hung PostgreSQL

class FreezingProxy:
    """A TCP proxy to PostgreSQL whose open connections can be frozen: bytes
    are accepted (the kernel acknowledges them) but never forwarded, as with a
    server that hangs.  New connections after the freeze pass."""

    def __init__(self, target):
        import socket
        import threading
        self.target = target
        self.frozen = threading.Event()
        self.conns = []
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            gate = threading.Event()
            if not self.frozen.is_set():
                gate.set()
            self.conns.append(gate)
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pump, args=(a, b, gate), daemon=True).start()

    @staticmethod
    def _pump(src, dst, gate):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            gate.wait()
            try:
                dst.sendall(data)
            except OSError:
                return

    def freeze(self):
        self.frozen.set()
        for g in self.conns:
            g.clear()

    def thaw(self):
        """Let new connections through again (the frozen ones stay frozen)."""
        self.frozen.clear()

    def close(self):
        self.lsock.close()
        for g in self.conns:
            g.set()


def test_hung_postgres_connection_is_dropped_and_the_job_recorded(services, ctx, daemon, submit, wait_terminal,
                                                                    db):
    from urllib.parse import urlsplit
    u = urlsplit(services.db_url)
    proxy = FreezingProxy((u.hostname, u.port))
    try:
        url = services.db_url.replace("%s:%d" % (u.hostname, u.port), "127.0.0.1:%d" % proxy.port)
        d = daemon(env={"TASKEXEC_DB_URL": url})
        proxy.freeze()
        proxy.thaw()            # frozen: the daemon's connection; new ones pass
        job = submit("itasks.basic:noop")
        wait_for(lambda: [e for e in d.log_lines() if e.get("event") == "postgres.down"
                          and "no reply" in e.get("msg", "")], 25, "the daemon to drop the hung connection")
        row = wait_terminal(job, 30)[job]
        assert row["status"] == "COMPLETED", describe(db, job)
    finally:
        proxy.close()


def test_liveness_answers_while_a_table_lock_stalls_readiness(ctx, daemon, db, services):
    import psycopg2
    from testlib import spare_port
    listen = "127.0.0.1:%d" % spare_port()
    daemon(env={"TASKEXEC_HTTP_LISTEN": listen})
    conn = psycopg2.connect(services.db_url)
    try:
        cur = conn.cursor()
        cur.execute("LOCK TABLE taskexec.executors IN ACCESS EXCLUSIVE MODE")
        # The heartbeat's row update now waits on the lock, and readiness
        # queues behind it; liveness does not.
        status, body = http_get(listen, "/livez")
        assert status == 200 and '"alive"' in body
    finally:
        conn.rollback()
        conn.close()


# ------------------------------------------------------------------ 7. Redis lost its data

def test_queued_jobs_redis_lost_are_pushed_again_from_postgres(ctx, daemon, submit, wait_terminal, db, rds):
    jobs = [submit("itasks.basic:noop") for _ in range(3)]
    rds.delete(ctx.key("queue", "normal"), ctx.key("wake"))         # as a restart without persistence
    # Older than the sweep's bound (10 heartbeats), as rows left from before a loss are.
    db.query("UPDATE taskexec.jobs SET queued_at = now() - interval '1 hour' WHERE job_id = ANY(%s)", (jobs,))
    d = daemon()
    rows = wait_terminal(jobs, 30)
    assert all(r["status"] == "COMPLETED" for r in rows.values()), [describe(db, j) for j in jobs]
    swept = [e for e in d.log_lines() if e.get("event") == "queue.reconciled"]
    assert swept and sorted(sum((e["job_ids"] for e in swept), [])) == sorted(jobs), swept


def test_retry_sends_a_stuck_queued_job_again(ctx, daemon, submit, cli, wait_terminal, db, rds):
    job = submit("itasks.basic:noop")
    rds.delete(ctx.key("queue", "normal"))
    r = cli("retry", job)
    assert r.returncode == 0 and r.stdout.strip() == "%s QUEUED" % job, r.stderr
    assert rds.llen(ctx.key("queue", "normal")) == 1
    daemon()
    assert wait_terminal(job, 20)[job]["status"] == "COMPLETED", describe(db, job)
    r = cli("retry", job)
    assert r.returncode == 1 and "is COMPLETED" in r.stderr, r.stderr
