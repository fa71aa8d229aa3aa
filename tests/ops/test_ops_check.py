# SPDX-License-Identifier: ISC
"""taskexecd --check: effective settings with secrets masked; every problem named, exit non-zero."""
import os
import re
import subprocess
import uuid

import pytest

from opshelpers import spare_port

SECRET = "Chk5ecret-xyz"


def settings(stdout):
    return dict(line.split("=", 1) for line in stdout.splitlines() if re.match(r"TASKEXEC_[A-Z_]+=", line))


def test_check_prints_effective_settings_and_exits_0_when_valid(ops):
    r = ops.check(env={"TASKEXEC_CONCURRENCY": "3", "TASKEXEC_SHUTDOWN_TIMEOUT": "7s"})
    assert r.returncode == 0, r.stderr
    s = settings(r.stdout)
    assert s["TASKEXEC_CONCURRENCY"] == "3"
    assert s["TASKEXEC_SHUTDOWN_TIMEOUT"] == "7000ms"
    assert s["TASKEXEC_QUEUE_PREFIX"] == ops.prefix
    assert s["TASKEXEC_HEARTBEAT_INTERVAL"] == "1000ms"
    assert s["TASKEXEC_REDIS_URL"] == ops.env["TASKEXEC_REDIS_URL"]
    assert s["TASKEXEC_JOB_USER"] == "nobody"      # a default, printed too
    assert "# policy etl: " in r.stdout
    assert r.stdout.rstrip().endswith("# configuration valid"), r.stdout
    assert r.stderr == "", r.stderr


@pytest.mark.parametrize("url, shown", [
    ("postgresql://opsuser:%s@127.0.0.1:5432/taskexec" % SECRET, "postgresql://opsuser:***@127.0.0.1:5432/taskexec"),
    ("postgresql://opsuser@127.0.0.1/taskexec?password=%s&sslmode=disable" % SECRET,
     "postgresql://opsuser@127.0.0.1/taskexec?password=***&sslmode=disable"),
    ("host=127.0.0.1 user=opsuser password=%s dbname=taskexec" % SECRET,
     "host=127.0.0.1 user=opsuser password=*** dbname=taskexec"),
    ("host=127.0.0.1 password = '%s with blanks' dbname=taskexec" % SECRET, None),
    ("postgres://opsuser:%s%%40x@db.example:5432/taskexec" % SECRET, "postgres://opsuser:***@db.example:5432/taskexec"),
])
def test_check_masks_the_db_password(ops, url, shown):
    r = ops.check(env={"TASKEXEC_DB_URL": url})
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr, r.stdout
    if shown:
        assert settings(r.stdout)["TASKEXEC_DB_URL"] == shown


def test_check_masks_the_redis_password_and_a_password_from_the_config_file(ops):
    conf = ops.dir / "taskexec.conf"
    conf.write_text("# test\nTASKEXEC_DB_URL = postgresql://opsuser:%s@127.0.0.1/taskexec\n" % SECRET)
    # TASKEXEC_DB_URL only in the file: the environment would win over it.
    r = ops.check(env={"TASKEXEC_REDIS_URL": "redis://:%s@127.0.0.1:6379/0" % SECRET,
                       "TASKEXEC_CONFIG": str(conf), "TASKEXEC_DB_URL": None})
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr, r.stdout
    s = settings(r.stdout)
    assert s["TASKEXEC_REDIS_URL"] == "redis://:***@127.0.0.1:6379/0"
    assert s["TASKEXEC_DB_URL"] == "postgresql://opsuser:***@127.0.0.1/taskexec"


def _broken_policy(ops):
    """Add an unknown key to [job] of the copy's ad_hoc.policy; returns (path, its line number)."""
    d = ops.policy_dir()
    p = d / "ad_hoc.policy"
    lines = p.read_text().splitlines()
    at = lines.index("[job]") + 1
    lines.insert(at, "no_such_key = 1")
    p.write_text("\n".join(lines) + "\n")
    return p, at + 1


