# SPDX-License-Identifier: ISC
"""Running `taskexec run` as a task author does, and reading what it shows.

stdout is the result JSON (and nothing else); the last line of stderr is
`taskexec: summary {...}`; the exit status is 0 completed, 1 failed, 2 usage
or rejected (taskexec(1), THE RUN SUMMARY).
"""
import json
import math
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "tests" / "shim"
# Same switch as the sandbox suite: point the suite at another binary.
TASKEXEC = Path(os.environ.get("SANDBOX_SUITE_TASKEXEC", REPO / "build" / "taskexec"))
SUMMARY_PREFIX = "taskexec: summary "
RESULT_MAX = 10240

ENV = {}  # filled by the session fixture in conftest.py


class Run:
    def __init__(self, argv, rc, stdout, stderr):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        self.summary = parse_summary(stderr)

    @property
    def result(self):
        return json.loads(self.stdout)

    @property
    def lines(self):
        return self.stderr.splitlines()

    def explain(self):
        tail = "\n".join(self.lines[-20:])
        return f"\n$ {' '.join(self.argv[1:])}\nrc={self.rc}\nstdout={self.stdout!r}\nstderr tail:\n{tail}"


def parse_summary(stderr):
    lines = [line for line in stderr.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith(SUMMARY_PREFIX):
        return None
    return json.loads(lines[-1][len(SUMMARY_PREFIX):])


def run(entry, *kv, task_type=None, stdin=None, env=None, timeout=30):
    """`taskexec run ENTRY k=v …` (or `--json -` with entry None and stdin)."""
    assert TASKEXEC.exists() and os.access(TASKEXEC, os.X_OK), f"{TASKEXEC} is missing: build it with `make`"
    assert ENV, "the shim_env fixture has not run"
    argv = [str(TASKEXEC), "run"]
    if entry is not None:
        argv.append(entry)
    argv += list(kv)
    if task_type is not None:
        argv += ["--task-type", task_type]
    if stdin is not None:
        argv += ["--json", "-"]
    full_env = dict(ENV)
    full_env.update(env or {})
    proc = subprocess.run(argv, cwd=REPO, env=full_env, input=(stdin or "").encode("utf-8"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return Run(argv, proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))


# --------------------------------------------------------------------------
# What a completed or failed run must look like

def completed(r):
    """Asserts the run completed; returns the parsed result."""
    assert r.summary is not None, "no summary line" + r.explain()
    assert r.summary["outcome"] == "completed", r.explain()
    assert r.summary["error"] is None and r.summary["error_type"] is None, r.explain()
    assert r.summary["traceback"] is None, r.explain()
    assert r.summary["exit_code"] == 0, r.explain()
    assert r.rc == 0, r.explain()
    # one JSON document and a newline, nothing else
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1, r.explain()
    return r.result


def failed(r, outcome, error, error_type, retryable):
    """Asserts the run failed as given (error: exact text, or a callable check)."""
    s = r.summary
    assert s is not None, "no summary line" + r.explain()
    assert s["outcome"] == outcome, r.explain()
    if callable(error):
        assert error(s["error"]), f"unexpected error {s['error']!r}" + r.explain()
    else:
        assert s["error"] == error, r.explain()
    assert s["error_type"] == error_type, r.explain()
    assert s["retryable"] is retryable, r.explain()
    assert r.rc == 1, r.explain()
    assert r.stdout == "", "a failed run writes nothing on stdout" + r.explain()
    # the error is also shown just before the summary
    assert f"taskexec: error: {s['error']}" in r.lines[-2:], r.explain()
    return s


def rejected(r, reason):
    s = r.summary
    assert s is not None, "no summary line" + r.explain()
    assert s["outcome"] == "rejected", r.explain()
    assert s["error"] == "rejected: " + reason, r.explain()
    assert s["retryable"] is False, r.explain()
    assert s["exit_code"] is None, r.explain()
    assert r.rc == 2, r.explain()
    assert r.stdout == "", r.explain()
    assert f"taskexec: rejected: {reason}" in r.lines, r.explain()
    return s


def identical(got, want, path="result"):
    """Equal values of equal JSON types: 1 is not 1.0 or True, -0.0 is not 0.0."""
    assert type(got) is type(want), f"{path}: {got!r} ({type(got).__name__}) != {want!r} ({type(want).__name__})"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{path}: keys {list(got)!r} != {list(want)!r}"
        for k in want:
            identical(got[k], want[k], f"{path}[{k!r}]")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want)):
            identical(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == want and math.copysign(1, got) == math.copysign(1, want), f"{path}: {got!r} != {want!r}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"
