# SPDX-License-Identifier: ISC
"""Shared set-up for the seed task tests: the repository root on sys.path
(so `import tasks` finds the package under test) and fixtures for an
environment the task reads its configuration from."""

import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SAMPLE_EXPORTS = os.path.join(ROOT, "tasks", "f5portalupdate", "sample_exports")
MALFORMED_EXPORTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "fixtures", "malformed")


@pytest.fixture
def portal_db(tmp_path):
    """Path of a portal database that does not exist yet."""
    return str(tmp_path / "portal" / "portal.db")


@pytest.fixture
def configured(monkeypatch, portal_db):
    """Point the task at the shipped sample exports and a fresh database."""
    os.makedirs(os.path.dirname(portal_db))
    monkeypatch.setenv("F5PORTAL_SOURCE_DIR", SAMPLE_EXPORTS)
    monkeypatch.setenv("F5PORTAL_DB", portal_db)
    return portal_db


@pytest.fixture
def export_copy(tmp_path, monkeypatch, configured):
    """A writable copy of the sample exports the task is pointed at."""
    copy = str(tmp_path / "exports")
    shutil.copytree(SAMPLE_EXPORTS, copy)
    monkeypatch.setenv("F5PORTAL_SOURCE_DIR", copy)
    return copy
