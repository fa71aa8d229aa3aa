# SPDX-License-Identifier: ISC
"""The job document of taskexec-protocol(7): built, checked and signed.

:func:`build` makes the payload ``taskexec submit`` would send for the same
arguments (same members, same defaults, a time-ordered UUID as ``job_id``,
``enqueued_at`` always set); :func:`sign` adds an Ed25519 ``signature`` over
the canonical form the executors verify.  The checks here are the ones a
producer can make without the policies; the executor checks everything
again and records a payload it refuses as FAILED with the reason.
"""

import base64
import json
import os
import re
import time
import uuid
from datetime import datetime, timezone

MAX_BYTES = 1 << 20
PRIORITIES = ("high", "normal", "low")
_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_JOB_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}\Z")


def _dotted(name):
    return bool(name) and all(_IDENT.match(part) for part in name.split("."))


def parse_entry(entry):
    """``'module.path:function'`` or ``'module.path:Class.method'`` ->
    ``(module_path, class_name or None, method_name)``."""
    module, colon, attr = entry.partition(":")
    if not colon or ":" in attr:
        raise ValueError("ENTRY: %r is not module.path:function or module.path:Class.method" % entry)
    if not _dotted(module):
        raise ValueError("module_path: %r is not a dotted name of identifiers that do not start with '_'"
                         % module)
    if not _dotted(attr):
        raise ValueError("method_name: %r is not a dotted name of identifiers that do not start with '_'"
                         % attr)
    cls, _, method = attr.rpartition(".")
    return module, cls or None, method


def new_job_id():
    """A UUIDv7 (48 bits of milliseconds, then random): ids sort by time,
    as ``taskexec submit``'s do."""
    value = (int(time.time() * 1000) & (1 << 48) - 1) << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76            # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62            # RFC 4122 variant
    return str(uuid.UUID(int=value))


def iso8601_ms(seconds):
    """``2026-11-26T05:00:00.123Z`` for a time in seconds since the epoch."""
    dt = datetime.fromtimestamp(seconds, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _int_in(name, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError("%s: %r is not a whole number from %d to %d" % (name, value, low, high))
    return value


def build(entry, task_type, parameters=None, *, job_id=None, idempotency_key=None, priority=None,
          timeout=None, max_retries=None, enqueued_at=None):
    """The job as a dict, members in the order ``taskexec submit`` writes them.

    Raises ValueError naming the member at fault."""
    module, cls, method = parse_entry(entry)
    if not isinstance(task_type, str) or not task_type:
        raise ValueError("task_type: a task type (policy name) is required")
    parameters = {} if parameters is None else parameters
    if not isinstance(parameters, dict):
        raise ValueError("parameters: must be a dict of keyword arguments")
    for key in parameters:
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError("parameters.%s: not a valid Python keyword argument name" % key)
    job = {"module_path": module, "method_name": method}
    if cls is not None:
        job["class_name"] = cls
    job["task_type"] = task_type
    job["parameters"] = parameters
    job["job_id"] = job_id if job_id is not None else new_job_id()
    if not isinstance(job["job_id"], str) or not _JOB_ID.match(job["job_id"]):
        raise ValueError("job_id: %r is not 1 to 64 of A-Z a-z 0-9 . _ : -" % (job["job_id"],))
    if timeout is not None:
        job["timeout_seconds"] = _int_in("timeout_seconds", timeout, 1, 7 * 24 * 3600)
    if max_retries is not None:
        job["max_retries"] = _int_in("max_retries", max_retries, 0, 100)
    if priority is not None:
        if priority not in PRIORITIES:
            raise ValueError("priority: %r is not high, normal or low" % (priority,))
        job["priority"] = priority
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 256:
            raise ValueError("idempotency_key: must be a string of 1 to 256 characters")
        job["idempotency_key"] = idempotency_key
    job["enqueued_at"] = enqueued_at or iso8601_ms(time.time())
    return job


def dumps(job):
    """The payload text: compact JSON, UTF-8, at most 1 MiB."""
    text = json.dumps(job, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise ValueError("payload: over 1 MiB")
    return text


def canonical(job):
    """The bytes a signature covers (taskexec-protocol(7), Signatures)."""
    def no_floats(v, where):
        if isinstance(v, float):
            raise ValueError("%s: a fractional number cannot be signed; send it as a string" % where)
        if isinstance(v, dict):
            for k, x in v.items():
                no_floats(x, "%s.%s" % (where, k))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                no_floats(x, "%s[%d]" % (where, i))

    doc = {k: v for k, v in job.items() if k != "signature"}
    no_floats(doc, "payload")
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def load_signing_key(key):
    """A ``nacl.signing.SigningKey`` from one: a path to a secret key file as
    ``taskexec keygen`` writes it (base64 of the 64-byte libsodium secret
    key, whose first 32 bytes are the seed), or a SigningKey already."""
    try:
        from nacl.signing import SigningKey
    except ImportError as e:
        raise RuntimeError("signing jobs needs PyNaCl (Debian: apt-get install python3-nacl)") from e
    if isinstance(key, SigningKey):
        return key
    with open(key, encoding="ascii") as f:
        secret = base64.b64decode(f.read().strip(), validate=True)
    if len(secret) != 64:
        raise ValueError("%s: not a base64 Ed25519 secret key of 64 bytes" % key)
    return SigningKey(secret[:32])


def sign(job, key):
    """Add ``signature`` (base64 Ed25519 over :func:`canonical`) to job."""
    signature = load_signing_key(key).sign(canonical(job)).signature
    job["signature"] = base64.b64encode(signature).decode("ascii")
    return job