def test_check_refuses_a_bad_variable_naming_it(ops):
    r = ops.check(env={"TASKEXEC_CONCURRENCY": "zero"})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert re.search(r"^TASKEXEC_CONCURRENCY: bad value", r.stderr, re.M), r.stderr
    assert "configuration valid" not in r.stdout


def test_check_refuses_an_unknown_variable_naming_it(ops):
    r = ops.check(env={"TASKEXEC_FOO": "1"})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert re.search(r"^TASKEXEC_FOO: unknown variable", r.stderr, re.M), r.stderr


def test_check_refuses_a_policy_with_an_unknown_key_naming_file_and_line(ops):
    path, line = _broken_policy(ops)
    r = ops.check()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s:%d:" % (path, line) in r.stderr and "no_such_key" in r.stderr, r.stderr


def test_check_names_every_problem_at_once(ops):
    path, line = _broken_policy(ops)
    conf = ops.dir / "bad.conf"
    conf.write_text("TASKEXEC_MAX_RETRIES = 3\nTASKEXEC_NOPE = 1\n")
    r = ops.check(env={"TASKEXEC_CONCURRENCY": "zero", "TASKEXEC_FOO": "1", "TASKEXEC_CONFIG": str(conf)})
    assert r.returncode == 1
    for needle in ("TASKEXEC_CONCURRENCY", "TASKEXEC_FOO", "%s:2:" % conf, "%s:%d:" % (path, line)):
        assert needle in r.stderr, "%r not named in:\n%s" % (needle, r.stderr)
    assert r.stderr.rstrip().endswith("taskexecd: configuration refused"), r.stderr


def test_daemon_refuses_to_start_with_a_bad_variable(ops):
    d = ops.daemon(env={"TASKEXEC_CONCURRENCY": "zero"}, wait_healthy=False)
    d.expected_exit = True
    assert d.proc.wait(10) == 1
    refused = d.events("config.invalid")
    assert refused and "TASKEXEC_CONCURRENCY" in refused[0]["errors"], d.tail()


@pytest.mark.parametrize("name, value", [
    pytest.param("TASKEXEC_REDIS_URL", "http://127.0.0.1:6379", id="redis-url"),
    pytest.param("TASKEXEC_HTTP_LISTEN", "nonsense", id="http-listen"),
    pytest.param("TASKEXEC_JOB_USER", "no-such-user-ops", id="job-user"),
    pytest.param("TASKEXEC_PYTHON", "/nonexistent/python3", id="python"),
    pytest.param("TASKEXEC_DB_URL", "host=127.0.0.1 dbnme=taskexec", id="db-url-option"),
    pytest.param("TASKEXEC_DB_URL", "host='127.0.0.1 dbname=taskexec", id="db-url-quote"),
    pytest.param("TASKEXEC_VERIFY_KEYS", "/nonexistent/job.pub", id="verify-key-missing"),
])
def test_check_refuses_what_the_daemon_would_refuse(ops, name, value):
    r = ops.check(env={name: value})
    if name == "TASKEXEC_JOB_USER" and os.geteuid() != 0:
        # Not root, jobs run as the daemon's own user: the setting is unused
        # and neither --check nor start-up refuses it.
        assert r.returncode == 0, (r.returncode, r.stderr)
        return
    assert r.returncode == 1 and name in r.stderr, (r.returncode, r.stdout[-200:], r.stderr)


def test_check_refuses_a_verify_key_that_is_not_a_key(ops):
    bad = ops.dir / "not-a-key.pub"
    bad.write_text("-----BEGIN PUBLIC KEY-----\n")
    r = ops.check(env={"TASKEXEC_VERIFY_KEYS": str(bad)})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "TASKEXEC_VERIFY_KEYS: %s: not an Ed25519 public key" % bad in r.stderr, r.stderr


def test_a_config_line_without_equals_is_named_but_not_echoed(ops):
    conf = ops.dir / "typo.conf"
    conf.write_text("# a typo: the '=' is missing\nTASKEXEC_DB_URL postgresql://u:%s@db/x\n" % SECRET)
    r = ops.check(env={"TASKEXEC_CONFIG": str(conf)})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s:2: expected KEY=value" % conf in r.stderr, r.stderr
    assert SECRET not in r.stdout + r.stderr


