# SPDX-License-Identifier: ISC
"""A module whose name starts with an underscore: taskexec must refuse it."""


def run():
    print("PRIVATE-" + "MODULE-RAN")
    return {"ran": True}
