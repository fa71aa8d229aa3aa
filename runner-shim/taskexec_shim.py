"""taskexec shim: run one job in a sandboxed interpreter no other job touched.

Started by the executor after the kernel sandbox is in place, in one of two
ways (taskexec-policy(5), [start] mode):

  fresh   `python3 -I -S -B taskexec_shim.py`: this interpreter runs one job.
  warm    `... taskexec_shim.py --serve`: a warm server (serve()).  It imports
          what every job needs once and never imports task code; per attempt
          it forks a child that takes its own fds, loads its own seccomp
          filter, and then runs the job exactly as a fresh interpreter would.

File descriptors of the job:

  0  the job envelope (JSON: job, attempt, roots, allowed, result_max)
  1  the task's stdout         2  the task's stderr
  3  exactly one result document:
       {"ok": true, "result": ...}
       {"ok": false, "type": ..., "message": ..., "traceback": ..., "retryable": ...}
  4  logging records, one JSON object per line, and progress records
     {"progress": 0.42, "msg": ...} from taskexec_task.progress()

Standard library only.  The module checks below are defence in depth; the
kernel is the boundary.
"""
import json
import os
import sys

RESULT_FD = 3
EVENTS_FD = 4


# Taken now: a task that patches json.dumps changes only what it calls itself.
_loads, _dumps = json.loads, json.dumps


def json_loads(data):
    return _loads(data)


def json_dumps(obj, allow_nan=True):
    """Compact JSON, non-ASCII kept as is."""
    return _dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=allow_nan)


def has_nul_escape(encoded):
    """Whether JSON text holds the escape \\u0000 (not an escaped backslash and "u0000")."""
    i = encoded.find("\\u0000")
    while i >= 0:
        j = i
        while j > 0 and encoded[j - 1] == "\\":
            j -= 1
        if (i - j) % 2 == 0:
            return True
        i = encoded.find("\\u0000", i + 1)
    return False


