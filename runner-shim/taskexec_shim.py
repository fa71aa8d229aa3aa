# SPDX-License-Identifier: ISC
"""taskexec shim: run one job in a sandboxed interpreter no other job touched.

Started by the executor after the kernel sandbox is in place, in one of two
ways (taskexec-policy(5), [start] mode):

  fresh   `python3 -I -S -B taskexec_shim.py`: this interpreter runs one job.
  warm    `... taskexec_shim.py --serve`: a warm server (taskexec_warm.py),
          whose forks each run one job through main() below.

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


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:        # a warm server: taskexec_warm.py beside this file
        sys.path.append(shim_dir())
        import taskexec_warm
        sys.exit(taskexec_warm.serve())
    sys.exit(main())
