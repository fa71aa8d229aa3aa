# SPDX-License-Identifier: ISC
"""The exceptions of the taskexec client.

Bad arguments to :meth:`taskexec.Client.enqueue` raise :class:`ValueError`
naming the job member at fault, and :meth:`taskexec.Job.wait` raises the
built-in :class:`TimeoutError`; everything else the client refuses is a
:class:`TaskexecError`.
"""


class TaskexecError(Exception):
    """Something taskexec refused or could not do (the message says what)."""


class JobNotFound(TaskexecError, LookupError):
    """No job has this id in ``taskexec.jobs``."""


class JobStateError(TaskexecError):
    """The job is not in a status that allows the operation (e.g. retrying a
    COMPLETED job); ``.status`` holds the status it is in."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status
