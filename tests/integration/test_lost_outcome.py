# SPDX-License-Identifier: ISC
"""Issue 13: an attempt whose outcome a PostgreSQL failover lost.

A standby promoted without the old primary's last transactions shows a job
the daemon finished (its Redis entry already gone) as RUNNING under that
live daemon.  Simulated here as it looks afterwards: the finished job's row
is set back to RUNNING with its last attempt open, then PostgreSQL is
restarted so the daemon sees a switch.  The job must be recorded lost,
rerun, flagged duplicate, and end COMPLETED; a job the daemon really runs
at the time must not be touched.
"""
import random

from testlib import spare_port

from ithelpers import describe, processing_entries, wait_for
from test_redis_faults import metric


def outcomes(db, job_id):
    return [a["outcome"] for a in db.attempts(job_id)]


def test_an_outcome_lost_in_a_postgres_failover_is_recorded_lost_and_the_job_rerun(
        ctx, services, daemon, submit, wait_status, wait_terminal, db, rds):
    port = spare_port()
    d = daemon(concurrency=2, env={"TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % port})
    # Parameters of their own: same-payload jobs of other tests are flagged duplicates.
    tag = "%06d" % random.randrange(10 ** 6)
    done = submit("itasks.basic:sleep", "seconds=0.01" + tag)
    row = wait_terminal(done, 20)[done]
    assert row["status"] == "COMPLETED" and not row["is_duplicate"], describe(db, done)
    wait_for(lambda: not processing_entries(rds, ctx), 10, "the finished job's entry to leave Redis")

    running = submit("itasks.basic:sleep", "seconds=10.01" + tag)
    wait_status(running, "RUNNING")

    # The finish of `done` never reached the standby that was promoted.
    db.query("UPDATE taskexec.attempts SET outcome = NULL, ended_at = NULL "
             "WHERE job_id = %s AND attempt = 1", (done,))
    db.query("UPDATE taskexec.jobs SET status = 'RUNNING', result = NULL, finished_at = NULL, "
             "executor_id = %s WHERE job_id = %s", (d.executor_id, done))
    before = metric(port, "reconciled_total") or 0
    services.restart_pg(pause=0.5)

    ev = d.wait_event("reconcile.lost_outcome", timeout=20)
    assert ev["job_id"] == done and ev["attempt"] == 1 and ev["action"] == "requeue", ev

    row = wait_terminal(done, 30)[done]
    assert row["status"] == "COMPLETED" and row["is_duplicate"], describe(db, done)
    assert row["attempts"] == 2 and row["lost_count"] == 1, describe(db, done)
    att = db.attempts(done)
    assert [a["outcome"] for a in att] == ["executor_lost", "completed"], describe(db, done)
    assert "failover" in att[0]["error_message"], describe(db, done)
    wait_for(lambda: (metric(port, "reconciled_total") or 0) >= before + 1, 10,
             "taskexec_reconciled_total to count the job pushed again")

    # The job really running through the switch is left alone: one attempt,
    # not flagged, and no lost-outcome line names it.
    assert db.job(running)["status"] == "RUNNING", describe(db, running)
    row = wait_terminal(running, 30)[running]
    assert row["status"] == "COMPLETED" and not row["is_duplicate"], describe(db, running)
    assert outcomes(db, running) == ["completed"], describe(db, running)
    assert [e["job_id"] for e in d.events("reconcile.lost_outcome")] == [done], d.tail()
    assert d.alive(), d.tail()
