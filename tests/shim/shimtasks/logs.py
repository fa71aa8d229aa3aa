# SPDX-License-Identifier: ISC
"""Logging and output: records go to the job log, prints are not results."""


def warn():
    import logging

    logging.getLogger("x").warning("hello %s", "é")
    logging.getLogger("x").info("info passes at %d%%", 100)
    logging.getLogger("x").debug("debug is below INFO")
    return "logged"


def lowered():
    import logging

    log = logging.getLogger("chatty")
    log.setLevel(logging.DEBUG)
    log.debug("debug %s", "shown")
    return "ok"


def basic_config():
    import logging

    logging.basicConfig(level=logging.DEBUG, format="OWN FORMAT %(message)s")
    logging.getLogger("cfg").info("only once")
    logging.getLogger("cfg").debug("still filtered")
    return len(logging.getLogger().handlers)


def prints():
    import sys

    print("to stdout")
    print("to stderr", file=sys.stderr)
    return {"result": "only this"}


def never_imports_logging():
    import sys

    return "logging" in sys.modules
