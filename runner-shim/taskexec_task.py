"""Helpers a taskexec task may import (see taskexec-tasks(7)).

    from taskexec_task import NonRetryableError

    def run(customer_id: int):
        if customer_id < 1:
            raise NonRetryableError("customer_id must be positive")  # FAILED at once, no retry

job_id, attempt and task_type describe the running job (attempt counts from 1).
"""

job_id = None
attempt = None
task_type = None


class NonRetryableError(Exception):
    """Raise this (or a subclass) when running the job again cannot help."""
