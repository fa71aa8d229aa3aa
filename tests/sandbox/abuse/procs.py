# SPDX-License-Identifier: ISC
"""Attempts on other processes: fork, signal, trace, namespaces, threads."""

import ctypes
import os
import signal
import threading
import time

from abuse import check, errname, libc, raw_syscall


def fork_bomb(token, n=64):
    """Fork repeatedly; every child renames itself `token` and keeps forking."""
    forked, error = 0, None
    for _ in range(n):
        try:
            pid = os.fork()
        except OSError as e:
            error = f"{type(e).__name__}: {e}"
            break
        if pid == 0:
            try:
                with open("/proc/self/comm", "w") as f:
                    f.write(token)
            except OSError:
                libc().prctl(15, token.encode(), 0, 0, 0)  # PR_SET_NAME
            # Bounded so a broken sandbox cannot take the host down with it.
            for _ in range(3):
                try:
                    if os.fork() == 0:
                        break
                except OSError:
                    break
            while True:
                time.sleep(0.2)
        forked += 1
    return {"forked": forked, "error": error}


def kill_everyone():
    os.kill(-1, signal.SIGKILL)
    return {"killed": True}


def kill_parent():
    ppid = os.getppid()
    os.kill(ppid, signal.SIGKILL)
    return {"killed": ppid}


def ptrace_parent():
    lib = libc()
    PTRACE_ATTACH = 16
    ppid = os.getppid()
    ctypes.set_errno(0)
    check(lib.ptrace(ctypes.c_long(PTRACE_ATTACH), ctypes.c_long(ppid), None, None), "ptrace")
    return {"attached": ppid}


def ptrace_traceme():
    lib = libc()
    ctypes.set_errno(0)
    check(lib.ptrace(ctypes.c_long(0), ctypes.c_long(0), None, None), "ptrace")
    return {"traced": True}


def unshare_user():
    CLONE_NEWUSER = 0x10000000
    lib = libc()
    ctypes.set_errno(0)
    check(lib.unshare(CLONE_NEWUSER), "unshare")
    return {"unshared": True}


def clone3():
    """clone3 with a valid clone_args: the filter must answer ENOSYS."""
    args = (ctypes.c_uint64 * 11)()
    args[4] = signal.SIGCHLD  # exit_signal; flags 0: a plain fork
    ret, err = raw_syscall(435, ctypes.addressof(args), ctypes.sizeof(args))
    if ret == 0:
        os._exit(0)  # a child was created: leave at once
    if ret > 0:
        os.waitpid(ret, 0)
    return {"ret": ret, "errno": errname(err) if ret < 0 else None}


def thread_works():
    out = {}

    def work():
        out["sum"] = sum(range(1000))
        out["ident"] = threading.get_ident()

    t = threading.Thread(target=work)
    t.start()
    t.join(5)
    return {"sum": out.get("sum"), "other_thread": out.get("ident") != threading.get_ident(),
            "alive": t.is_alive()}


def sigio_owner(victim, sig=9):
    """Ask the kernel to send SIG to VICTIM whenever a pipe becomes readable:
    F_SETOWN(victim) + F_SETSIG(sig) + O_ASYNC, then make it readable.  Each
    step's outcome is reported; F_GETFL must keep working."""
    import fcntl
    r, w = os.pipe()
    out = {"F_GETFL": fcntl.fcntl(r, fcntl.F_GETFL)}
    for name, cmd, arg in (("F_SETOWN", fcntl.F_SETOWN, int(victim)), ("F_SETSIG", 10, int(sig)),
                           ("F_SETOWN_EX", 15, (1).to_bytes(4, "little") + int(victim).to_bytes(4, "little"))):
        try:
            fcntl.fcntl(r, cmd, arg)
            out[name] = "ok"
        except OSError as e:
            out[name] = errname(e.errno)
    fcntl.fcntl(r, fcntl.F_SETFL, out["F_GETFL"] | os.O_ASYNC)
    os.write(w, b"x")
    time.sleep(0.3)
    return out
