# SPDX-License-Identifier: ISC
"""The sandbox as an ordinary user gets it: `taskexec run` through
unprivileged user namespaces, as bubblewrap works.  Run as root (make check),
this runs the whole sandbox suite, both start modes, as the user nobody."""
import os
import subprocess
import sys

from test_sandbox import REPO, TASKEXEC


def test_the_whole_sandbox_suite_passes_for_an_ordinary_user():
    if os.geteuid() != 0:
        return      # this run is the ordinary user's: the other tests are the proof
    r = subprocess.run(
        ["runuser", "-u", "nobody", "--", "env", "HOME=/tmp", "PATH=/usr/bin:/bin",
         f"SANDBOX_SUITE_TASKEXEC={TASKEXEC}", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/sandbox", "--deselect", "tests/sandbox/test_unprivileged.py"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=900)
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0 and " passed" in summary and "failed" not in summary and "skipped" not in summary, \
        "as nobody:\n" + "\n".join(r.stdout.splitlines()[-40:])