def read_envelope():
    chunks = []
    while True:
        chunk = os.read(0, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    return json_loads(b"".join(chunks))


def write_result(doc):
    data = json_dumps(doc).encode("utf-8", "replace")
    view = memoryview(data)
    while view:
        view = view[os.write(RESULT_FD, view):]


def fail(type_name, message, retryable, kind=None, tb=None):
    doc = {"ok": False, "type": type_name, "message": message, "traceback": tb, "retryable": retryable}
    if kind:
        doc["kind"] = kind
    write_result(doc)


def under(path, roots):
    real = os.path.realpath(path)
    return any(real.startswith(os.path.realpath(r).rstrip("/") + "/") for r in roots)


def check_target(job, allowed, roots):
    """The same rules the executor applied before starting us."""
    module = job["module_path"]
    parts = module.split(".")
    if parts[0] not in allowed:
        raise PermissionError("module_path: %r is not under an allowed package" % module)
    for name in [module, job.get("class_name") or "", job["method_name"]]:
        if name and any(not p.isidentifier() or p.startswith("_") for p in name.split(".")):
            raise PermissionError("%r is not a dotted name of public identifiers" % name)
    rel = os.path.join(*parts)
    for root in roots:
        for cand in (os.path.join(root, rel, "__init__.py"), os.path.join(root, rel + ".py")):
            if os.path.isfile(cand) and under(cand, [root]):
                return
    raise PermissionError("module_path: %r is not a module file under the task roots" % module)


class RouteLogging:
    """Send logging records to fd 4 the moment something first imports logging.

    Importing logging costs several milliseconds, so jobs that never log never
    pay for it.  This finder lets the normal path finder locate the module and
    configures it right after its code has run.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "logging":
            return None
        sys.meta_path.remove(self)
        from importlib.machinery import PathFinder
        spec = PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            configure_logging(module)

        spec.loader.exec_module = exec_module
        return spec


def configure_logging(logging):
    class EventHandler(logging.Handler):
        def emit(self, record):
            try:
                doc = {"level": record.levelname, "logger": record.name, "msg": record.getMessage()}
                if record.exc_info:
                    doc["exc"] = logging.Formatter().formatException(record.exc_info)
                os.write(EVENTS_FD, (json_dumps(doc) + "\n").encode("utf-8", "replace"))
            except Exception:
                self.handleError(record)

    root = logging.getLogger()
    root.addHandler(EventHandler())
    root.setLevel(logging.INFO)
    global logging_ready
    logging_ready = True


logging_ready = False


def origin(obj):
    """Where obj says it was defined: its __module__ (an instance: its class's)."""
    where = getattr(obj, "__module__", None)
    return where if isinstance(where, str) else None


def refuse(field, value, what, module_name, where):
    raise PermissionError("%s: %r is %s, not defined in module %r; only functions and classes the task "
                          "module defines are entry points" % (field, value, what, module_name)
                          + (" (it comes from %r)" % where if where else ""))


def resolve(job):
    """module[.Class].method -> a callable.  Instance methods get a fresh instance.

    Only what the task module defines may be an entry: every class on the way
    and the callable itself must have the job's module as __module__, and a
    method must come from the named class or a base class of that module.
    Otherwise `tasks.x:remove` (or method_name "os.remove") would run
    os.remove just because tasks.x imported os.
    """
    name = job["module_path"]
    __import__(name)
    module = sys.modules[name]
    cls_name = job.get("class_name")
    path = (cls_name.split(".") if cls_name else []) + job["method_name"].split(".")
    *classes, method = path
    field = "class_name" if cls_name else "method_name"
    target = module
    for i, part in enumerate(classes):
        target = getattr(target, part)
        if not isinstance(target, type) or origin(target) != name:
            refuse(field, ".".join(classes[:i + 1]), "an imported class" if isinstance(target, type)
                   else "not a class", name, origin(target))
    if not classes:
        fn = getattr(module, method)
        if origin(fn) != name:
            refuse("method_name", method, "imported", name, origin(fn))
        return module, fn
    qualified = ".".join(path)
    owner = raw = None
    for klass in getattr(target, "__mro__", ()):
        if method in vars(klass):
            owner, raw = klass, vars(klass)[method]
            break
    if owner is None:
        raise AttributeError("%s has no method %r" % (".".join(classes), method))
    if origin(owner) != name:
        refuse("method_name", qualified, "inherited from %s" % owner.__qualname__, name, origin(owner))
    if origin(getattr(raw, "__func__", raw)) != name:
        refuse("method_name", qualified, "an imported function stored on the class", name,
               origin(getattr(raw, "__func__", raw)))
    if not isinstance(raw, (staticmethod, classmethod)):
        target = target()
    return module, getattr(target, method)


def bind_error(fn, params):
    """Why fn(**params) cannot bind, or None."""
    import inspect
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):    # a builtin without a signature: the call says it
        return None
    try:
        signature.bind(**params)
    except TypeError as exc:
        name = getattr(fn, "__qualname__", None) or type(fn).__qualname__ + ".__call__"
        return "%s() %s" % (name, exc)
    return None


def type_name(exc):
    t = type(exc)
    return t.__qualname__ if t.__module__ == "builtins" else "%s.%s" % (t.__module__, t.__qualname__)


def shim_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    if os.path.basename(here) == "__pycache__":  # started from its byte code
        here = os.path.dirname(here)
    return here


def main():
    envelope = read_envelope()
    job, roots, allowed = envelope["job"], envelope["roots"], envelope["allowed"]
    sys.path[:] = [p for p in sys.path if p.startswith(sys.prefix)]
    sys.path += roots + envelope.get("python_path", []) + [shim_dir()]
    if not logging_ready:           # (a warm server set it up before forking us)
        sys.meta_path.insert(0, RouteLogging())

    import taskexec_task
    taskexec_task.job_id = job["job_id"]
    taskexec_task.attempt = envelope.get("attempt", 1)
    taskexec_task.task_type = job["task_type"]
    taskexec_task._events_fd = EVENTS_FD
    taskexec_task._dumps = json_dumps

    params = job.get("parameters") or {}
    try:
        check_target(job, allowed, roots)
        module, fn = resolve(job)
        if not under(getattr(module, "__file__", None) or "/nonexistent", roots):
            raise PermissionError("module_path: %r was not loaded from the task roots" % job["module_path"])
        problem = bind_error(fn, params)
        if problem:
            fail("TypeError", problem, False, kind="bind")
            return 0
        result = fn(**params)
        if hasattr(result, "__await__"):
            import asyncio
            result = asyncio.run(result)
    except BaseException as exc:  # noqa: B902 -- everything a task raises is reported
        taskexec_task._flush()
        import traceback
        tb = traceback.format_exc()
        if len(tb) > 65536:
            tb = "[... traceback truncated]\n" + tb[-65536:]
        retryable = not isinstance(exc, (taskexec_task.NonRetryableError, PermissionError, ImportError,
                                         AttributeError, SystemExit, KeyboardInterrupt))
        fail(type_name(exc), str(exc), retryable, tb=tb)
        return 0
    taskexec_task._flush()      # the last progress it reported, held back by the throttle
    try:
        encoded = json_dumps(result, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        fail("TypeError", "result is not JSON-serialisable: %s" % exc, False, kind="result")
        return 0
    size = len(encoded.encode("utf-8", "replace"))
    if size > envelope["result_max"]:
        fail("ResultTooLarge", "result too large: %d bytes > %d" % (size, envelope["result_max"]), False,
             kind="too_large")
        return 0
    if has_nul_escape(encoded):
        fail("TypeError", "result is not JSON-serialisable: a string holds the character U+0000, "
             "which PostgreSQL cannot store", False, kind="result")
        return 0
    # The executor takes the value from exactly this layout, byte for byte.
    data = ('{"ok":true,"result":' + encoded + "}").encode("utf-8", "replace")
    view = memoryview(data)
    while view:
        view = view[os.write(RESULT_FD, view):]
    return 0


# ---- warm server ---------------------------------------------------------

PR_SET_DUMPABLE = 4
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 8
SYS_SECCOMP = 317       # x86-64, the only architecture the executor builds for
PID_PLACEHOLDER = 0x7E57C0DE    # in the filter's "this process" rules (seccomp_policy.h)


def serve():
    """Fork one child per request on fd 3 until the executor closes it.

    Requests, replies and the child's side are described at "warm servers"
    in warm.c.  This process holds no job data: the child reads its job
    and setup from the memfds it was handed, after the fork.
    """
    import ctypes
    import gc
    import socket
    import struct
    # What every job would import: paid once here, shared by every fork.
    import inspect      # noqa: F401 (bind_error)
    import logging
    import traceback    # noqa: F401 (main's error path)
    sys.path.append(shim_dir())
    import taskexec_task    # noqa: F401

    import random       # noqa: F401 (it reseeds itself in each fork: os.register_at_fork)
    import resource     # noqa: F401 (warm_child)
    import signal
    # pid 1 of our namespace: no signal from inside it reaches us.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    libc = ctypes.CDLL(None, use_errno=True)
    # Not dumpable: an attempt (same uid) may not read our memory through /proc.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    # Everything a fork would otherwise build for itself, built once: each
    # page a child writes costs it a copy-on-write fault.
    configure_logging(logging)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
    seccomp = (ctypes, libc.syscall, Prog)
    ctl = socket.socket(fileno=3)
    clean = os.stat("/tmp").st_ctime_ns
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
        # Only the attempt could have changed /tmp (its change time says so):
        # most leave it as they found it, and pay nothing for the check.
        if os.stat("/tmp").st_ctime_ns != clean:
            empty_tmp()
            clean = os.stat("/tmp").st_ctime_ns


def empty_tmp():
    """Leave /tmp (this domain's own tmpfs) as the next attempt must find it.

    Everything the attempt made there goes: it is ours (same uid) on /tmp's
    own filesystem.  What the domain made is left alone: root's directories
    leading to write paths mounted below /tmp, and those write paths (shared
    by every job of the type, by design).  An error ends the server: one
    that cannot clean up must not serve again.
    """
    me, dev = os.getuid(), os.stat("/tmp").st_dev

    def remove(top):
        with os.scandir(top) as it:
            entries = list(it)
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if st.st_dev != dev:
                continue                        # a mount point: a write path
            if entry.is_dir(follow_symlinks=False):
                if st.st_uid == me:
                    os.chmod(entry.path, 0o700)     # the attempt may have locked it
                remove(entry.path)
                if st.st_uid == me:
                    os.rmdir(entry.path)
            elif st.st_uid == me:
                os.unlink(entry.path)
    os.chmod("/tmp", 0o700)
    remove("/tmp")


def warm_child(ctl, fds, seccomp):
    """In the fork: become the attempt, then run it as main() would."""
    import resource
    import signal
    import socket
    import struct
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
        env, secrets, cpu, bpf = parse_setup(struct, data)
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
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    return code


def parse_setup(struct, data):
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
    ctypes, syscall, Prog = seccomp
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


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == ["--serve"] else main())
