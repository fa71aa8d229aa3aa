# SPDX-License-Identifier: ISC
"""What a job sees of the host from inside its isolation domain."""
import errno
import os
import socket
import time


def _attempt(fn):
    try:
        return {"ok": True, "value": fn()}
    except OSError as e:
        return {"ok": False, "errno": errno.errorcode.get(e.errno, str(e.errno))}


def send_datagrams(paths, abstract):
    """Forge a datagram to each host path and to an abstract name, from a
    socketpair's end and from a fresh socket, passing our stdin as SCM_RIGHTS."""
    out = {}
    a, _b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    targets = list(paths) + ["\0" + abstract]
    for t in targets:
        out[repr(t)] = {
            "sendto": _attempt(lambda: a.sendto(b"forged", t)),
            "sendmsg_fds": _attempt(lambda: a.sendmsg([b"fd"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                                                 bytes(memoryview(bytearray(
                                                                     (0).to_bytes(4, "little")))))], 0, t)),
        }
    return out


def look_around(paths):
    """stat and list what an attacker would look for."""
    return {p: {"stat": _attempt(lambda: os.stat(p).st_size),
                "list": _attempt(lambda: sorted(os.listdir(p)))} for p in paths}


def fill_tmp(chunk_mb=8, limit_mb=1024):
    """Write to /tmp until it refuses: how much went in, and why it stopped."""
    written = 0
    block = b"x" * (1 << 20)
    n = 0
    while written < limit_mb:
        try:
            with open("/tmp/fill-%d" % n, "wb") as f:
                for _ in range(chunk_mb):
                    f.write(block)
                    written += 1
        except OSError as e:
            return {"written_mb": written, "errno": errno.errorcode.get(e.errno, str(e.errno))}
        n += 1
    return {"written_mb": written, "errno": None}


def identity(seconds=0.0):
    time.sleep(seconds)
    return {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(), "cwd": os.getcwd(),
            "tmp_mode": oct(os.stat("/tmp").st_mode & 0o7777), "tmp_uid": os.stat("/tmp").st_uid}


def write_into(path, name="made-by-job"):
    with open(os.path.join(path, name), "w") as f:
        f.write("x")
    st = os.stat(os.path.join(path, name))
    return {"mode": oct(st.st_mode & 0o7777), "gid": st.st_gid}
