# SPDX-License-Identifier: ISC
"""taskexec — enqueue jobs for taskexecd(8) and follow them, from Python.

A producer imports this package instead of speaking taskexec-protocol(7) by
hand::

    from taskexec import Client

    c = Client.from_env()
    job = c.enqueue("tasks.f5portalupdate.main:run", "etl", parameters={"customer_id": 42})
    job.wait(timeout=600)
    print(job.status(), job.result)

Enqueueing takes the same path as ``taskexec submit``: the QUEUED row is
written by the database function ``taskexec.submit()``, then the job goes to
Redis in one MULTI block (``RPUSH {P}:queue:<priority>`` and ``ZADD {P}:wake
0 w``, or ``ZADD {P}:delayed <due ms> "<priority>|<payload>"`` for a job
given ``delay=`` or ``run_at=``).  Cancelling and retrying use
``taskexec.cancel()`` and ``taskexec.retry()``.  Waiting uses LISTEN on the
channel ``taskexec_job``, on which the schema notifies every terminal state.

Settings come from the environment (``TASKEXEC_REDIS_URL``,
``TASKEXEC_DB_URL``, ``TASKEXEC_QUEUE_PREFIX``, ``TASKEXEC_POLICY_DIR``,
``TASKEXEC_SIGNING_KEY``), else from the file named by ``TASKEXEC_CONFIG``,
else from ``/etc/taskexec/taskexec.conf``, as for taskexec(1); see
taskexec.conf(5).

Needs python3-redis and python3-psycopg2; signed jobs
(``signing_key=``) need python3-nacl as well.

Modules: :mod:`taskexec.client` (Client, Job), :mod:`taskexec.config`
(settings), :mod:`taskexec.payload` (building, checking and signing the job
document).
"""

from .client import Client, Job, Progress
from .errors import JobNotFound, JobStateError, TaskexecError

__all__ = ["Client", "Job", "Progress", "TaskexecError", "JobNotFound", "JobStateError"]
__version__ = "0.1.0"
