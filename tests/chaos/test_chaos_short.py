# SPDX-License-Identifier: ISC
"""The short chaos run inside `make check`: tests/chaos/chaos.py --jobs 300 --kills 3.

4 daemons, SIGKILLs with restarts, one Redis and one PostgreSQL restart; the
script checks every promise itself (see its docstring) and exits 0 only when
all held.  `make chaos` runs the full 5,000-job version.
"""
import subprocess
import sys
from pathlib import Path

CHAOS = Path(__file__).resolve().parent / "chaos.py"


def test_chaos_short():
    r = subprocess.run(["/usr/bin/python3", str(CHAOS), "--jobs", "300", "--kills", "3", "--timeout", "150"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    sys.stdout.write(r.stdout)    # the summary table, shown by pytest -rA or on failure
    assert r.returncode == 0, "chaos.py exited %d:\n%s" % (r.returncode, r.stdout[-12000:])