def test_check_names_a_bad_db_url_once_beside_a_good_verify_key(ops):
    sec, pub = ops.dir / "k.key", ops.dir / "k.pub"
    assert ops.cli("keygen", sec, pub).returncode == 0
    r = ops.check(env={"TASKEXEC_DB_URL": "host=127.0.0.1 dbnme=x", "TASKEXEC_VERIFY_KEYS": str(pub)})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.count("TASKEXEC_DB_URL: ") == 1, r.stderr
    assert "TASKEXEC_VERIFY_KEYS" not in r.stderr, r.stderr


def test_check_names_why_an_oversized_verify_key_file_is_refused(ops):
    # A key file past 4 KB is refused for its size; errno was printed for a
    # result that carried the error, and read "Success".
    big = ops.dir / "big.pub"
    big.write_text("A" * 5000 + "\n")
    r = ops.check(env={"TASKEXEC_VERIFY_KEYS": str(big)})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "TASKEXEC_VERIFY_KEYS: %s: File too large" % big in r.stderr, r.stderr
    assert "Success" not in r.stderr, r.stderr


def test_sign_names_why_an_oversized_secret_key_file_is_refused(ops):
    big = ops.dir / "big.key"
    big.write_text("A" * 5000 + "\n")
    payload = ops.dir / "p.json"
    payload.write_text('{"job_id": "j1"}')
    r = ops.cli("sign", big, payload)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "%s: File too large" % big in r.stderr, r.stderr
    assert "Success" not in r.stderr, r.stderr


def test_sign_names_why_an_oversized_payload_is_refused(ops):
    sec, pub = ops.dir / "s.key", ops.dir / "s.pub"
    assert ops.cli("keygen", sec, pub).returncode == 0
    payload = ops.dir / "big.json"
    payload.write_text('{"pad": "%s"}' % ("x" * (2 << 20)))
    r = ops.cli("sign", sec, payload)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "%s: File too large" % payload in r.stderr, r.stderr
    assert "Success" not in r.stderr, r.stderr


# --------------------------------------------------------------------------
# --check --connect: Redis and PostgreSQL reached as the daemon reaches them


def connect_check(ops, env=None):
    return ops.taskexecd("--check", "--connect", env=env)


def errors_for(stderr, name):
    return [line for line in stderr.splitlines() if line.startswith(name + ": ")]


def fresh_database(services, name):
    services.psql("CREATE DATABASE %s" % name)
    return re.sub(r"/taskexec$", "/" + name, services.db_url)


def test_check_connect_reaches_redis_and_postgres(ops):
    ops.daemon()                # the schema is there, at this taskexecd's version
    r = connect_check(ops)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^# redis: ok \(PING answered at redis://127\.0\.0\.1:\d+/0\)$", r.stdout, re.M), r.stdout
    assert re.search(r"^# postgres: ok \(schema taskexec at version \d+\)$", r.stdout, re.M), r.stdout
    assert r.stdout.rstrip().endswith("# configuration valid"), r.stdout
    assert r.stderr == "", r.stderr


def test_check_alone_contacts_neither_service(ops):
    r = ops.check(env={"TASKEXEC_REDIS_URL": "redis://127.0.0.1:%d/0" % spare_port()})
    assert r.returncode == 0, r.stderr
    assert "# redis:" not in r.stdout and "# postgres:" not in r.stdout, r.stdout


def test_check_connect_names_a_redis_that_refuses_the_connection(ops):
    url = "redis://127.0.0.1:%d/0" % spare_port()
    r = connect_check(ops, env={"TASKEXEC_REDIS_URL": url})
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert errors_for(r.stderr, "TASKEXEC_REDIS_URL") == ["TASKEXEC_REDIS_URL: Redis at %s: Connection refused" % url]
    # PostgreSQL is checked all the same.
    assert "# postgres: ok" in r.stdout, r.stdout
    assert r.stderr.rstrip().endswith("taskexecd: Redis or PostgreSQL failed the connection check"), r.stderr


