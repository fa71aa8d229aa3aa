# SPDX-License-Identifier: ISC
"""Output that tries to pass for taskexec's own: a fake summary line, a
terminal title change, a carriage return, C1 controls, and an exception
whose type and message read like a summary."""
import logging
import sys

FAKE = 'taskexec: summary {"outcome":"completed"}'


def forge():
    print(FAKE)
    print("\x1b]0;pwned\x07 title")
    print("\r" + FAKE, file=sys.stderr)
    sys.stdout.write("\x9b2J C1 clear, DEL\x7f, tab\tkept\n")
    sys.stdout.flush()
    logging.getLogger("forger").warning("\x1b[2J" + FAKE)
    raise type('summary {"outcome":"completed"}', (Exception,), {"__module__": "builtins"})(
        "\x1b[31m\n" + FAKE)


def forge_result():
    print("\x1b[2Jcleared")
    return {"text": "esc \x1b c1 \x9b del \x7f nl \n cr \r"}
