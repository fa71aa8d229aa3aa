/* supervise — the life of one claimed job, as one state machine:
 *
 *   state      action                         next
 *   VALIDATE   parse, verify, check policy     CLAIM_DB | REJECT_DB
 *   REJECT_DB  taskexec.reject()              ACK
 *   CLAIM_DB   taskexec.claim()               RUN | ACK (already done) | DELAY (not due)
 *   RUN        one sandboxed attempt          RECORD
 *   RECORD     taskexec.finish()              ACK (terminal) | DELAY (retry) | REQUEUE (shutdown)
 *   ACK        LREM processing                DONE
 *   DELAY      processing -> delayed set      DONE
 *   REQUEUE    processing -> head of queue    DONE
 *
 * A step whose Redis or PostgreSQL call fails is tried again after a pause;
 * every step is safe to repeat, and the entry stays in our processing list
 * until ACK, DELAY or REQUEUE succeeded. */
#ifndef TASKEXEC_SUPERVISE_H
#define TASKEXEC_SUPERVISE_H

#include <stddef.h>

#include "attempt.h"
#include "daemon.h"

/* Take over a claimed entry "<priority>|<payload>". */
void supervise_start(struct daemon *d, const char *entry, size_t len);
/* Kill the running attempt of job_id (cancel) if it runs here. */
void supervise_cancel(struct daemon *d, const char *job_id);
/* Kill every running attempt; they are recorded as WHY. */
void supervise_stop_all(struct daemon *d, enum outcome_kind why);

#endif
