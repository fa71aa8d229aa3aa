# SPDX-License-Identifier: ISC
"""Logging and output (taskexec-tasks(7), Logging and output; taskexec(1),
run): records that pass the root logger (INFO) are shown on stderr as
'log: LEVEL logger: message'; the task's prints as 'job: …'; stdout carries
only the result."""
from shimlib import completed, run


def test_logging_records_are_shown_on_stderr():
    r = run("shimtasks.logs:warn")
    assert completed(r) == "logged"
    assert "log: WARNING x: hello é" in r.lines, r.explain()
    assert "log: INFO x: info passes at 100%" in r.lines, r.explain()
    assert "debug is below INFO" not in r.stderr, r.explain()
    assert r.stdout == '"logged"\n', r.explain()


def test_a_logger_set_lower_passes_debug():
    r = run("shimtasks.logs:lowered")
    completed(r)
    assert "log: DEBUG chatty: debug shown" in r.lines, r.explain()


def test_basic_config_does_nothing():
    r = run("shimtasks.logs:basic_config")
    assert completed(r) == 1, "the root logger should have exactly the one handler" + r.explain()
    assert [line for line in r.lines if "only once" in line] == ["log: INFO cfg: only once"], r.explain()
    assert "OWN FORMAT" not in r.stderr and "still filtered" not in r.stderr, r.explain()


def test_prints_go_to_the_log_not_the_result():
    r = run("shimtasks.logs:prints")
    assert completed(r) == {"result": "only this"}
    assert "job: to stdout" in r.lines and "job: to stderr" in r.lines, r.explain()
    assert r.stdout == '{"result":"only this"}\n', r.explain()


def test_logging_is_not_imported_unless_the_task_does():
    assert completed(run("shimtasks.logs:never_imports_logging")) is False
