# SPDX-License-Identifier: ISC
"""The cheapest possible jobs: what is measured is the executor, not the task."""
import time


def noop():
    return None


def stamp():
    """A no-op that returns the wall clock on entry: queue -> task code start."""
    return time.time()


def sleep_ms(ms):
    time.sleep(ms / 1000.0)
    return None
