# SPDX-License-Identifier: ISC
"""The seed task end to end through the sandboxed local runner:

    build/taskexec run tasks.f5portalupdate.main:run customer_id=42 --task-type etl

The etl policy passes F5PORTAL_SOURCE_DIR=${STATE_DIR}/f5exports and
F5PORTAL_DB=${STATE_DIR}/portal/portal.db; each test points
TASKEXEC_STATE_DIR at a fresh directory holding a copy of the sample exports
(the tasks package's, which production never reads).  These tests need `make` to have
built build/taskexec and fail, not skip, when it has not.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile

import pytest
from testlib import seed_exports

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASKEXEC = os.environ.get("SANDBOX_SUITE_TASKEXEC", os.path.join(ROOT, "build", "taskexec"))
ENTRY = "tasks.f5portalupdate.main:run"
SUMMARY_PREFIX = "taskexec: summary "


@pytest.fixture
def empty_state_dir():
    # Not pytest's tmp_path: its parents are 0700, and when the tests run as
    # root the job runs as nobody, which must reach ${STATE_DIR}/portal.
    directory = tempfile.mkdtemp(prefix="taskexec-seed-state-", dir="/tmp")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def state_dir(empty_state_dir):
    seed_exports(empty_state_dir)
    return empty_state_dir


def taskexec_run(state_dir, *arguments):
    if not os.access(TASKEXEC, os.X_OK):
        pytest.fail(f"{TASKEXEC} is missing or not executable: run `make` "
                    "first; these tests run the seed task through the "
                    "sandboxed runner", pytrace=False)
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("TASKEXEC_", "F5PORTAL_"))}
    env["TASKEXEC_STATE_DIR"] = state_dir
    result = subprocess.run(
        [TASKEXEC, "run", ENTRY, *arguments, "--task-type", "etl"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    lines = result.stderr.rstrip("\n").split("\n")
    assert lines[-1].startswith(SUMMARY_PREFIX), result.stderr
    summary = json.loads(lines[-1][len(SUMMARY_PREFIX):])
    return result, summary


def completed_with(state_dir, *arguments):
    result, summary = taskexec_run(state_dir, *arguments)
    assert result.returncode == 0, result.stderr
    assert summary["outcome"] == "completed", summary
    return json.loads(result.stdout)


def test_sandboxed_first_run_updates_every_row_in_the_policy_database(state_dir):
    assert completed_with(state_dir, "customer_id=42") == {
        "updated_rows": 17, "customer_id": 42}
    db = sqlite3.connect(os.path.join(state_dir, "portal", "portal.db"))
    try:
        assert db.execute("SELECT count(*) FROM portal_rows WHERE "
                          "customer_id = 42").fetchone() == (17,)
    finally:
        db.close()


def test_sandboxed_second_run_updates_nothing_and_full_rebuild_everything(state_dir):
    completed_with(state_dir, "customer_id=42")
    assert completed_with(state_dir, "customer_id=42") == {
        "updated_rows": 0, "customer_id": 42}
    assert completed_with(state_dir, "customer_id=42", "full_rebuild=true") == {
        "updated_rows": 17, "customer_id": 42}


def test_sandboxed_run_logs_certificate_warnings(state_dir):
    result, _ = taskexec_run(state_dir, "customer_id=42")
    assert result.returncode == 0, result.stderr
    assert any(line.startswith("log: WARNING ")
               and "legacy-mail.acme-retail.example.crt expired" in line
               for line in result.stderr.splitlines()), result.stderr


def test_sandboxed_unknown_customer_fails_with_a_clear_error(state_dir):
    result, summary = taskexec_run(state_dir, "customer_id=99")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert summary["outcome"] == "exception", summary
    assert "unknown customer 99: no export under " in summary["error"], summary
    assert summary["error_type"].endswith("UnknownCustomerError"), summary
    assert summary["retryable"] is False, summary


def test_the_shipped_etl_policy_reads_exports_from_the_state_directory_not_the_samples(empty_state_dir):
    # Production must not run on the bundled sample data: with nothing in
    # ${STATE_DIR}/f5exports the job fails, not retried, naming where it looked.
    result, summary = taskexec_run(empty_state_dir, "customer_id=42")
    assert result.returncode == 1, result.stderr
    assert summary["outcome"] == "exception" and summary["retryable"] is False, summary
    assert summary["error"] == ("tasks.f5portalupdate.steps.ConfigurationError: F5PORTAL_SOURCE_DIR=%s: "
                                "not a directory" % os.path.join(empty_state_dir, "f5exports")), summary
