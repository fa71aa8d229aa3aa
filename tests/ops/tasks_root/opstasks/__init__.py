# SPDX-License-Identifier: ISC
"""Tasks for tests/ops: jobs that print, log, fail and sleep on purpose."""
