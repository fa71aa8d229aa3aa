/* SPDX-License-Identifier: ISC */
/* outbuf — whole lines to an output someone else reads (our stdout or stderr),
 * never with a blocking write while the loop runs: kept in a bounded buffer
 * while the reader is slow, dropped and counted when that is full. */
#ifndef TASKEXEC_OUTBUF_H
#define TASKEXEC_OUTBUF_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

struct outbuf;

/* An outbuf for fd (1 or 2) holding at most cap bytes; 0 or -errno, and
 * *ret untouched on failure.  A regular file is written directly (a disk
 * does not stall like a reader does). */
int outbuf_new(int fd, size_t cap, struct outbuf **ret);
/* Flush what is buffered when the fd becomes writable (EPOLLOUT on l), or
 * stop doing so (l NULL): lines are then only written as they are put. */
void outbuf_attach(struct outbuf *ob, struct loop *l);
/* Queue one whole line and write what the fd takes now; 0, or -ENOBUFS
 * when it was dropped (no room), -EPIPE when the reader is gone. */
int outbuf_put(struct outbuf *ob, const char *p, size_t n);
/* Wait up to timeout_ms (-1: no limit) for the buffer to empty; what is
 * still there then is dropped.  0 or -ETIMEDOUT. */
int outbuf_drain(struct outbuf *ob, int timeout_ms);
size_t outbuf_buffered(const struct outbuf *ob);
size_t outbuf_cap(const struct outbuf *ob);
/* Lines dropped so far. */
uint64_t outbuf_dropped(const struct outbuf *ob);
/* Called after each flush the loop triggered (to report drops, say). */
void outbuf_on_flush(struct outbuf *ob, void (*cb)(void *arg), void *arg);
/* Does not flush: outbuf_drain() first.  NULL is a no-op. */
void outbuf_free(struct outbuf *ob);

#endif
