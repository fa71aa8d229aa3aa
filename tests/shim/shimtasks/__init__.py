# SPDX-License-Identifier: ISC
"""Tasks for the shim suite (tests/shim): each one exercises one promise of
taskexec-tasks(7).  They are run only through `taskexec run shimtasks.…`,
never imported by the tests."""
