# SPDX-License-Identifier: ISC
"""Tasks for `make bench` (tests/bench/bench.py): as small as a job can be."""
