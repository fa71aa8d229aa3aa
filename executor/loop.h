/* SPDX-License-Identifier: ISC */
/* loop — the one event loop: epoll for fds, a short list of deadlines for timers. */
#ifndef TASKEXEC_LOOP_H
#define TASKEXEC_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;
struct timer;
typedef void (*loop_fd_cb)(struct loop *l, int fd, uint32_t events, void *arg);
typedef void (*loop_timer_cb)(struct loop *l, void *arg);

/* 0 or -errno; *ret_loop is untouched on failure. */
int loop_new(struct loop **ret_loop) __attribute__((warn_unused_result));
void loop_free(struct loop *l);
/* Watch fd for EPOLLIN/EPOLLOUT; 0 or -errno.  An fd is watched at most once. */
int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg);
int loop_mod(struct loop *l, int fd, uint32_t events);
/* Stop watching fd; safe from inside any callback. */
void loop_del(struct loop *l, int fd);
/* Call cb once at the monotonic time at_ms; the handle is valid until it fires or is cancelled. */
struct timer *loop_timer(struct loop *l, int64_t at_ms, loop_timer_cb cb, void *arg);
void loop_timer_cancel(struct loop *l, struct timer *t);
/* Wait for and dispatch one round of events, at most max_wait_ms (-1: no limit). */
int loop_run_once(struct loop *l, int max_wait_ms);

#endif
