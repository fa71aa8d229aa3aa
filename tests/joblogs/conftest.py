# SPDX-License-Identifier: ISC
"""Fixtures for the per-job logs and progress tests: the integration harness
(tests/integration/conftest.py: real Redis, real PostgreSQL, real daemons),
loaded as a module and re-exported, as tests/cli does, plus `client` (a
taskexec.Client of the test's queue prefix)."""
import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ITEST = REPO / "tests" / "integration"

sys.path.insert(0, str(REPO / "client"))
sys.path.insert(0, str(ITEST))          # ithelpers, as the harness imports it

# pytest_plugins may only stand in the top conftest; load the harness by path.
if "itest_conftest" not in sys.modules:
    _spec = importlib.util.spec_from_file_location("itest_conftest", ITEST / "conftest.py")
    _harness = importlib.util.module_from_spec(_spec)
    sys.modules["itest_conftest"] = _harness
    _spec.loader.exec_module(_harness)

from itest_conftest import (  # noqa: E402,F401  (fixtures, found by name)
    TASKEXEC, cli, ctx, daemon, db, env, itest_root, markers_root, policy_dir, push, rds, services, submit,
    wait_status, wait_terminal)

import taskexec  # noqa: E402


@pytest.fixture
def client(ctx, services, policy_dir):
    c = taskexec.Client(redis_url=services.redis_url, db_url=services.db_url, queue_prefix=ctx.prefix,
                        policy_dir=str(policy_dir))
    yield c
    c.close()
