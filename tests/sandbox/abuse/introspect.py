# SPDX-License-Identifier: ISC
"""What the job can see of its own process: environment, path, fds, identity."""

import fcntl
import os
import sys
import time


def environ_and_path():
    return {"environ": dict(os.environ), "path": list(sys.path),
            "modules": sorted(m for m in sys.modules if m in ("sitecustomize", "usercustomize", "site"))}


def open_fds():
    fds = []
    for fd in range(1024):
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            continue
        fds.append(fd)
    try:
        listed = sorted(int(n) for n in os.listdir("/proc/self/fd"))
        proc_error = None
    except OSError as e:
        listed, proc_error = None, f"{type(e).__name__}: {e}"
    return {"fcntl": fds, "proc": listed, "proc_error": proc_error}


def identity(linger=0.0):
    status = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd",
                           "CapAmb", "NoNewPrivs", "Seccomp"):
                    status[key] = value.strip()
        status_error = None
    except OSError as e:
        status, status_error = None, f"{type(e).__name__}: {e}"
    time.sleep(linger)  # lets the test look at the process from outside
    return {"uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "egid": os.getegid(),
            "groups": os.getgroups(), "resuid": list(os.getresuid()), "resgid": list(os.getresgid()),
            "status": status, "status_error": status_error, "pid": os.getpid(), "sid": os.getsid(0),
            "pgid": os.getpgid(0)}
