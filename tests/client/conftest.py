# SPDX-License-Identifier: ISC
"""Fixtures for the Python client's tests: the integration harness (real Redis,
real PostgreSQL, real daemons, `client`), taken from testlib.

The package under test is <repo>/client/taskexec, or the copy under
ITEST_CLIENT_PATH (e.g. a staged install's dist-packages).
"""
import os
import sys

import testlib

sys.path.insert(0, os.environ.get("ITEST_CLIENT_PATH", str(testlib.REPO / "client")))
globals().update(testlib.integration_fixtures())
