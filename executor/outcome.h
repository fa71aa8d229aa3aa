/* SPDX-License-Identifier: ISC */
/* outcome — how an attempt ended (taskexec-protocol(7)): the kinds and their names. */
#ifndef TASKEXEC_OUTCOME_H
#define TASKEXEC_OUTCOME_H

enum outcome_kind {
	OUT_COMPLETED, OUT_EXCEPTION, OUT_TIMEOUT, OUT_MEMORY, OUT_VIOLATION, OUT_SIGNAL, OUT_CRASH,
	OUT_REJECTED, OUT_TOO_LARGE, OUT_EXECUTOR_LOST, OUT_SHUTDOWN, OUT_CANCELLED,
	OUT_UNSTORABLE,         /* PostgreSQL refused what the job sent back */
	OUT_EXECUTOR_FAULT,     /* ours, not the job's: it goes back to its queue uncharged */
};
#define OUT_LAST OUT_EXECUTOR_FAULT
const char *outcome_name(enum outcome_kind k);

#endif
