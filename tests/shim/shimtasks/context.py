# SPDX-License-Identifier: ISC
"""taskexec_task describes the running job."""
import taskexec_task


def where():
    return {"job_id": taskexec_task.job_id, "attempt": taskexec_task.attempt,
            "task_type": taskexec_task.task_type}
