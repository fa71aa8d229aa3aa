# SPDX-License-Identifier: ISC
"""Client and Job: enqueue jobs for taskexecd(8) and follow them.

A :class:`Client` holds one Redis connection and one PostgreSQL connection
(opened on first use; a second PostgreSQL connection is opened for
:meth:`Job.wait`).  It is not safe to share one Client between threads; make
one per thread.  Every state change goes through the schema's guarded
functions (``taskexec.submit``, ``taskexec.cancel``, ``taskexec.retry``),
which are the ones ``taskexec submit``, ``cancel`` and ``retry`` use.
"""

import collections
import json
import select
import time
from datetime import datetime, timedelta, timezone

import psycopg2
import redis

from . import config, payload
from .errors import JobNotFound, JobStateError, TaskexecError

TERMINAL = ("COMPLETED", "FAILED")
CHANNEL = "taskexec_job"


def _sentinel_master(url):
    """A redis.Redis for the master the sentinels of URL name: redis-py asks
    them again on every new connection, checks the role and drops a
    connection to a demoted master (READONLY)."""
    from redis.sentinel import Sentinel
    try:
        u = config.parse_sentinel_url(url)
    except ValueError as e:
        raise TaskexecError(str(e)) from None
    sentinel_kwargs = {"socket_timeout": 5, "socket_connect_timeout": 5}
    if u["sentinel_password"] is not None:
        sentinel_kwargs["password"] = u["sentinel_password"]
        if u["sentinel_username"]:
            sentinel_kwargs["username"] = u["sentinel_username"]
    s = Sentinel(u["sentinels"], sentinel_kwargs=sentinel_kwargs, socket_timeout=10, socket_connect_timeout=10)
    return s.master_for(u["master"], db=u["db"], username=u["username"], password=u["password"])


