# SPDX-License-Identifier: ISC
"""Small, predictable tasks for the daemon integration tests.

State that must survive from one attempt to the next (fail_then_succeed,
sleep_once) lives as marker files in a directory the test's policy lets the
job write; each attempt runs in a fresh interpreter and scratch dir.
"""
import os
import time


def noop():
    return {"noop": True}


def sleep(seconds):
    time.sleep(seconds)
    return {"slept": seconds}


def fail_always():
    raise ValueError("boom")


def _mark_run(marker_dir):
    """Record one run in marker_dir and return how many runs came before it."""
    before = len([n for n in os.listdir(marker_dir) if n.startswith("run-")])
    n = before
    while True:
        try:
            fd = os.open(os.path.join(marker_dir, "run-%d" % n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            n += 1
            continue
        os.close(fd)
        return before


def fail_then_succeed(marker_dir, times):
    """Fail the first `times` runs, then succeed."""
    run = _mark_run(marker_dir)
    if run < times:
        raise RuntimeError("planned failure %d of %d" % (run + 1, times))
    return {"runs": run + 1}


def sleep_once(marker_dir, seconds):
    """Sleep `seconds` on the first run only; later runs return at once."""
    run = _mark_run(marker_dir)
    if run == 0:
        time.sleep(seconds)
    return {"run": run + 1}


def echo(**kw):
    return kw


def slow_cpu(seconds=1.0):
    """Burn CPU (no sleeping) for about `seconds`."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return {"loops": n}


def litter(files=2000):
    """Leave a tree of FILES files in the scratch dir (TMPDIR) for the executor to remove."""
    import os
    root = os.environ["TMPDIR"]
    for d in range(files // 100):
        sub = os.path.join(root, "d%03d" % d)
        os.mkdir(sub)
        for f in range(100):
            with open(os.path.join(sub, "f%03d" % f), "w") as fh:
                fh.write("x")
    return {"left": files}


def raw_result(text):
    """Write `text` on fd 3 as the whole result document, bypassing the shim's
    encoder, as a hostile or broken task could; then exit at once."""
    os.write(3, text.encode("utf-8", "surrogatepass"))
    os._exit(0)
