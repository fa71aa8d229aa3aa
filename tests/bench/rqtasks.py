"""The RQ equivalents of benchtasks.noop, for the side-by-side in bench.py.

RQ imports this module in its work-horse by name (`rqtasks.noop`); bench.py
puts tests/bench on PYTHONPATH for the rq workers.
"""
import time


def noop():
    return None


def sleep_ms(ms):
    time.sleep(ms / 1000.0)
    return None
