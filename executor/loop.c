/* SPDX-License-Identifier: ISC */
/* loop — the one event loop: epoll for fds, a short list of deadlines for timers.
 * Timers are few (a watchdog per running job, a heartbeat, a retry promoter),
 * so a sorted list beats a heap in code and in speed. */
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct watch {
	int fd;
	bool dead;
	loop_fd_cb cb;
	void *arg;
	struct watch *next;     /* in the all-list or the graveyard */
};

struct timer {
	int64_t at;
	loop_timer_cb cb;
	void *arg;
	struct timer *next;
};

struct loop {
	int ep;
	struct watch *watches;
	struct watch *graveyard;        /* freed after the round that removed them */
	struct timer *timers;           /* sorted by at */
};

int loop_new(struct loop **ret_loop)
{
	struct loop *l = xcalloc(1, sizeof(*l));

	l->ep = epoll_create1(EPOLL_CLOEXEC);
	if (l->ep < 0) {
		int r = -errno;

		free(l);
		return r;
	}
	*ret_loop = l;
	return 0;
}

static void free_list(struct watch *w)
{
	while (w) {
		struct watch *n = w->next;

		free(w);
		w = n;
	}
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	close(l->ep);
	free_list(l->watches);
	free_list(l->graveyard);
	while (l->timers) {
		struct timer *n = l->timers->next;

		free(l->timers);
		l->timers = n;
	}
	free(l);
}

static struct watch *find(struct loop *l, int fd, struct watch ***ret_link)
{
	for (struct watch **p = &l->watches; *p; p = &(*p)->next)
		if ((*p)->fd == fd) {
			if (ret_link)
				*ret_link = p;
			return *p;
		}
	return NULL;
}

int loop_add(struct loop *l, int fd, uint32_t events, loop_fd_cb cb, void *arg)
{
	struct watch *w = xcalloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events, .data.ptr = w };

	w->fd = fd;
	w->cb = cb;
	w->arg = arg;
	if (epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int e = errno;

		free(w);
		return -e;
	}
	w->next = l->watches;
	l->watches = w;
	return 0;
}

int loop_mod(struct loop *l, int fd, uint32_t events)
{
	struct watch *w = find(l, fd, NULL);
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (!w)
		return -ENOENT;
	return epoll_ctl(l->ep, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

void loop_del(struct loop *l, int fd)
{
	struct watch **link, *w = find(l, fd, &link);

	if (!w)
		return;
	epoll_ctl(l->ep, EPOLL_CTL_DEL, fd, NULL);
	*link = w->next;
	w->dead = true;
	w->next = l->graveyard;
	l->graveyard = w;
}

struct timer *loop_timer(struct loop *l, int64_t at_ms, loop_timer_cb cb, void *arg)
{
	struct timer *t = xcalloc(1, sizeof(*t)), **p;

	t->at = at_ms;
	t->cb = cb;
	t->arg = arg;
	for (p = &l->timers; *p && (*p)->at <= at_ms; p = &(*p)->next)
		;
	t->next = *p;
	*p = t;
	return t;
}

void loop_timer_cancel(struct loop *l, struct timer *t)
{
	for (struct timer **p = &l->timers; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			free(t);
			return;
		}
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
	struct epoll_event evs[32];
	int64_t now = now_ms();
	int wait = max_wait_ms, n;

	if (l->timers) {
		int64_t d = l->timers->at - now;

		if (d < 0)
			d = 0;
		if (wait < 0 || d < wait)
			wait = (int)d;
	}
	n = epoll_wait(l->ep, evs, ARRAY_SIZE(evs), wait);
	if (n < 0 && errno != EINTR)
		return -errno;
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;

		if (!w->dead)
			w->cb(l, w->fd, evs[i].events, w->arg);
	}
	free_list(l->graveyard);
	l->graveyard = NULL;
	now = now_ms();
	while (l->timers && l->timers->at <= now) {
		struct timer *t = l->timers;

		l->timers = t->next;
		t->cb(l, t->arg);
		free(t);
	}
	return 0;
}
