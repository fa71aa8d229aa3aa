# SPDX-License-Identifier: ISC
"""Fixtures for the per-job logs and progress tests: the integration harness
(real Redis, real PostgreSQL, real daemons, `client`), taken from testlib."""
import sys

import testlib

sys.path.insert(0, str(testlib.REPO / "client"))
globals().update(testlib.integration_fixtures())
