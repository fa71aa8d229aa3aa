# SPDX-License-Identifier: ISC
"""Set-up for the shim suite: a world-traversable temporary state, scratch and
policy directory (jobs run as `nobody` when the suite runs as root), and the
shimtasks package beside this file on TASKEXEC_TASKS_PATH."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import shimlib  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def shim_env():
    base = Path(tempfile.mkdtemp(prefix="taskexec-shim-", dir="/tmp"))
    base.chmod(0o755)  # the job user must reach the scratch directory below
    shutil.copytree(shimlib.REPO / "policy", base / "policy")
    (base / "state").mkdir(mode=0o755)
    scratch = base / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)
    shimlib.ENV.update({
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TASKEXEC_ALLOWED_MODULES": "shimtasks",
        "TASKEXEC_TASKS_PATH": f"{shimlib.SUITE}:{shimlib.REPO}",
        "TASKEXEC_STATE_DIR": str(base / "state"),
        "TASKEXEC_SCRATCH_DIR": str(scratch),
        "TASKEXEC_POLICY_DIR": str(base / "policy"),
    })
    yield shimlib.ENV
    shimlib.ENV.clear()
    shutil.rmtree(base, ignore_errors=True)
