# SPDX-License-Identifier: ISC
"""Tasks for the warm-start tests: one attempt tries to leave traces in the
interpreter and its domain, the next one (a fork of the same server) looks."""
import gc
import json
import os
import random
import sys
import threading
import time

PREFIX = "warm-secret-"


def litter(token, seconds=0.0):
    """Leave everything an attempt could: memory, env, /tmp, fds, threads, modules."""
    held = PREFIX + token                                   # noqa: F841 (kept alive below)
    globals()["_held"] = held
    os.environ["WARM_LEFT"] = token
    with open("/tmp/left-behind", "w") as f:
        f.write(token)
    os.makedirs("/tmp/dir/sub", exist_ok=True)
    os.chmod("/tmp/dir", 0)                                 # the server must still empty /tmp
    fd = os.open("/dev/null", os.O_RDONLY)                  # not closed, not close-on-exec
    os.set_inheritable(fd, True)
    json.dumps = lambda *a, **k: "patched"                  # noqa: E731
    sys.modules["warm_injected"] = type(sys)("warm_injected")
    threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
    time.sleep(seconds)
    return {"pid": os.getpid(), "ppid": os.getppid(), "random": random.random()}


def look():
    """What this attempt finds of any earlier one."""
    found = [o for o in gc.get_objects() if isinstance(o, str) and o.startswith(PREFIX) and o != PREFIX]
    fds = []
    for fd in range(5, 256):            # 0-4 are the job's own
        try:
            os.fstat(fd)
            fds.append(fd)
        except OSError:
            pass
    return {
        "pid": os.getpid(), "ppid": os.getppid(), "random": random.random(),
        "strings": found, "env": os.environ.get("WARM_LEFT"), "tmp": sorted(os.listdir("/tmp")),
        "fds": fds, "json_ok": json.dumps([1]) == "[1]", "modules": "warm_injected" in sys.modules,
        "threads": threading.active_count(),
    }


def sleep(seconds):
    time.sleep(seconds)
    return {"pid": os.getpid()}


def signal_the_server():
    """Signal pid 1 of the namespace, the warm server: outside the job's filter."""
    os.kill(1, 0)
    return {"reached": True}