class Client:
    """A producer's handle on one taskexec installation.

    ``Client(redis_url=..., db_url=..., queue_prefix='taskexec',
    policy_dir='/etc/taskexec/policy.d', signing_key=None)``; most programs
    use :meth:`from_env`.  ``signing_key`` (a secret key file of ``taskexec
    keygen``, or a ``nacl.signing.SigningKey``) signs every job this client
    enqueues unless :meth:`enqueue` is given another.  Usable as a context
    manager, which closes the connections.
    """

    def __init__(self, redis_url=config.DEFAULTS["TASKEXEC_REDIS_URL"],
                 db_url=config.DEFAULTS["TASKEXEC_DB_URL"],
                 queue_prefix=config.DEFAULTS["TASKEXEC_QUEUE_PREFIX"],
                 policy_dir=config.DEFAULTS["TASKEXEC_POLICY_DIR"], signing_key=None):
        self.redis_url = redis_url
        self.db_url = db_url
        self.prefix = queue_prefix
        self.policy_dir = policy_dir
        self.signing_key = signing_key
        self._redis = None
        self._db = None
        self._listener = None

    @classmethod
    def from_env(cls, environ=None):
        """A Client configured as taskexec(1) is: ``TASKEXEC_*`` variables of
        the environment, else the configuration file (see
        :mod:`taskexec.config`)."""
        s = config.load(environ)
        return cls(redis_url=s.redis_url, db_url=s.db_url, queue_prefix=s.queue_prefix,
                   policy_dir=s.policy_dir, signing_key=s.signing_key)

    # -- connections ---------------------------------------------------------

    @property
    def redis(self):
        """The redis-py client (``redis.Redis``) this Client uses."""
        if self._redis is None:
            if self.redis_url.startswith("redis+sentinel://"):
                self._redis = _sentinel_master(self.redis_url)
            else:
                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=10, socket_connect_timeout=10)
        return self._redis

    def _connect_db(self):
        # As taskexecd: never a standby, unless the URL itself says otherwise.
        extra = {}
        if "target_session_attrs" not in psycopg2.extensions.parse_dsn(self.db_url):
            extra["target_session_attrs"] = "read-write"
        conn = psycopg2.connect(self.db_url, **extra)
        # Each call is one statement of one guarded function: nothing to
        # group, and a LISTEN must not sit in an open transaction.
        conn.autocommit = True
        return conn

    def _query(self, sql, args=()):
        if self._db is None or self._db.closed:
            self._db = self._connect_db()
        try:
            with self._db.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else []
        except psycopg2.errors.UndefinedFunction as e:
            raise TaskexecError("PostgreSQL: %s (the taskexec schema is older than this client: start a "
                                "taskexecd of the same version once, or run taskexec status, to migrate it)"
                                % e.pgerror.strip()) from e
        except psycopg2.errors.UndefinedTable as e:
            raise TaskexecError("PostgreSQL: no taskexec schema here (start taskexecd once to create it)") from e

    def key(self, *parts):
        """A Redis key of this installation: ``key('queue', 'high')`` is
        ``'{taskexec}:queue:high'``."""
        return ":".join(["{%s}" % self.prefix, *parts])

    def close(self):
        """Close the connections (they reopen on next use)."""
        for conn in (self._db, self._listener):
            if conn is not None and not conn.closed:
                conn.close()
        self._db = self._listener = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- producing -----------------------------------------------------------

    def enqueue(self, entry, task_type, parameters=None, *, idempotency_key=None, priority=None,
                timeout=None, max_retries=None, delay=None, run_at=None, signing_key=None):
        """Enqueue one job and return its :class:`Job`.

        ``entry`` is ``'module.path:function'`` or
        ``'module.path:Class.method'``, ``task_type`` the name of a policy,
        ``parameters`` a dict of JSON values passed as keyword arguments.
        ``priority`` (``'high'``, ``'normal'``, ``'low'``; default: the
        policy's), ``timeout`` (seconds), ``max_retries`` and
        ``idempotency_key`` are the job members of taskexec-protocol(7).
        ``delay`` (seconds or a ``timedelta``) or ``run_at`` (a
        timezone-aware ``datetime``) makes it a delayed job: it waits in
        ``{P}:delayed`` and runs when due, not before.  ``signing_key``
        signs it (default: the Client's).

        The QUEUED row is written first (``taskexec.submit``), then the
        Redis entry; if Redis refuses, the row is marked FAILED ``enqueue
        failed`` and TaskexecError is raised.  Bad arguments raise
        ValueError naming the member.
        """
        due = _due_seconds(delay, run_at)
        job = payload.build(entry, task_type, parameters, idempotency_key=idempotency_key, priority=priority,
                            timeout=timeout, max_retries=max_retries)
        key = signing_key if signing_key is not None else self.signing_key
        if key is not None:
            payload.sign(job, key)
        text = payload.dumps(job)
        prio = priority or config.policy_priority(self.policy_dir, task_type)
        if due is not None and due <= time.time():
            due = None                  # due already: an ordinary job
        rows = self._query(
            "SELECT created, status, same FROM taskexec.submit(%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)",
            (job["job_id"], task_type, job["module_path"], job.get("class_name"), job["method_name"],
             json.dumps(job["parameters"], separators=(",", ":")), idempotency_key, prio, text,
             datetime.fromtimestamp(due, timezone.utc) if due is not None else None))
        if not rows[0][0]:
            raise TaskexecError("job %s exists already (%s)" % (job["job_id"], rows[0][1]))
        try:
            self._push(prio, text, int(due * 1000) if due is not None else None)
        except redis.RedisError as e:
            self._mark_unqueued(job["job_id"], "enqueue failed")
            raise TaskexecError("Redis: %s (job %s recorded FAILED: enqueue failed)" % (e, job["job_id"])) from e
        return Job(self, job["job_id"])

    def _push(self, priority, text, due_ms=None):
        """The producer step of taskexec-protocol(7), one MULTI block."""
        with self.redis.pipeline(transaction=True) as pipe:
            if due_ms is None:
                pipe.rpush(self.key("queue", priority), text)
            else:
                pipe.zadd(self.key("delayed"), {"%s|%s" % (priority, text): due_ms})
            # A delayed job wakes an executor too: it learns the due time now.
            pipe.zadd(self.key("wake"), {"w": 0})
            pipe.execute()

    def _mark_unqueued(self, job_id, why):
        # Not in Redis means it never runs: say so in the row, which
        # taskexec.reject changes only while it is QUEUED.
        try:
            self._query("SELECT taskexec.reject(%s, NULL, NULL, NULL, NULL, NULL, %s, NULL)", (job_id, why))
        except psycopg2.Error:
            pass

    def job(self, job_id):
        """The :class:`Job` of an existing job id; JobNotFound if there is none."""
        j = Job(self, job_id)
        j.status()
        return j


def _due_seconds(delay, run_at):
    if delay is not None and run_at is not None:
        raise ValueError("give delay or run_at, not both")
    if delay is not None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds >= 0:
            raise ValueError("delay: %r is not a number of seconds >= 0 or a timedelta" % (delay,))
        return time.time() + seconds
    if run_at is not None:
        if not isinstance(run_at, datetime) or run_at.tzinfo is None:
            raise ValueError("run_at: must be a timezone-aware datetime (e.g. datetime.now(timezone.utc))")
        return run_at.timestamp()
    return None


