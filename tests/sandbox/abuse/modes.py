# SPDX-License-Identifier: ISC
"""Set-uid programs and leases: what a job may leave behind for other users
and other jobs on the host.  Each attempt reports the errno it met (or "ok")
and the mode the file has afterwards."""

import ctypes
import fcntl
import os
import shutil
import stat

from abuse import errname, raw_syscall

SYS_fchmodat2 = 452   # x86-64; newer than Debian 12's headers


def _try(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errname(e.errno)
    except NotImplementedError:
        return "NotImplementedError"


def _raw(nr, *args):
    ret, err = raw_syscall(nr, *args)
    return "ok" if ret == 0 else errname(err)


def setuid_copy(mode):
    """Copy python3 into the scratch dir and try to give it MODE (an octal
    string) through every chmod-family call; report each outcome and the
    set-uid/set-gid bits the copy ends up with."""
    mode = int(str(mode), 8)   # k=v hands 4755 over as a number
    path = os.path.abspath("python3-copy")
    shutil.copyfile("/usr/bin/python3", path)
    os.chmod(path, 0o755)
    name = os.path.basename(path).encode()
    dirfd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    out = {}
    attempts = {
        "chmod": lambda: os.chmod(path, mode),
        "fchmod": lambda: os.fchmod(fd, mode),
        "fchmodat": lambda: os.chmod(os.path.basename(path), mode, dir_fd=dirfd),
        "chmod_nofollow": lambda: os.chmod(path, mode, follow_symlinks=False),
    }
    fd = os.open(path, os.O_RDONLY)
    for name_, fn in attempts.items():
        out[name_] = _try(fn)
        out[name_ + "_mode"] = oct(stat.S_IMODE(os.stat(path).st_mode))
        os.chmod(path, 0o755)
    out["fchmodat2"] = _raw(SYS_fchmodat2, dirfd, ctypes.c_char_p(name), mode, 0)
    out["fchmodat2_mode"] = oct(stat.S_IMODE(os.stat(path).st_mode))
    out["suid_left"] = bool(os.stat(path).st_mode & (stat.S_ISUID | stat.S_ISGID))
    os.close(fd)
    os.close(dirfd)
    return out


def setuid_by_create():
    """open(O_CREAT) with 06755, then fill the file: the kernel must clear
    the bits at the first write by a caller without CAP_FSETID."""
    fd = os.open("made-suid", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o6755)
    created = oct(stat.S_IMODE(os.fstat(fd).st_mode))
    with open("/usr/bin/python3", "rb") as src:
        os.write(fd, src.read(1 << 16))
    after = oct(stat.S_IMODE(os.fstat(fd).st_mode))
    os.close(fd)
    return {"created": created, "after_write": after}


def write_lease():
    """Take a write lease on a file the job owns: with it, another process's
    open() of that file waits for the lease to be broken."""
    with open("leased", "w") as f:
        f.write("x")
    fd = os.open("leased", os.O_RDONLY)
    out = {"F_GETLEASE": fcntl.fcntl(fd, fcntl.F_GETLEASE)}
    for name, kind in (("F_SETLEASE_WR", fcntl.F_WRLCK), ("F_SETLEASE_RD", fcntl.F_RDLCK)):
        out[name] = _try(lambda: fcntl.fcntl(fd, fcntl.F_SETLEASE, kind))
    os.close(fd)
    return out
