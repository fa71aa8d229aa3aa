# SPDX-License-Identifier: ISC
"""taskexec and taskexecd with TASKEXEC_REDIS_URL=redis+sentinel://...: what a
user types, against the Sentinel-watched pair of scripts/services start-ha."""
import subprocess
import tempfile
from pathlib import Path

import pytest

from testlib import REPO, TASKEXEC, TASKEXECD, Daemon, stop_daemons
import testlib

SERVICES = REPO / "scripts" / "services"


@pytest.fixture(scope="module")
def ha():
    d = Path(tempfile.mkdtemp(prefix="taskexec-sentinel-", dir="/tmp"))
    d.chmod(0o755)
    try:
        out = subprocess.run([str(SERVICES), "start-ha", str(d / "s")], check=True, stdout=subprocess.PIPE,
                             text=True, timeout=300).stdout
        urls = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        yield d, urls
    finally:
        subprocess.run([str(SERVICES), "stop", str(d / "s")], check=False, timeout=300)
        subprocess.run(["rm", "-rf", str(d)], check=False)


def taskexec(env, *args):
    return subprocess.run([str(TASKEXEC), *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=120)


def test_submit_wait_through_sentinel_even_while_the_master_fails_over(ha, request):
    d, urls = ha
    env = testlib.daemon_env(d, urls, "sc-submit")
    daemon = Daemon(env, d, d / "daemon.log")
    try:
        daemon.wait_event("redis.master", timeout=30)
        r = taskexec(env, "submit", "itasks.basic:echo", "n=1", "--task-type", "ad_hoc", "--wait",
                     "--wait-timeout", "60s")
        assert r.returncode == 0, r.stderr
        assert "COMPLETED" in r.stdout and '"n": 1' in r.stdout
        # Killed master: the command waits for Sentinel's new master rather than failing.
        subprocess.run([str(SERVICES), "kill-redis-primary", str(d / "s")], check=True, stdout=subprocess.PIPE)
        r = taskexec(env, "submit", "itasks.basic:echo", "n=2", "--task-type", "ad_hoc", "--wait",
                     "--wait-timeout", "60s")
        assert r.returncode == 0, r.stderr
        assert "COMPLETED" in r.stdout and '"n": 2' in r.stdout
        daemon.wait_event("redis.master_changed", timeout=30)
        subprocess.run([str(SERVICES), "revive-redis", str(d / "s")], check=True)
    finally:
        problems = stop_daemons([daemon], testlib.failed_in_call(request))
    assert not problems, problems


def test_unknown_master_name_is_one_clear_line(ha):
    d, urls = ha
    url = urls["TASKEXEC_REDIS_URL"].replace("/taskexec/0", "/nosuch/0")
    r = taskexec(testlib.daemon_env(d, urls, "sc-name", TASKEXEC_REDIS_URL=url), "queues")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not know a master named nosuch" in lines[0], r.stderr


def test_bad_sentinel_url_is_refused_at_start_naming_the_variable(ha):
    d, urls = ha
    env = testlib.daemon_env(d, urls, "sc-bad", TASKEXEC_REDIS_URL="redis+sentinel://:s3cret@s1:26379,s2:x/m")
    r = subprocess.run([str(TASKEXECD), "--check"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode != 0
    assert "TASKEXEC_REDIS_URL: bad sentinel address 's2:x'" in r.stdout, r.stdout
    assert "s3cret" not in r.stdout
