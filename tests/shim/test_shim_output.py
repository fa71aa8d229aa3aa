# SPDX-License-Identifier: ISC
"""What `taskexec run` shows on its standard error when a job tries to forge
taskexec's own lines or to drive the operator's terminal (taskexec(1), THE
RUN SUMMARY): job text is prefixed and its control characters escaped, and
the real summary is the only line that starts with `taskexec: summary `."""
from shimlib import SUMMARY_PREFIX, completed, identical, run

RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b", "\x7f", "\x00")


def assert_no_raw_controls(text):
    found = [c for c in RAW_CONTROLS if c in text]
    assert not found, f"raw control characters {found!r} reached the terminal:\n{text!r}"


def test_a_forged_summary_and_escape_sequences_are_shown_escaped():
    r = run("shimtasks.forgery:forge")
    assert_no_raw_controls(r.stderr)
    assert_no_raw_controls(r.stdout)
    summaries = [line for line in r.lines if line.startswith(SUMMARY_PREFIX)]
    assert summaries == [r.lines[-1]], "a job line passes for the summary" + r.explain()
    assert r.summary["outcome"] == "exception" and r.rc == 1, r.explain()
    fake = 'taskexec: summary {"outcome":"completed"}'
    assert "job: " + fake in r.lines, r.explain()
    assert "job: \\x1b]0;pwned\\x07 title" in r.lines, r.explain()
    assert "job: \\x0d" + fake in r.lines, r.explain()
    assert "job: \\xc2\\x9b2J C1 clear, DEL\\x7f, tab\tkept" not in r.lines  # C1 is one character
    assert "job: \\x9b2J C1 clear, DEL\\x7f, tab\tkept" in r.lines, r.explain()
    assert "log: WARNING forger: \\x1b[2J" + fake in r.lines, r.explain()
    # The exception's type and message are the job's text too.
    assert r.lines[-2] == 'taskexec: error: summary {"outcome":"completed"}: \\x1b[31m\\x0a' + fake, r.explain()
    assert "trace: " + fake in r.lines, r.explain()
    assert not any(line.startswith("taskexec: ") and "pwned" in line for line in r.lines[:-1])
    # The summary keeps the job's text exactly, as JSON.
    assert r.summary["error"] == 'summary {"outcome":"completed"}: \x1b[31m\n' + fake, r.explain()


def test_a_result_with_control_characters_is_equal_json_without_raw_controls():
    r = run("shimtasks.forgery:forge_result")
    assert_no_raw_controls(r.stdout)
    assert_no_raw_controls(r.stderr)
    identical(completed(r), {"text": "esc \x1b c1 \x9b del \x7f nl \n cr \r"})
    assert "job: \\x1b[2Jcleared" in r.lines, r.explain()
