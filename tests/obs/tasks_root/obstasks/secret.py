# SPDX-License-Identifier: ISC
"""Jobs that look for a policy [secrets] entry.

They never return or print a secret's value: the tests assert that the value
reaches the job and nothing else, so what the job shows is a digest."""
import hashlib
import os
import stat


def read(var: str) -> dict:
    """Read the file the variable VAR names; its digest, mode and owner."""
    path = os.environ[var]
    with open(path, "rb") as f:
        value = f.read()
    st = os.stat(path)
    return {"path": path, "sha256": hashlib.sha256(value).hexdigest(), "mode": "%04o" % stat.S_IMODE(st.st_mode),
            "mine": st.st_uid == os.getuid()}


def env() -> dict:
    """The names of the job's environment variables, and whether any value names a secret file."""
    return {"names": sorted(os.environ),
            "secret_files": sorted(v for v in os.environ.values() if "taskexec-secret." in v)}
