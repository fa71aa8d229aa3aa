# SPDX-License-Identifier: ISC
"""Attempts to run another program.

The markers a successful attempt would print are split in the source, so a
traceback quoting the line does not look like a success."""

import ctypes
import os
import subprocess
import sys

from abuse import check, libc


def os_system(marker):
    status = os.system(f"echo SYSTEM-''RAN; touch {marker}")
    return {"status": status}


def subprocess_run(marker):
    done = subprocess.run(["/bin/sh", "-c", f"echo SUBPROCESS-''RAN; touch {marker}"],
                          capture_output=True)
    return {"returncode": done.returncode, "stdout": done.stdout.decode()}


def execv_interpreter():
    os.execv(sys.executable, [sys.executable, "-I", "-S", "-c", "print('EXECV-' + 'SUCCEEDED')"])


def memfd_execveat():
    """Copy a binary into an anonymous memfd and execveat(fd, "", AT_EMPTY_PATH)."""
    try:
        with open("/bin/true", "rb") as f:
            image, argv = f.read(), [b"true"]
    except OSError:
        # /bin is outside the Landlock read set: use the interpreter, which
        # must be readable, and make it announce itself.
        with open(sys.executable, "rb") as f:
            image = f.read()
        argv = [b"python3", b"-I", b"-S", b"-c", b"print('EXECVEAT-' + 'SUCCEEDED')"]
    fd = os.memfd_create("abuse", 0)
    os.write(fd, image)
    return _execveat(fd, "", argv)


def _execveat(fd, path, argv):
    """execveat(FD, PATH, ARGV, {}, AT_EMPTY_PATH) through libc's syscall()."""
    c_argv = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    c_envp = (ctypes.c_char_p * 1)(None)
    lib = libc()
    lib.syscall.restype = ctypes.c_long
    AT_EMPTY_PATH = 0x1000
    ctypes.set_errno(0)
    ret = lib.syscall(ctypes.c_long(322), ctypes.c_long(fd), ctypes.c_char_p(path.encode()),
                      c_argv, c_envp, ctypes.c_long(AT_EMPTY_PATH))
    check(ret, "execveat")
    return {"execveat": ret}


def execveat_fd1023_absolute_interpreter():
    """With an absolute path the kernel ignores the fd, so only the supervisor can stop it."""
    return _execveat(1023, sys.executable, [b"python3", b"-I", b"-S", b"-c", b"print('ABSOLUTE-' + 'EXECVEAT-RAN')"])


def execveat_fd1023_loader_runs_a_shell():
    """The dynamic loader may be executed by the sandbox's own exec; through it
    any readable ELF file would run."""
    loader = "/lib64/ld-linux-x86-64.so.2"
    return _execveat(1023, loader, [b"ld.so", b"/bin/sh", b"-c", b"echo LOADER-''SHELL-RAN"])
