# SPDX-License-Identifier: ISC
"""The observability and secrets tests run on the fixtures of tests/ops
(daemons with HTTP on, a throwaway Redis + PostgreSQL): that conftest is
loaded under another module name, and its fixtures are taken from it.

Jobs of this directory come from tasks_root/obstasks, put on the task path
next to tests/ops' roots by the `obs` fixture."""
import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
OPS = HERE.parent / "ops"
sys.path.insert(0, str(OPS))

_spec = importlib.util.spec_from_file_location("ops_conftest", OPS / "conftest.py")
ops_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ops_conftest)

ops_root = ops_conftest.ops_root
services = ops_conftest.services
ops = ops_conftest.ops
make_ops = ops_conftest.make_ops

TASKS_ROOT = HERE / "tasks_root"


@pytest.fixture
def obs(ops):
    """ops, with the package obstasks allowed and on the task path."""
    ops.env["TASKEXEC_TASKS_PATH"] += ":%s" % TASKS_ROOT
    ops.env["TASKEXEC_ALLOWED_MODULES"] += ",obstasks"
    return ops
