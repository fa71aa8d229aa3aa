# SPDX-License-Identifier: ISC
"""Helpers a taskexec task may import (see taskexec-tasks(7)).

    from taskexec_task import NonRetryableError, progress

    def run(customer_id: int):
        if customer_id < 1:
            raise NonRetryableError("customer_id must be positive")  # FAILED at once, no retry
        for i, batch in enumerate(batches):
            progress(i / len(batches), "batch %d" % i)             # taskexec status shows it

job_id, attempt and task_type describe the running job (attempt counts from 1).
"""
import os
import time

job_id = None
attempt = None
task_type = None

# Set by the shim: where progress records go, and its JSON encoder.
_events_fd = None
_dumps = None

# At most this many records a second reach the executor; a call in between
# is remembered and sent with the next one that may go, or when the task
# ends (_flush), so the last progress reported is always the one stored.
_PROGRESS_INTERVAL = 0.5
_MSG_MAX = 1024
_last_sent = None
_pending = None


class NonRetryableError(Exception):
    """Raise this (or a subclass) when running the job again cannot help."""


def progress(fraction, message=None):
    """Report how far the job is: 0 <= fraction <= 1, and an optional message.

    Cheap to call often: records are throttled here.  Raises ValueError for
    a fraction outside [0, 1] (or not a number), TypeError for a message
    that is not a string.
    """
    global _pending
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ValueError("progress: fraction must be a number from 0 to 1, not %r" % (fraction,))
    fraction = float(fraction)
    if not 0.0 <= fraction <= 1.0:     # also refuses NaN
        raise ValueError("progress: fraction must be from 0 to 1, not %r" % (fraction,))
    if message is not None and not isinstance(message, str):
        raise TypeError("progress: message must be a string or None, not %s" % type(message).__name__)
    if message is not None and len(message) > _MSG_MAX:
        message = message[:_MSG_MAX]
    _pending = {"progress": fraction, "msg": message}
    now = time.monotonic()
    if _last_sent is None or now - _last_sent >= _PROGRESS_INTERVAL:
        _flush(now)


def _flush(now=None):
    """Send the pending progress record, if any (the shim calls this at the end)."""
    global _pending, _last_sent
    if _pending is None or _events_fd is None:
        return
    doc, _pending = _pending, None
    _last_sent = time.monotonic() if now is None else now
    data = (_dumps(doc) + "\n").encode("utf-8", "replace")
    try:
        while data:
            data = data[os.write(_events_fd, data):]
    except OSError:
        pass    # the executor stopped reading: progress is advice, never the job's failure
