# SPDX-License-Identifier: ISC
"""Resource abuse: memory, CPU, signals, output floods, oversized results."""

import os
import signal


def memory_bomb():
    blob = bytearray()
    while True:
        blob += b"\xa5" * (16 << 20)


def cpu_loop():
    n = 0
    while True:
        n += 1


def ignore_sigterm():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    n = 0
    while True:
        n += 1


def _write_all(fd, chunk, total):
    written = 0
    view = memoryview(chunk)
    while written < total:
        written += os.write(fd, view[: min(len(chunk), total - written)])
    return written


def flood_stdout(total=1 << 30):
    """`total` bytes of 1 KiB lines on stdout, in 1 MiB writes."""
    line = b"x" * 1023 + b"\n"
    return {"written": _write_all(1, line * 1024, total)}


def long_line(total=100 << 20):
    """`total` bytes on stdout with no newline at all."""
    return {"written": _write_all(1, b"y" * (1 << 20), total)}


def huge_result(size=1 << 20):
    return "r" * size


def flood_stderr_forever():
    """Print lines to stderr until killed."""
    line = b"x" * 200 + b"\n"
    while True:
        os.write(2, line)
