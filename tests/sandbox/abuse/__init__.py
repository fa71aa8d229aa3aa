# SPDX-License-Identifier: ISC
"""Abusive tasks for the sandbox escape suite (tests/sandbox/test_sandbox.py).

Each function is one attempt to break out of the taskexec sandbox.  They are run
only through `taskexec run abuse.<module>:<function>`, never imported by the
tests themselves.  A task reports what it managed to do; the test decides
whether that is a leak.
"""

import ctypes
import errno
import os


def libc():
    """The C library of the running interpreter, with errno captured."""
    return ctypes.CDLL(None, use_errno=True)


def raw_syscall(nr, *args):
    """syscall(2) through libc; returns (ret, errno)."""
    lib = libc()
    lib.syscall.restype = ctypes.c_long
    ctypes.set_errno(0)
    ret = lib.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return ret, ctypes.get_errno()


def check(ret, what):
    """Raise the OSError a failed libc call means, so the trace names it."""
    if ret == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def errname(err):
    return errno.errorcode.get(err, str(err))
