# SPDX-License-Identifier: ISC
"""taskexec_task describes the running job (taskexec-tasks(7), The
taskexec_task module): job_id, attempt (from 1) and task_type."""
import json

from shimlib import completed, identical, run


def test_context_of_a_default_run():
    r = run("shimtasks.context:where")
    result = completed(r)
    assert isinstance(result["job_id"], str) and result["job_id"] == r.summary["job_id"], r.explain()
    identical(result, {"job_id": r.summary["job_id"], "attempt": 1, "task_type": "ad_hoc"})


def test_context_follows_task_type():
    r = run("shimtasks.context:where", task_type="event_driven")
    identical(completed(r), {"job_id": r.summary["job_id"], "attempt": 1, "task_type": "event_driven"})


def test_context_of_a_json_payload():
    payload = {"job_id": "shim-ctx-1", "task_type": "maintenance", "module_path": "shimtasks.context",
               "method_name": "where"}
    r = run(None, stdin=json.dumps(payload))
    identical(completed(r), {"job_id": "shim-ctx-1", "attempt": 1, "task_type": "maintenance"})
    assert r.summary["job_id"] == "shim-ctx-1"
