# SPDX-License-Identifier: ISC
"""Shared by every suite: testlib on the path, and each test's reports kept on
its item (item.rep_setup/rep_call/rep_teardown) so fixtures can print the
daemon's logs when the test failed."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
