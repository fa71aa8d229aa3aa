# SPDX-License-Identifier: ISC
"""Job text that tries to drive the operator's terminal when status, show,
list or submit --wait print it (issue 8 item 10)."""
import sys

EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\rFAKE\x7f"


def fail_evil():
    print("stdout " + EVIL)
    print("stderr " + EVIL, file=sys.stderr)
    raise ValueError(EVIL + "\nCOMPLETED")


def return_evil():
    return {"text": EVIL}