class Progress(collections.namedtuple("Progress", "fraction message attempt at")):
    """How far a job is, as its task last said (see ``Job.progress``)."""
    __slots__ = ()


class Job:
    """One job, by id.  Every attribute reads the job's row now: ``status()``,
    ``result`` (the task's return value, decoded), ``error``, ``traceback``
    (of the last failure) and ``attempts`` (attempts started so far)."""

    def __init__(self, client, job_id):
        self.client = client
        self.id = job_id

    def __repr__(self):
        return "<taskexec.Job %s>" % self.id

    def _row(self):
        rows = self.client._query(
            "SELECT status, result, error, traceback, attempts FROM taskexec.jobs WHERE job_id = %s", (self.id,))
        if not rows:
            raise JobNotFound("no job %s" % self.id)
        return rows[0]

    def status(self):
        """``'QUEUED'``, ``'RUNNING'``, ``'COMPLETED'`` or ``'FAILED'``."""
        return self._row()[0]

    @property
    def result(self):
        """The task's return value once COMPLETED, else None."""
        return self._row()[1]

    @property
    def error(self):
        """The last failure's message (``'cancelled'`` for a cancelled job), or None."""
        return self._row()[2]

    @property
    def traceback(self):
        """The last failure's Python traceback, or None."""
        return self._row()[3]

    @property
    def attempts(self):
        """How many attempts have started (0 until the job first runs)."""
        return self._row()[4]

    @property
    def progress(self):
        """The latest progress the task reported with ``taskexec_task.progress()``:
        a :class:`Progress` (``fraction`` from 0 to 1, ``message`` or None,
        ``attempt`` that reported it, ``at`` a timezone-aware datetime), or
        None before any.  It stays after the job ends; the executor writes it
        at most twice a second."""
        rows = self.client._query(
            "SELECT progress, progress_msg, progress_attempt, progress_at FROM taskexec.jobs WHERE job_id = %s",
            (self.id,))
        if not rows:
            raise JobNotFound("no job %s" % self.id)
        fraction, message, attempt, at = rows[0]
        return None if fraction is None else Progress(float(fraction), message, attempt, at)

    def wait(self, timeout=None):
        """Block until the job is COMPLETED or FAILED and return that status.

        Listens on the channel ``taskexec_job``, which the schema notifies
        on every terminal state, so it sleeps until then; raises TimeoutError
        when ``timeout`` seconds (None: no limit) pass first.
        """
        c = self.client
        if c._listener is None or c._listener.closed:
            c._listener = c._connect_db()
        conn = c._listener
        with conn.cursor() as cur:
            cur.execute("LISTEN " + CHANNEL)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # Listening before looking: a change between the two is not missed.
            status = self.status()
            if status in TERMINAL:
                return status
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("job %s still %s after %gs" % (self.id, status, timeout))
                if select.select([conn], [], [], left) == ([], [], []):
                    continue            # timed out: the check above raises
                conn.poll()
                ours = any(n.payload == self.id for n in conn.notifies)
                conn.notifies.clear()
                if ours:
                    break

    def cancel(self):
        """Cancel the job: a QUEUED one ends FAILED (error ``'cancelled'``) at
        once and ``'cancelled'`` is returned; for a RUNNING one its executor
        is told to kill it and ``'cancelling'`` is returned.  A job already
        over raises JobStateError."""
        state = self.client._query("SELECT taskexec.cancel(%s)", (self.id,))[0][0]
        if state == "cancelled":
            return "cancelled"
        if state == "running":
            self.client.redis.publish(self.client.key("cancel"), self.id)
            return "cancelling"
        if state == "missing":
            raise JobNotFound("no job %s" % self.id)
        raise JobStateError("job %s is already %s" % (self.id, state), state)

    def retry(self):
        """Queue a FAILED job again with a fresh budget of retries (as
        ``taskexec retry``; a QUEUED one whose Redis entry was lost is sent
        again).  Returns the Job; JobStateError for any other status."""
        rows = self.client._query("SELECT status, priority, payload, requeue FROM taskexec.retry(%s)", (self.id,))
        if not rows:
            raise JobNotFound("no job %s" % self.id)
        status, priority, text, requeue = rows[0]
        if not requeue:
            raise JobStateError("job %s is %s; only FAILED or QUEUED jobs with a stored payload can be retried"
                                % (self.id, status), status)
        try:
            self.client._push(priority, text)
        except redis.RedisError as e:
            self.client._mark_unqueued(self.id, "retry: enqueue failed")
            raise TaskexecError("Redis: %s (job %s recorded FAILED: retry: enqueue failed)" % (e, self.id)) from e
        return self
