# SPDX-License-Identifier: ISC
"""Constants and plain helpers shared by the integration tests and their fixtures."""
import hashlib
import re
import uuid
from datetime import datetime, timezone

from testlib import wait_for  # noqa: F401 (re-exported)

# The task type the itasks jobs run as; its policy is tuned in conftest's `policy_dir`.
TASK_TYPE = "ad_hoc"
BACKOFF_BASE_S = 0.2
BACKOFF_MAX_S = 2.0
HEARTBEAT_S = 1.0
TERMINAL = ("COMPLETED", "FAILED")


def now():
    return datetime.now(timezone.utc)


def job_payload(module_path="itasks.basic", method_name="noop", parameters=None, **fields):
    """A well-formed job (DESIGN.md section 4) with a fresh job_id; override or drop (=None) fields."""
    p = {
        "job_id": "it-%s" % uuid.uuid4(),
        "task_type": TASK_TYPE,
        "module_path": module_path,
        "class_name": None,
        "method_name": method_name,
        "parameters": parameters or {},
        "priority": "normal",
        "enqueued_at": now().strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
    }
    for k, v in fields.items():
        if v is None:
            p.pop(k, None)
        else:
            p[k] = v
    return p


def invalid_job_id(payload):
    """The job id the daemon records a payload with no usable job_id under."""
    if isinstance(payload, str):
        payload = payload.encode()
    return "invalid-" + hashlib.sha256(payload).hexdigest()[:16]


def processing_entries(rds, ctx):
    return {k: rds.lrange(k, 0, -1) for k in rds.scan_iter(match=ctx.key("processing", "*"))
            if rds.llen(k)}


def ini_set(text, section, key, value, merge_list=False):
    """Set key in [section] of an INI text, keeping everything else as it is.

    With merge_list the value is appended to a comma-separated list already there."""
    lines = text.splitlines()
    sec_re = re.compile(r"^\s*\[([^\]]+)\]\s*$")
    key_re = re.compile(r"^\s*%s\s*=(.*)$" % re.escape(key))
    current, last = None, None  # last: index of the section's last non-blank line
    for i, line in enumerate(lines):
        m = sec_re.match(line)
        if m:
            current = m.group(1).strip()
            if current == section:
                last = i
            continue
        if current != section or not line.strip():
            continue
        last = i
        k = key_re.match(line)
        if k:
            old = re.split(r"\s[;#]", k.group(1))[0].strip()
            lines[i] = "%s = %s" % (key, "%s, %s" % (old, value) if merge_list and old else value)
            return "\n".join(lines) + "\n"
    if last is None:
        lines += ["", "[%s]" % section]
        last = len(lines) - 1
    lines.insert(last + 1, "%s = %s" % (key, value))
    return "\n".join(lines) + "\n"


def describe(db, job_id):
    """The job row and its attempts, for assertion messages."""
    def clean(row):
        return {k: (str(v) if not isinstance(v, (int, float, bool, type(None), dict, list)) else v)
                for k, v in row.items() if v is not None}
    job = db.job(job_id)
    return "job %s: %s\nattempts:\n%s" % (
        job_id, clean(job) if job else "no row",
        "\n".join("  %s" % clean(a) for a in db.attempts(job_id)) or "  none")


def assert_rejected(db, job_id, *words):
    """What a producer sees of a payload the daemon refused: a FAILED row whose
    error names each of words, and no attempt, since it never ran.  Returns the row."""
    row = db.job(job_id)
    assert row is not None, "no job row for rejected payload %s" % job_id
    assert row["status"] == "FAILED", describe(db, job_id)
    for w in words:
        assert w.lower() in (row["error"] or "").lower(), "%r not in error %r" % (w, row["error"])
    assert row["attempts"] == 0 and db.attempts(job_id) == [], "a rejected job ran: " + describe(db, job_id)
    return row