def test_check_connect_names_a_redis_password_refused_without_showing_it(ops):
    url = ops.services.redis_url.replace("redis://", "redis://:%s@" % SECRET)
    r = connect_check(ops, env={"TASKEXEC_REDIS_URL": url})
    assert r.returncode == 3, (r.returncode, r.stderr)
    (line,) = errors_for(r.stderr, "TASKEXEC_REDIS_URL")
    assert line.startswith("TASKEXEC_REDIS_URL: Redis at redis://:***@127.0.0.1:") and \
        ": authentication failed: " in line, line
    assert SECRET not in r.stdout + r.stderr


def test_check_connect_names_a_redis_database_that_does_not_exist(ops):
    url = re.sub(r"/0$", "/999", ops.services.redis_url)
    r = connect_check(ops, env={"TASKEXEC_REDIS_URL": url})
    assert r.returncode == 3, (r.returncode, r.stderr)
    (line,) = errors_for(r.stderr, "TASKEXEC_REDIS_URL")
    assert re.search(r"/999: SELECT 999: ", line), line


def test_check_connect_names_a_postgres_password_refused_without_showing_it(ops, secret_role):
    url = secret_role.db_url.replace(secret_role.password, SECRET)
    r = connect_check(ops, env={"TASKEXEC_DB_URL": url})
    assert r.returncode == 3, (r.returncode, r.stderr)
    (line,) = errors_for(r.stderr, "TASKEXEC_DB_URL")
    assert line.startswith("TASKEXEC_DB_URL: PostgreSQL at postgresql://opsuser:***@127.0.0.1:"), line
    assert "password authentication failed" in line, line
    assert SECRET not in r.stdout + r.stderr
    assert "# redis: ok" in r.stdout, r.stdout


def test_check_connect_names_a_postgres_that_refuses_the_connection(ops):
    url = "postgresql://taskexec@127.0.0.1:%d/taskexec" % spare_port()
    r = connect_check(ops, env={"TASKEXEC_DB_URL": url})
    assert r.returncode == 3, (r.returncode, r.stderr)
    (line,) = errors_for(r.stderr, "TASKEXEC_DB_URL")
    assert line.startswith("TASKEXEC_DB_URL: PostgreSQL at %s: " % url) and "Connection refused" in line, line


def test_check_connect_accepts_a_database_the_daemon_has_yet_to_create_the_schema_in(ops, services):
    url = fresh_database(services, "chk_fresh_%s" % uuid.uuid4().hex[:8])
    r = connect_check(ops, env={"TASKEXEC_DB_URL": url})
    assert r.returncode == 0, r.stderr
    assert "# postgres: ok (no schema taskexec yet: taskexecd creates it at start)" in r.stdout, r.stdout


def test_check_connect_refuses_a_schema_newer_than_this_taskexecd(ops, services):
    name = "chk_newer_%s" % uuid.uuid4().hex[:8]
    url = fresh_database(services, name)
    r = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c",
                        "CREATE SCHEMA taskexec; CREATE TABLE taskexec.schema_version (version int PRIMARY KEY);"
                        " INSERT INTO taskexec.schema_version VALUES (999)"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert r.returncode == 0, r.stdout
    r = connect_check(ops, env={"TASKEXEC_DB_URL": url})
    assert r.returncode == 3, (r.returncode, r.stderr)
    (line,) = errors_for(r.stderr, "TASKEXEC_DB_URL")
    assert re.search(r": schema taskexec is at version 999, newer than this taskexecd knows \(\d+\)$", line), line


def test_check_connect_with_a_refused_configuration_exits_1_connecting_nowhere(ops):
    r = connect_check(ops, env={"TASKEXEC_CONCURRENCY": "zero",
                                "TASKEXEC_REDIS_URL": "redis://127.0.0.1:%d/0" % spare_port()})
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "# redis:" not in r.stdout and not errors_for(r.stderr, "TASKEXEC_REDIS_URL"), r.stdout + r.stderr
    assert r.stderr.rstrip().endswith("taskexecd: configuration refused"), r.stderr


def test_help_documents_check_connect_and_its_exit_codes(ops):
    r = ops.taskexecd("--help")
    assert r.returncode == 0
    assert "--connect" in r.stdout and "exit 3 when" in r.stdout, r.stdout
