# SPDX-License-Identifier: ISC
"""packaging/taskexec.bash-completion: it offers every command taskexec
knows and each command's options.  bash-completion's helpers are stubbed, so
the test needs bash only."""
import re
import subprocess
from pathlib import Path

import pytest

COMPLETION = Path(__file__).resolve().parents[2] / "packaging" / "taskexec.bash-completion"
STUBS = r'''
_init_completion() { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; cur=${words[cword]}; prev=${words[cword-1]}; }
_filedir() { COMPREPLY=(FILE); }
'''


def complete(*words, env=None):
    script = STUBS + 'source "%s"\nCOMP_WORDS=(%s)\nCOMP_CWORD=%d\n_taskexec\nprintf "%%s\\n" "${COMPREPLY[@]}"\n' % (
        COMPLETION, " ".join("'%s'" % w for w in words), len(words) - 1)
    r = subprocess.run(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       env=env, timeout=10)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return set(r.stdout.split())


def test_completion_offers_every_command_of_the_usage(bare):
    usage = bare("--help").stdout
    listed = {m.group(1) for m in re.finditer(r"^  ([a-z]+) ", usage, re.M)}
    assert listed and complete("taskexec", "") >= listed | {"--help", "--version"}


@pytest.mark.parametrize("words,expected", [
    (("taskexec", "list", "--"), {"--status", "--task-type", "--since", "--limit", "--json", "--help"}),
    (("taskexec", "list", "--status", ""), {"QUEUED", "RUNNING", "COMPLETED", "FAILED"}),
    (("taskexec", "prune", "--"), {"--older-than", "--dry-run", "--help"}),
    (("taskexec", "submit", "x:y", "--wa"), {"--wait", "--wait-timeout"}),
    (("taskexec", "help", "pr"), {"prune"}),
    (("taskexec", "sign", ""), {"FILE"}),
])
def test_completion_of_options_and_values(words, expected):
    assert complete(*words) == expected


def test_completion_of_task_types_reads_the_policy_directory(tmp_path):
    for name in ("etl", "ad_hoc"):
        (tmp_path / ("%s.policy" % name)).write_text("")
    assert complete("taskexec", "run", "x:y", "--task-type", "", env={"TASKEXEC_POLICY_DIR": str(tmp_path)}) \
        == {"etl", "ad_hoc"}
