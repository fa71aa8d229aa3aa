# SPDX-License-Identifier: ISC
"""GET /healthz and the HTTP endpoint's handling of other requests (taskexecd(8), HTTP endpoint)."""
import json
import os
import signal
import socket
import time

import pytest

from opshelpers import spare_port, wait_for


def _health(d, timeout=5.0):
    r = d.get("/healthz", timeout=timeout)
    assert r.headers.get("content-type", "").startswith("application/json"), r.headers
    return r, json.loads(r.body)


def test_healthz_200_with_json_naming_redis_and_postgres_ok_when_both_up(ops):
    d = ops.daemon()
    r, body = _health(d)
    assert r.status == 200, r
    assert body["status"] == "ok", body
    assert body["redis"] == "ok" and body["postgres"] == "ok", body
    assert body["executor_id"] == d.executor_id, body
    assert "error" not in body, body
    assert r.headers.get("cache-control") == "no-store", r.headers


def test_healthz_503_naming_redis_at_once_when_redis_is_stopped(ops, services):
    d = ops.daemon()
    try:
        services.stop_redis()
        # A fresh check: the very first request after the stop already sees it.
        r, body = _health(d)
        assert r.status == 503, r
        assert body["status"] != "ok" and body["redis"] != "ok", body
        assert body["postgres"] == "ok", body
        assert "Redis" in body["error"] and "PostgreSQL" not in body["error"], body
        assert r.seconds < 2.5, "the health check took %.2fs" % r.seconds
    finally:
        services.restart_redis()
    # It recovers by itself once Redis is back.
    wait_for(lambda: d.get("/healthz").status == 200, 15, "/healthz to be 200 again after Redis came back")


def test_healthz_503_naming_postgresql_at_once_when_postgresql_is_stopped(ops, services):
    d = ops.daemon()
    try:
        services.stop_pg()
        assert services.status() == {"redis": True, "postgresql": False}
        r, body = _health(d)
        assert r.status == 503, r
        assert body["status"] != "ok" and body["postgres"] != "ok", body
        assert body["redis"] == "ok", body
        assert "PostgreSQL" in body["error"] and "Redis" not in body["error"], body
        assert r.seconds < 2.5, "the health check took %.2fs" % r.seconds
    finally:
        services.restart_pg()
    wait_for(lambda: d.get("/healthz").status == 200, 20, "/healthz to be 200 again after PostgreSQL came back")


def test_healthz_times_out_with_503_when_redis_hangs(ops, services):
    """A Redis that accepts but never answers: /healthz still answers, within its short timeout."""
    d = ops.daemon()
    pid = services.redis_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        r, body = _health(d, timeout=10)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert r.status == 503, r
    assert body["redis"] == "timeout" and body["postgres"] == "ok", body
    assert "Redis" in body["error"], body
    assert r.seconds < 3, "a hung Redis held /healthz for %.2fs" % r.seconds
    wait_for(lambda: d.get("/healthz").status == 200, 15, "/healthz to be 200 again after SIGCONT")


def test_unknown_path_404(ops):
    d = ops.daemon()
    for path in ("/", "/nope", "/healthz/x", "/metricsx"):
        r = d.get(path)
        assert r.status == 404, (path, r)


def test_post_and_other_methods_405_with_allow_header(ops):
    d = ops.daemon()
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/healthz", "/metrics"):
            r = d.get(path, method=method)
            assert r.status == 405, (method, path, r)
            allow = {m.strip() for m in r.headers.get("allow", "").split(",")}
            assert "GET" in allow, (method, path, r.headers)


def test_slow_and_malformed_clients_do_not_stall_the_daemon(ops):
    d = ops.daemon()
    host, _, port = d.http.rpartition(":")
    idle = []
    try:
        # Clients that connect and send half a request, nothing at all, or bytes that are not HTTP.
        t0 = time.monotonic()
        for i in range(9):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall([b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"\x00\x01not HTTP at all\r\n\r\n"][i % 3])
            idle.append(s)
        # A malformed request line gets a 400 at once.
        with socket.create_connection((host, int(port)), timeout=5) as bad:
            bad.sendall(b"GET /healthz\r\n\r\n")
            assert bad.recv(200).startswith(b"HTTP/1.1 400 "), "no 400 for a request line without version"
        # Meanwhile the daemon answers and runs jobs.
        r = d.get("/healthz")
        assert r.status == 200 and r.seconds < 2, r
        ops.submit("opstasks.talk:mark")
        # The stalled connections are closed by the server (its 5 s connection timeout), not kept forever.
        for s in idle:
            s.settimeout(max(0.1, t0 + 10 - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except socket.timeout:
                raise AssertionError("a stalled client connection was still open 10 s later")
            except ConnectionResetError:
                pass
    finally:
        for s in idle:
            s.close()


def test_listen_accepts_a_host_name(ops):
    port = spare_port()
    d = ops.daemon(env={"TASKEXEC_HTTP_LISTEN": "localhost:%d" % port})
    r, body = _health(d)
    assert r.status == 200 and body["status"] == "ok", r
    c = ops.check(env={"TASKEXEC_HTTP_LISTEN": "localhost:%d" % port})
    assert c.returncode == 0, c.stderr


def test_listen_accepts_a_bracketed_ipv6_address(ops):
    d = ops.daemon(env={"TASKEXEC_HTTP_LISTEN": "[::1]:%d" % spare_port()})
    r, body = _health(d)
    assert r.status == 200 and body["status"] == "ok", r


@pytest.mark.parametrize("value, why", [
    ("no-such-host.invalid:9464", "TASKEXEC_HTTP_LISTEN: 'no-such-host.invalid:9464': cannot resolve "
                                  "host 'no-such-host.invalid': "),
    ("localhost:http", "TASKEXEC_HTTP_LISTEN: 'localhost:http': the port must be a number from 1 to 65535"),
    ("localhost:0", "TASKEXEC_HTTP_LISTEN: 'localhost:0': the port must be a number from 1 to 65535"),
    ("9464", "TASKEXEC_HTTP_LISTEN: '9464' is not host:port or off"),
    ("[::1:9464", "TASKEXEC_HTTP_LISTEN: '[::1:9464': an IPv6 address goes in brackets: [::1]:9464"),
])
def test_listen_refuses_what_it_cannot_listen_on_in_one_line(ops, value, why):
    r = ops.check(env={"TASKEXEC_HTTP_LISTEN": value})
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [x for x in r.stderr.splitlines() if x.startswith("TASKEXEC_HTTP_LISTEN")]
    assert len(lines) == 1 and lines[0].startswith(why), r.stderr
