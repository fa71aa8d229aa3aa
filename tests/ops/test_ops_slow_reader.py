# SPDX-License-Identifier: ISC
"""Never wedge (issue 9, item 4): whoever reads taskexecd's standard output
may stop reading, and a job may print without end; neither may stop the
daemon or flood its log.

A reader that stops must not freeze the event loop: heartbeats go on, a
job's deadline is kept, no other executor takes a live job over, and the
lines that did not fit are counted and named once the reader is back.  A
job that prints far past its policy's output_bytes has its log lines stop
at that limit, followed by one job.output_truncated line."""
import re
import subprocess
import time
from pathlib import Path

from opshelpers import parse_prometheus, sample, wait_for

REPO = Path(__file__).resolve().parents[2]
STALL = 8.0             # seconds the reader stops: eight heartbeat intervals of the ops env
JOB_TIMEOUT = 3


def sql(ops, query):
    return ops.services.psql(query).stdout.strip()


def job_row(ops, job_id):
    out = sql(ops, "SELECT status, attempts, is_duplicate FROM taskexec.jobs WHERE job_id = '%s'" % job_id)
    return out.split("|") if out else None


def last_heartbeat(ops, executor_id):
    out = sql(ops, "SELECT extract(epoch FROM last_heartbeat) FROM taskexec.executors "
                   "WHERE executor_id = '%s'" % executor_id)
    return float(out) if out else 0.0


def dropped_metric(d):
    return sample(parse_prometheus(d.get("/metrics").body), "taskexec_log_lines_dropped_total")


def test_a_reader_that_stops_reading_stops_neither_heartbeats_nor_deadlines(ops):
    d1 = ops.daemon(piped=True, env={"TASKEXEC_LOG_LEVEL": "debug"})    # heartbeat lines are debug
    d1.wait_event("heartbeat")
    d1.reading.clear()
    stalled_at = time.monotonic()
    try:
        hb0 = last_heartbeat(ops, d1.executor_id)
        # Far more output than the pipe and the log's buffer hold, until
        # its deadline kills it; no retry, so a second run would show.
        job = ops.submit("opstasks.talk:flood", "seconds=60", "line_bytes=1000", wait=False,
                         extra=["--timeout", str(JOB_TIMEOUT), "--max-retries", "0"])
        wait_for(lambda: sql(ops, "SELECT executor_id FROM taskexec.jobs WHERE job_id = '%s' AND status = 'RUNNING'"
                             % job) == d1.executor_id, 5, "d1 to run the job")
        # A second executor, which would recover the job if d1's heartbeat lapsed.
        ops.daemon()
        left = lambda: max(0.1, STALL - (time.monotonic() - stalled_at))  # noqa: E731

        wait_for(lambda: (job_row(ops, job) or [None])[0] == "FAILED", left(),
                 "the job to be killed at its deadline while stdout is not read")
        rows = sql(ops, "SELECT outcome, extract(epoch FROM ended_at - started_at), executor_id "
                        "FROM taskexec.attempts WHERE job_id = '%s' ORDER BY attempt" % job).splitlines()
        assert len(rows) == 1, "the job ran %d times while d1's stdout was not read: %s" % (len(rows), rows)
        outcome, secs, executor = rows[0].split("|")
        assert outcome == "timeout" and executor == d1.executor_id, (outcome, executor)
        # deadline, SIGTERM ends python at once; slack for a loaded machine
        assert float(secs) < JOB_TIMEOUT + 2.0, "the job ran %ss past a %ss deadline" % (secs, JOB_TIMEOUT)

        wait_for(lambda: last_heartbeat(ops, d1.executor_id) >= hb0 + 3, left(),
                 "d1's executors row to take three heartbeats while stdout is not read")
        key = "{%s}:heartbeat:%s" % (ops.prefix, d1.executor_id)
        exists = subprocess.run(["redis-cli", "-u", ops.services.redis_url, "EXISTS", key], stdout=subprocess.PIPE,
                                text=True, timeout=10).stdout.strip()
        assert exists == "1", "d1's heartbeat key lapsed while stdout was not read"

        time.sleep(left())      # the deliberate stall runs its full length
        status, attempts, dup = job_row(ops, job)
        assert (status, attempts) == ("FAILED", "1"), "the job ran again: %s attempts" % attempts
        assert sql(ops, "SELECT count(*) FROM taskexec.attempts WHERE job_id = '%s'" % job) == "1"
        assert dup == "f"
    finally:
        d1.reading.set()

    report = d1.wait_event("log.dropped", timeout=15)
    assert report["level"] == "warn" and report["lines"] > 0, report
    wait_for(lambda: dropped_metric(d1) == sum(x["lines"] for x in d1.events("log.dropped")), 10,
             "taskexec_log_lines_dropped_total to equal the lines log.dropped named")
    # The lines that were kept are whole lines: every line d1 wrote parses.
    d1.wait_event("heartbeat", where=lambda x: x["ts"] > report["ts"])
    raw = d1.raw_lines()
    assert len(d1.events()) == len(raw), [x for x in raw if not x.startswith("{")][:3]


def _policy_output_bytes(task_type):
    text = (REPO / "policy" / ("%s.policy" % task_type)).read_text()
    value = re.search(r"^output_bytes\s*=\s*(\d+)([KMG]?)\s*$", text, re.M)
    assert value, "policy/%s.policy sets no output_bytes" % task_type
    return int(value.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[value.group(2)]


def test_a_job_printing_past_its_output_cap_logs_up_to_the_cap_then_one_summary(ops):
    cap = _policy_output_bytes("ad_hoc")
    line_bytes = 4000
    lines = 3 * cap // line_bytes       # three times the cap
    d = ops.daemon()
    job = ops.submit("opstasks.talk:spew", "lines=%d" % lines, "line_bytes=%d" % line_bytes, timeout=60)
    d.wait_event("job.completed", where=lambda x: x.get("job_id") == job)

    mine = [x for x in d.events() if x.get("job_id") == job]
    out = [x for x in mine if x["event"] in ("job.output", "job.log")]
    summary = [x for x in mine if x["event"] == "job.output_truncated"]
    logged = sum(len(x["line"].encode()) for x in out if x["event"] == "job.output")
    assert logged <= cap, "%d bytes of output logged, over output_bytes %d" % (logged, cap)
    assert len(summary) == 1, summary
    s = summary[0]
    assert s["output_bytes"] == cap and s["attempt"] == 1, s
    # Nothing lost from the count: logged and left out add up to what was printed.
    assert len(out) + s["lines"] == lines, (len(out), s)
    assert logged + s["bytes"] == lines * line_bytes, (logged, s)
    # The logged lines are the first ones, in order, and the summary follows them.
    assert [x["line"][:8] for x in out] == ["%08d" % i for i in range(len(out))]
    assert mine.index(s) > mine.index(out[-1])
    # The tail kept for the attempt row still sees the end of the output.
    tail = sql(ops, "SELECT stdout_tail FROM taskexec.attempts WHERE job_id = '%s'" % job)
    assert "%08d " % (lines - 1) in tail
