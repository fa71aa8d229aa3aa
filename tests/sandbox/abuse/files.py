# SPDX-License-Identifier: ISC
"""File-system reach: writes outside the scratch dir, secrets, other jobs."""

import os
import tempfile
import time


def _attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}


def write_paths(paths):
    """Try to create each path; report which attempts succeeded."""
    def write(p):
        def go():
            with open(p, "x") as f:
                f.write("LEAKED\n")
            return p
        return go
    return {p: _attempt(write(p)) for p in paths}


def write_scratch():
    cwd = os.getcwd()
    with open("note.txt", "w") as f:
        f.write("hello scratch\n")
    with open("note.txt") as f:
        back = f.read()
    fd, tmp = tempfile.mkstemp()
    os.write(fd, b"tmp")
    os.close(fd)
    return {"cwd": cwd, "read_back": back, "tmpdir": os.environ.get("TMPDIR"),
            "mkstemp_dir": os.path.dirname(tmp), "listing": sorted(os.listdir("."))}


def read_secrets(paths=("/etc/shadow", "/proc/1/environ")):
    """Read each path, and the environment of the process that started us."""
    paths = list(paths) + [f"/proc/{os.getppid()}/environ"]
    def read(p):
        def go():
            with open(p, "rb") as f:
                data = f.read()
            return {"bytes": len(data), "head": data[:64].decode("latin-1")}
        return go
    return {p: _attempt(read(p)) for p in paths}


def hold_secret(secret, seconds=3.0):
    with open("secret.txt", "w") as f:
        f.write(secret)
    time.sleep(seconds)
    return {"cwd": os.getcwd()}


def peek_scratch(target, parent):
    """Another job's scratch dir `target` (under `parent`): list it, read its secret."""
    def read_secret():
        with open(os.path.join(target, "secret.txt")) as f:
            return f.read()
    return {
        "list_parent": _attempt(lambda: sorted(os.listdir(parent))),
        "list_target": _attempt(lambda: sorted(os.listdir(target))),
        "read_secret": _attempt(read_secret),
        "own_cwd": os.getcwd(),
    }
