# SPDX-License-Identifier: ISC
"""taskexec warm server: fork one sandboxed attempt per request, run it as a
fresh interpreter would (taskexec_shim.main), and never run task code itself.

Started as `python3 -I -S -B taskexec_shim.py --serve` by the executor, in the
slot's isolation domain, as pid 1 of a pid namespace of its own, under the
server-stage seccomp program.  fd 3 is the control socket; the messages,
and why nothing of a job passes through this process's memory, are at
"warm servers" in executor/warm.c and in doc/sandbox.md.
"""
import ctypes
import gc
import os
import signal
import socket
import struct
import sys
# Imported here for every fork to share (each would import them anyway):
import inspect          # noqa: F401 (bind_error)
import logging
import random           # noqa: F401 (it reseeds itself in each fork: os.register_at_fork)
import resource
import traceback        # noqa: F401 (main's error path)

import taskexec_shim as shim
import taskexec_task    # noqa: F401

PR_SET_DUMPABLE = 4
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SYS_SECCOMP = 317       # x86-64, the only architecture the executor builds for
PID_PLACEHOLDER = 0x7E57C0DE    # in the filter's "this process" rules (seccomp_policy.h)


def serve():
    """Fork one child per request on fd 3 until the executor closes it.

    This process holds no job data: each child reads its job and setup from
    the memfds it was handed, after the fork.
    """
    # pid 1 of our namespace: no signal from inside it reaches us.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    # Not dumpable: an attempt (same uid) may not read our memory through /proc.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Everything a fork would otherwise build for itself, built once: each
    # page a child writes costs it a copy-on-write fault.
    shim.configure_logging(logging)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    seccomp = (libc.syscall, Prog)
    ctl = socket.socket(fileno=3)
    skeleton = tmp_skeleton()
    clean = change_times(skeleton)
    gc.collect()
    gc.freeze()         # the heap stays shared with the forks, not copied on first touch
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(ctl, 16, 7)
        except OSError:
            return 0
        if not msg:
            return 0    # the executor is done with us
        if msg != b"R" or len(fds) != 7:
            return 2
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 127
            try:
                code = warm_child(ctl, fds, seccomp)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        socket.send_fds(ctl, [b"P"], [pidfd])
        os.close(pidfd)
        _, status, ru = os.wait4(pid, 0)
        ctl.send(struct.pack("=c3xiqqq", b"X", status, int(ru.ru_utime * 1e6), int(ru.ru_stime * 1e6),
                             ru.ru_maxrss))
        # Only the attempt could have changed /tmp (the change times of its
        # directories say so): most leave it as they found it, and pay
        # nothing for the check.
        if change_times(skeleton) != clean:
            empty_tmp(skeleton)
            clean = change_times(skeleton)


def tmp_skeleton():
    """What the domain itself made in /tmp before any attempt: the
    directories leading to the policy's write paths mounted below it (a
    task root under /tmp makes them too).  {path: mode}, /tmp included;
    the mounted write paths themselves are not entered."""
    dev = os.stat("/tmp").st_dev
    skeleton = {"/tmp": os.stat("/tmp").st_mode & 0o7777}
    for top, dirs, _ in os.walk("/tmp"):
        for d in list(dirs):
            st = os.lstat(os.path.join(top, d))
            if st.st_dev != dev:
                dirs.remove(d)                  # a mount point: a write path, shared by design
            else:
                skeleton[os.path.join(top, d)] = st.st_mode & 0o7777
    return skeleton


def change_times(skeleton):
    return [os.stat(path).st_ctime_ns for path in skeleton]


def empty_tmp(skeleton):
    """Leave /tmp (this domain's own tmpfs) as the next attempt must find it:
    the skeleton as it was, and nothing else.  Everything else is the
    attempt's (same uid, /tmp's own filesystem).  An error ends the server:
    one that cannot clean up must not serve again."""
    me, dev = os.getuid(), os.stat("/tmp").st_dev

    def remove(top):
        with os.scandir(top) as it:
            entries = list(it)
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if st.st_dev != dev:
                continue                        # a mount point: a write path
            if entry.path in skeleton:          # the domain's: keep it, empty it
                if st.st_uid == me:
                    os.chmod(entry.path, 0o700)
                remove(entry.path)
                if st.st_uid == me:
                    os.chmod(entry.path, skeleton[entry.path])
            elif entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)     # the attempt may have locked it
                remove(entry.path)
                os.rmdir(entry.path)
            else:
                os.unlink(entry.path)
    os.chmod("/tmp", 0o700)
    remove("/tmp")
    os.chmod("/tmp", skeleton["/tmp"])


def warm_child(ctl, fds, seccomp):
    """In the fork: become the attempt, then run it as main() would."""
    ctl.close()
    # The fds arrived above 4 (0-4 are ours): place the job's, keep the
    # status socket and the setup memfd where they are, close the rest.
    *job_fds, status_fd, setup_fd = fds
    for target, fd in enumerate(job_fds):
        os.dup2(fd, target, inheritable=False)
        os.close(fd)
    os.closerange(max(status_fd, setup_fd) + 1, 1 << 16)
    os.setsid()         # a process group of its own, as a fresh attempt has
    status = socket.socket(fileno=status_fd)
    try:
        with os.fdopen(setup_fd, "rb") as f:
            data = f.read()
        env, secrets, cpu, bpf = parse_setup(data)
        del data
        os.environ.clear()
        for var in env:
            name, _, value = var.partition("=")
            os.environ[name] = value
        for name, value in secrets:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o400)
            with os.fdopen(fd, "wb") as f:
                f.write(value)
        del secrets
        resource.setrlimit(resource.RLIMIT_CPU, cpu)
        # (random reseeded itself in the fork: os.register_at_fork.)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        listener = load_filter(seccomp, bpf)
    except BaseException as exc:   # noqa: B902 -- the executor must hear of any failure here
        status.send(struct.pack("=i56s", getattr(exc, "errno", None) or 0,
                                ("warm child: %s" % type(exc).__name__).encode()[:55]))
        return 127
    socket.send_fds(status, [b"L"], [listener])
    os.close(listener)
    status.close()      # its EOF tells the executor the job starts now
    code = shim.main()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def parse_setup(data):
    """The setup memfd as warm.c's write_setup lays it out."""
    pos = 0

    def u32():
        nonlocal pos
        (v,) = struct.unpack_from("=I", data, pos)
        pos += 4
        return v

    def blob():
        nonlocal pos
        n = u32()
        pos += n
        return data[pos - n:pos]

    env = [blob().decode("utf-8", "surrogateescape") for _ in range(u32())]
    secrets = [(blob().decode("utf-8", "surrogateescape"), blob()) for _ in range(u32())]
    cpu = struct.unpack_from("=QQ", data, pos)
    pos += 16
    n = u32()
    bpf = bytearray(data[pos:pos + 8 * n])
    return env, secrets, cpu, bpf


def load_filter(seccomp, bpf):
    """Stack this attempt's own seccomp program on the server's, with its pid
    patched in; return the listener for the executor."""
    syscall, Prog = seccomp
    placeholder, me = PID_PLACEHOLDER.to_bytes(4, sys.byteorder), os.getpid().to_bytes(4, sys.byteorder)
    off = bpf.find(placeholder, 4)
    while off >= 0:
        if off % 8 == 4:                        # struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
            bpf[off:off + 4] = me
        off = bpf.find(placeholder, off + 1)
    buf = (ctypes.c_char * len(bpf)).from_buffer(bpf)
    prog = Prog(len(bpf) // 8, ctypes.addressof(buf))
    fd = syscall(SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, ctypes.byref(prog))
    if fd < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return fd


