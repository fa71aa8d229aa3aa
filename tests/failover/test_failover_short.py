# SPDX-License-Identifier: ISC
"""The short failover run inside `make check`: tests/failover/failover.py with
one round (the Redis master killed after its replica missed writes, then the
PostgreSQL primary stopped and the standby promoted), 3 daemons, a stream of
jobs at 10/s.  The script checks every promise itself (lost = 0 among
acknowledged enqueues, duplicates only flagged, Redis empty at the end,
clean exits) and exits 0 only when all held.  `make failover` runs the long
version (both failover orders, twice) and writes the report.
"""
import subprocess
import sys
from pathlib import Path

FAILOVER = Path(__file__).resolve().parent / "failover.py"


def test_failover_short():
    r = subprocess.run(["/usr/bin/python3", str(FAILOVER), "--rounds", "1", "--settle", "2", "--timeout", "60"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=300)
    sys.stdout.write(r.stdout)    # the table, shown by pytest -rA or on failure
    assert r.returncode == 0, "failover.py exited %d:\n%s" % (r.returncode, r.stdout[-12000:])
