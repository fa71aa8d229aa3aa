# SPDX-License-Identifier: ISC
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


SENTINEL_FORM = ("redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/mastername[/db]"
                 "[?sentinel_user=U&sentinel_password=P]")


def parse_sentinel_url(url):
    """The parts of a ``redis+sentinel://`` URL (taskexec.conf(5)) as a dict:
    ``sentinels`` [(host, port)], ``master``, ``db``, ``username``,
    ``password`` (the master's), ``sentinel_username``,
    ``sentinel_password``.  Raises ValueError naming what is wrong."""
    from urllib.parse import parse_qsl
    prefix = "redis+sentinel://"
    if not url.startswith(prefix):
        raise ValueError("TASKEXEC_REDIS_URL: not a redis+sentinel:// URL")
    rest, _, query = url[len(prefix):].partition("?")
    netloc, slash, path = rest.partition("/")
    if not slash or not path.split("/")[0]:
        raise ValueError("TASKEXEC_REDIS_URL: redis+sentinel:// names no master; expected " + SENTINEL_FORM)
    user = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        if ":" in auth:
            user, _, password = auth.partition(":")
            user = user or None
        else:
            password = auth
    if not netloc:
        raise ValueError("TASKEXEC_REDIS_URL: redis+sentinel:// names no sentinel; expected " + SENTINEL_FORM)
    sentinels = []
    for part in netloc.split(","):
        host, colon, port = part.partition(":")
        try:
            port = int(port) if colon else 26379
        except ValueError:
            port = 0
        if not part or not 0 < port < 65536:
            raise ValueError("TASKEXEC_REDIS_URL: bad sentinel address '%s' (expected host[:port], port 1-65535)"
                             % part)
        sentinels.append((host or "127.0.0.1", port))
    master, _, db = path.partition("/")
    if db and not db.isdigit():
        raise ValueError("TASKEXEC_REDIS_URL: database '%s' is not a number" % db)
    out = {"sentinels": sentinels, "master": master, "db": int(db or 0), "username": user,
           "password": password, "sentinel_username": None, "sentinel_password": None}
    for k, v in parse_qsl(query, keep_blank_values=True):
        if k not in ("sentinel_user", "sentinel_password"):
            raise ValueError("TASKEXEC_REDIS_URL: unknown option '%s' (known: sentinel_user=, sentinel_password=)"
                             % k)
        out["sentinel_username" if k == "sentinel_user" else "sentinel_password"] = v
    return out


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
