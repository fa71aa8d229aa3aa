"""Settings of the taskexec client, read as taskexec(1) reads them.

Every setting is a ``TASKEXEC_*`` variable; the environment wins over the
configuration file, which is the one ``TASKEXEC_CONFIG`` names, else
``/etc/taskexec/taskexec.conf`` when it exists (``NAME=value`` lines, ``#``
comment lines, a value may be quoted).  See taskexec.conf(5).
"""

import os
from dataclasses import dataclass
from typing import Optional

SYSTEM_FILE = "/etc/taskexec/taskexec.conf"

DEFAULTS = {
    "TASKEXEC_REDIS_URL": "redis://127.0.0.1:6379/0",
    "TASKEXEC_DB_URL": "postgresql:///taskexec",
    "TASKEXEC_QUEUE_PREFIX": "taskexec",
    "TASKEXEC_POLICY_DIR": "/etc/taskexec/policy.d",
}


@dataclass
class Settings:
    """What the client needs to know: where Redis and PostgreSQL are, the
    queue prefix, where the policies are (for a task type's default
    priority), and an optional secret key file to sign every job with."""

    redis_url: str = DEFAULTS["TASKEXEC_REDIS_URL"]
    db_url: str = DEFAULTS["TASKEXEC_DB_URL"]
    queue_prefix: str = DEFAULTS["TASKEXEC_QUEUE_PREFIX"]
    policy_dir: str = DEFAULTS["TASKEXEC_POLICY_DIR"]
    signing_key: Optional[str] = None


def read_conf(path):
    """The ``NAME=value`` settings of a taskexec.conf(5) file, as a dict."""
    values = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, eq, value = line.partition("=")
            if not eq:
                raise ValueError("%s:%d: expected KEY=value, got a line without '='" % (path, lineno))
            value = value.strip()
            if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
                value = value[1:-1]
            values[name.strip()] = value
    return values


def load(environ=None):
    """Settings from the environment (default ``os.environ``) over the
    configuration file over the defaults."""
    env = os.environ if environ is None else environ
    merged = dict(DEFAULTS)
    path = env.get("TASKEXEC_CONFIG")
    if path:
        merged.update(read_conf(path))
    elif os.access(SYSTEM_FILE, os.R_OK):
        merged.update(read_conf(SYSTEM_FILE))
    merged.update({k: v for k, v in env.items() if k.startswith("TASKEXEC_")})
    return Settings(redis_url=merged["TASKEXEC_REDIS_URL"], db_url=merged["TASKEXEC_DB_URL"],
                    queue_prefix=merged["TASKEXEC_QUEUE_PREFIX"], policy_dir=merged["TASKEXEC_POLICY_DIR"],
                    signing_key=merged.get("TASKEXEC_SIGNING_KEY") or None)


def policy_priority(policy_dir, task_type):
    """The ``priority`` of ``[job]`` in the task type's policy file, else
    ``'normal'`` -- the queue ``taskexec submit`` picks for a job that names
    no priority of its own (taskexec-policy(5))."""
    try:
        with open(os.path.join(policy_dir, "%s.policy" % task_type), encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return "normal"
    section = None
    for line in lines:
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == "job" and "=" in line and not line.startswith((";", "#")):
            key, _, value = line.partition("=")
            if key.strip() == "priority":
                value = value.split(";")[0].split(" #")[0].strip()
                return value if value in ("high", "low") else "normal"
    return "normal"
