# SPDX-License-Identifier: ISC
"""Raw system calls a sandbox must refuse."""

import ctypes
import os

from abuse import errname, raw_syscall


def io_uring_setup():
    params = ctypes.create_string_buffer(120)  # struct io_uring_params
    ret, err = raw_syscall(425, 8, ctypes.addressof(params))
    if ret >= 0:
        os.close(ret)
    return {"ret": ret, "errno": errname(err) if ret < 0 else None}


def x32_getpid():
    X32_SYSCALL_BIT = 0x40000000
    ret, err = raw_syscall(X32_SYSCALL_BIT | 39)
    return {"ret": ret, "errno": errname(err) if ret < 0 else None, "pid": os.getpid()}


def tiocsti():
    """Push a command into the input queue of whatever tty the job can reach."""
    TIOCSTI = 0x5412
    char = ctypes.create_string_buffer(b"#")
    fds = {"0": 0, "1": 1, "2": 2}
    try:
        fds["/dev/tty"] = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        fds["/dev/tty"] = None
        tty_error = f"{type(e).__name__}: {e}"
    else:
        tty_error = None
    attempts = {}
    for name, fd in fds.items():
        if fd is None:
            continue
        # The second command differs only in the upper 32 bits, which the
        # kernel drops (CVE-2019-10063): a filter must compare 32 bits.
        for cmd in ((1 << 32) | TIOCSTI, TIOCSTI):
            ret, err = raw_syscall(16, fd, cmd, ctypes.addressof(char))
            attempts[f"{name}/{cmd:#x}"] = {"ret": ret, "errno": errname(err) if ret < 0 else None}
    return {"attempts": attempts, "dev_tty": tty_error}
