# SPDX-License-Identifier: ISC
"""A task module that imports what it did not define: none of the imported
names may be an entry point, only what is defined here."""
import os
import os.path
import threading
from os import remove
from shimtasks.entries import Widget, plain


def own(path):
    return {"own": os.path.basename(path)}


class Worker(threading.Thread):
    """Defined here, but start/run come from threading.Thread."""

    def mine(self):
        return {"mine": type(self).__name__}


class LocalWidget(Widget):
    """Defined here on a base class from another module."""

    def local(self):
        return {"local": True}


class Holder:
    """A class of this module that stores an imported function."""
    drop = staticmethod(remove)
