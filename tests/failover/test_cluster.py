# SPDX-License-Identifier: ISC
"""taskexecd and taskexec against a 3-master Redis Cluster started here.

Every key of a queue prefix carries the same hash tag, so one node owns them
all.  The daemon and the CLI are pointed at a node that does not own it: they
must follow the MOVED redirection to the one that does (taskexec-protocol(7),
"Redis Cluster"), and the jobs must run as on a single Redis.
"""
import json
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import redis

import testlib
from testlib import REPO, TASKEXEC, DB, Daemon, Services, spare_port, stop_daemons, wait_for

TASKS_ROOT = REPO / "tests" / "integration" / "tasks_root"


@pytest.fixture(scope="module")
def root():
    d = Path(tempfile.mkdtemp(prefix="taskexec-cluster-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    subprocess.run(["rm", "-rf", str(d)], check=False)


@pytest.fixture(scope="module")
def postgres(root):
    s = Services(root / "services")
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def cluster(root):
    """Three masters, no replicas; yields their ports."""
    ports = []
    while len(ports) < 3:
        # The cluster bus listens on port + 10000, which must be a port too.
        p = spare_port()
        if p + 10000 < 65536 and p not in ports:
            ports.append(p)
    try:
        for p in ports:
            d = root / ("node-%d" % p)
            d.mkdir()
            subprocess.run(["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--dir", str(d),
                            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                            "--appendonly", "yes", "--save", "", "--daemonize", "yes",
                            "--pidfile", str(d / "redis.pid"), "--logfile", str(d / "redis.log")], check=True)
        for p in ports:
            wait_for(lambda: _ping(p), 10, "cluster node %d" % p)
        subprocess.run(["redis-cli", "--cluster", "create", *("127.0.0.1:%d" % p for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True, stdout=subprocess.DEVNULL)
        wait_for(lambda: all(redis.Redis(port=p).execute_command("CLUSTER INFO").get("cluster_state") == "ok"
                             for p in ports), 30, "cluster_state:ok on every node")
        yield ports
    finally:
        for p in ports:
            try:
                redis.Redis(port=p).shutdown(nosave=True)
            except redis.RedisError:
                pass


def _ping(port):
    try:
        return redis.Redis(port=port).ping()
    except redis.RedisError:
        return False


def owner(ports, prefix):
    """The port of the node that owns the hash slot of {prefix}."""
    slot = redis.Redis(port=ports[0]).execute_command("CLUSTER KEYSLOT", "{%s}:wake" % prefix)
    for lo, hi, node, *_ in redis.Redis(port=ports[0]).execute_command("CLUSTER SLOTS"):
        if lo <= slot <= hi:
            return int(node[1])
    raise AssertionError("no node owns slot %d" % slot)


def test_daemon_and_cli_follow_moved_to_the_node_that_owns_the_slot(root, postgres, cluster, request):
    prefix = "cl-%s" % uuid.uuid4().hex[:6]
    own = owner(cluster, prefix)
    seed = next(p for p in cluster if p != own)
    work = root / prefix
    for sub in ("", "state", "scratch"):
        (work / sub).mkdir(exist_ok=True)
        (work / sub).chmod(0o755)
    http = spare_port()
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TASKEXEC_")}
    env.update({
        "TASKEXEC_REDIS_URL": "redis://127.0.0.1:%d/0" % seed, "TASKEXEC_DB_URL": postgres.db_url,
        "TASKEXEC_QUEUE_PREFIX": prefix, "TASKEXEC_HEARTBEAT_INTERVAL": "1s",
        "TASKEXEC_HTTP_LISTEN": "127.0.0.1:%d" % http, "TASKEXEC_EXECUTOR_ID": prefix + "-d",
        "TASKEXEC_TASKS_PATH": "%s:%s" % (REPO, TASKS_ROOT), "TASKEXEC_ALLOWED_MODULES": "tasks,itasks",
        "TASKEXEC_POLICY_DIR": str(REPO / "policy"), "TASKEXEC_STATE_DIR": str(work / "state"),
        "TASKEXEC_SCRATCH_DIR": str(work / "scratch"), "TASKEXEC_SHUTDOWN_TIMEOUT": "5s",
    })
    d = Daemon(env, work, work / "daemon.log")
    try:
        moved = d.wait_event("redis.master_changed", timeout=30, where=lambda doc: doc.get("via") == "MOVED")
        assert moved["to"] == "127.0.0.1:%d" % own
        ids = []
        for i in range(5):
            r = subprocess.run([str(TASKEXEC), "submit", "itasks.basic:echo", "n=%d" % i, "--task-type", "ad_hoc"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
            assert r.returncode == 0, r.stderr
            ids.append(r.stdout.split()[0])
        db = DB(postgres.db_url)
        wait_for(lambda: all((db.job(j) or {}).get("status") == "COMPLETED" for j in ids), 60,
                 "the cluster's jobs COMPLETED")
        assert [db.job(j)["result"] for j in ids] == [{"n": i} for i in range(5)]
        # Everything lives on the owner; the node of the URL holds nothing of ours.
        assert redis.Redis(port=own).exists("{%s}:executors" % prefix)
        ready = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/readyz" % http, timeout=10).read())
        assert ready["redis_master"] == "127.0.0.1:%d" % own
        r = subprocess.run([str(TASKEXEC), "queues"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        assert r.returncode == 0 and prefix + "-d" in r.stdout, r.stdout + r.stderr
    finally:
        problems = stop_daemons([d], testlib.failed_in_call(request))
    assert not problems, problems
