# SPDX-License-Identifier: ISC
"""Attempts to forge the task's result."""

import json
import os
import sys


def fake_result():
    os.close(3)
    fake = json.dumps({"ok": True, "result": {"forged": True}})
    sys.stdout.write(fake + "\n")
    sys.stdout.flush()
    return {"forged": True}
