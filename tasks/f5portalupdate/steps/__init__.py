# SPDX-License-Identifier: ISC
"""Extract -> transform -> load steps of the F5 portal update, and their errors.

Every error raised for bad input or bad configuration derives from
``taskexec_task.NonRetryableError`` when that helper is importable (inside
taskexec), so the executor records the job FAILED at once instead of retrying
something that cannot succeed on a second try.  Outside taskexec (unit tests,
a manual run) a local stand-in takes its place.
"""

try:
    from taskexec_task import NonRetryableError
except ImportError:
    class NonRetryableError(Exception):
        """Stand-in for taskexec_task.NonRetryableError outside taskexec."""


class ConfigurationError(NonRetryableError, RuntimeError):
    """A required environment variable is missing or points nowhere usable."""


class InvalidParameterError(NonRetryableError, ValueError):
    """A job parameter has the wrong type or value."""


class UnknownCustomerError(NonRetryableError, LookupError):
    """The source directory holds no export for the customer."""


class MalformedExportError(NonRetryableError, ValueError):
    """An export file is not valid JSON or lacks a field of the right type.

    The message names the file and the field, e.g.
    ``/srv/exports/customer-42/pools.json: items[1].membersReference.items[0].address:
    missing``.
    """

    def __init__(self, path, field, problem):
        self.path = path
        self.field = field
        self.problem = problem
        if field:
            super().__init__(f"{path}: {field}: {problem}")
        else:
            super().__init__(f"{path}: {problem}")
