/* SPDX-License-Identifier: ISC */
/* outbuf — whole lines to an output someone else reads, without blocking. */
#include "outbuf.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct outbuf {
	int fd;                 /* our own description, or the target itself when direct */
	bool direct;            /* a regular file: plain blocking writes */
	bool sock;              /* a socket: send() with MSG_DONTWAIT */
	bool broken;            /* the reader is gone */
	bool watching;
	struct loop *loop;
	char *buf;
	size_t len, cap;
	uint64_t dropped;
	void (*flushed)(void *arg);
	void *flushed_arg;
};

int outbuf_new(int fd, size_t cap, struct outbuf **ret)
{
	struct outbuf *ob;
	struct stat st;
	char path[32];
	int own;

	if (fstat(fd, &st) < 0)
		return -errno;
	ob = xcalloc(1, sizeof(*ob));
	ob->cap = cap;
	if (S_ISREG(st.st_mode)) {
		ob->fd = fd;
		ob->direct = true;
		*ret = ob;
		return 0;
	}
	/* A description of our own: O_NONBLOCK on the fd itself would change it
	 * for every process that shares it (a terminal, the caller's pipe).  A
	 * socket (the journal's stream) cannot be reopened: send() to it with
	 * MSG_DONTWAIT instead. */
	ob->sock = S_ISSOCK(st.st_mode);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	own = ob->sock ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (own < 0) {
		int e = errno;

		free(ob);
		return -e;
	}
	ob->fd = own;
	ob->buf = xmalloc(cap);
	*ret = ob;
	return 0;
}

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t lines = 0;
	const char *nl;

	while (n && (nl = memchr(p, '\n', n))) {
		lines++;
		n -= (size_t)(nl + 1 - p);
		p = nl + 1;
	}
	return lines + (n ? 1 : 0);
}

static void on_writable(struct loop *l, int fd, uint32_t events, void *arg);

static void watch(struct outbuf *ob)
{
	if (ob->len && !ob->watching && ob->loop)
		ob->watching = loop_add(ob->loop, ob->fd, EPOLLOUT, on_writable, ob) == 0;
	else if (!ob->len && ob->watching) {
		loop_del(ob->loop, ob->fd);
		ob->watching = false;
	}
}

/* Write what the fd takes now. */
static void flush(struct outbuf *ob)
{
	size_t off = 0;

	while (off < ob->len) {
		ssize_t n = ob->sock ? send(ob->fd, ob->buf + off, ob->len - off, MSG_DONTWAIT | MSG_NOSIGNAL)
				     : write(ob->fd, ob->buf + off, ob->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			/* Nobody will ever read what is left. */
			ob->broken = true;
			ob->dropped += count_lines(ob->buf + off, ob->len - off);
			off = ob->len;
			break;
		}
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	memmove(ob->buf, ob->buf + off, ob->len - off);
	ob->len -= off;
	watch(ob);
}

static void on_writable(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct outbuf *ob = arg;

	flush(ob);
	if (ob->flushed)
		ob->flushed(ob->flushed_arg);
}

void outbuf_attach(struct outbuf *ob, struct loop *l)
{
	if (ob->direct)
		return;
	if (ob->watching) {
		loop_del(ob->loop, ob->fd);
		ob->watching = false;
	}
	ob->loop = l;
	watch(ob);
}

int outbuf_put(struct outbuf *ob, const char *p, size_t n)
{
	if (ob->direct) {
		int r = write_all(ob->fd, p, n);

		if (r < 0)
			ob->dropped++;
		return r;
	}
	if (ob->broken) {
		ob->dropped++;
		return -EPIPE;
	}
	if (n > ob->cap - ob->len) {
		ob->dropped++;
		return -ENOBUFS;
	}
	memcpy(ob->buf + ob->len, p, n);
	ob->len += n;
	/* While the loop waits for the fd, a write now could only fail again. */
	if (!ob->watching)
		flush(ob);
	return ob->broken ? -EPIPE : 0;
}

int outbuf_drain(struct outbuf *ob, int timeout_ms)
{
	int64_t until = now_ms() + timeout_ms;

	while (ob->len) {
		struct pollfd pfd = { .fd = ob->fd, .events = POLLOUT };
		int64_t left = until - now_ms();

		flush(ob);
		if (!ob->len)
			break;
		if (timeout_ms >= 0 && left <= 0)
			break;
		if (poll(&pfd, 1, timeout_ms < 0 ? -1 : (int)left) < 0 && errno != EINTR)
			break;
	}
	if (!ob->len)
		return 0;
	ob->dropped += count_lines(ob->buf, ob->len);
	ob->len = 0;
	watch(ob);
	return -ETIMEDOUT;
}

size_t outbuf_buffered(const struct outbuf *ob)
{
	return ob->len;
}

size_t outbuf_cap(const struct outbuf *ob)
{
	return ob->cap;
}

uint64_t outbuf_dropped(const struct outbuf *ob)
{
	return ob->dropped;
}

void outbuf_on_flush(struct outbuf *ob, void (*cb)(void *arg), void *arg)
{
	ob->flushed = cb;
	ob->flushed_arg = arg;
}

void outbuf_free(struct outbuf *ob)
{
	if (!ob)
		return;
	if (ob->watching)
		loop_del(ob->loop, ob->fd);
	if (!ob->direct)
		close(ob->fd);
	free(ob->buf);
	free(ob);
}
