/* SPDX-License-Identifier: ISC */
/* attempt — watch one running attempt: drain its pipes, enforce its deadline,
 * and classify how it ended. */

#include "attempt.h"
#include "log.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096
#define EVENT_MAX_BYTES 65536
#define RESULT_DOC_MAX (1 << 20)

static const char *const outcome_names[] = {
	[OUT_COMPLETED] = "completed", [OUT_EXCEPTION] = "exception", [OUT_TIMEOUT] = "timeout",
	[OUT_MEMORY] = "memory", [OUT_VIOLATION] = "violation", [OUT_SIGNAL] = "signal",
	[OUT_CRASH] = "crash", [OUT_REJECTED] = "rejected", [OUT_TOO_LARGE] = "too_large",
	[OUT_EXECUTOR_LOST] = "executor_lost", [OUT_SHUTDOWN] = "shutdown", [OUT_CANCELLED] = "cancelled",
	[OUT_UNSTORABLE] = "unstorable", [OUT_EXECUTOR_FAULT] = "executor_fault",
};

const char *outcome_name(enum outcome_kind k)
{
	return outcome_names[k];
}

struct linebuf {
	char *buf;
	size_t len, cap;
};

struct attempt {
	struct loop *loop;
	struct proc proc;
	const struct attempt_ops *ops;
	void *ctx;
	int64_t started, timeout_ms;
	uint64_t result_max;
	struct timer *deadline;
	bool timed_out, term_sent;
	int listener;                   /* seccomp notifications, once the child sent it */
	char *violation;                /* the syscall that broke the policy */
	char *launch_err;
	enum outcome_kind stopped;      /* OUT_COMPLETED unless attempt_stop() was called */
	struct linebuf lines[2], events;
	struct tail tails[2];
	uint64_t out_cap, out_sent, suppressed_lines, suppressed_bytes;
	char *result;
	size_t result_len;
	bool result_overflow;
};

/* Past the cap every further line is only counted, however short: what is
 * logged is then a prefix of what the task wrote.  Progress records pass
 * regardless: each replaces the one before, so the receiver coalesces them
 * and a task that filled its output still reports how far it got. */
static void forward(struct attempt *a, int stream, const char *p, size_t n)
{
	bool progress = stream == PROC_EVENTS && n >= sizeof(ATTEMPT_PROGRESS_PREFIX) - 1 &&
			!memcmp(p, ATTEMPT_PROGRESS_PREFIX, sizeof(ATTEMPT_PROGRESS_PREFIX) - 1);

	if (!progress && (a->suppressed_lines || !a->out_cap || n > a->out_cap - a->out_sent)) {
		a->suppressed_lines++;
		a->suppressed_bytes += n;
		return;
	}
	if (!progress)
		a->out_sent += n;
	if (stream == PROC_EVENTS)
		a->ops->event(a->ctx, p, n);
	else
		a->ops->line(a->ctx, stream, p, n);
}

static void emit_lines(struct attempt *a, int stream, struct linebuf *lb, const char *p, size_t n, bool flush)
{
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;

		if (lb->len + take > lb->cap)
			take = lb->cap - lb->len;
		memcpy(lb->buf + lb->len, p, take);
		lb->len += take;
		p += take;
		n -= take;
		if (n > 0 && *p == '\n') {
			p++;
			n--;
		} else if (lb->len < lb->cap) {
			break;
		}
		/* a whole line, or a line too long to keep in one piece */
		forward(a, stream, lb->buf, lb->len);
		lb->len = 0;
	}
	if (flush && lb->len) {
		forward(a, stream, lb->buf, lb->len);
		lb->len = 0;
	}
}

/* Read what is there; returns true at EOF. */
static bool drain(struct attempt *a, int which)
{
	char buf[65536];
	int fd = a->proc.fd[which];

	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0)
			return errno != EAGAIN && errno != EINTR;
		if (n == 0)
			return true;
		switch (which) {
		case PROC_STDOUT:
		case PROC_STDERR:
			tail_push(&a->tails[which], buf, (size_t)n);
			emit_lines(a, which, &a->lines[which], buf, (size_t)n, false);
			break;
		case PROC_EVENTS:
			emit_lines(a, which, &a->events, buf, (size_t)n, false);
			break;
		case PROC_RESULT:
			if (a->result_len + (size_t)n > RESULT_DOC_MAX) {
				a->result_overflow = true;
				break;
			}
			memcpy(a->result + a->result_len, buf, (size_t)n);
			a->result_len += (size_t)n;
			break;
		}
	}
	return false;
}

static void on_pipe(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct attempt *a = arg;

	for (int i = 0; i < 4; i++)
		if (a->proc.fd[i] == fd && drain(a, i))
			loop_del(l, fd);
}

static void kill_group(struct attempt *a, int sig);

static void on_notify(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct attempt *a = arg;
	uint64_t id = 0;
	char *name = (events & EPOLLIN) ? sandbox_notif_recv(fd, &id) : NULL;

	if (name) {
		/* Kill first, answer after: no thread of the job sees the call return. */
		kill_group(a, SIGKILL);
		sandbox_notif_deny(fd, id);
		if (!a->violation)
			a->violation = name;
		else
			free(name);
	}
	if (events & (EPOLLHUP | EPOLLERR))
		loop_del(l, fd);
}

static void kill_group(struct attempt *a, int sig)
{
	/* The child leads its own session and process group. */
	if (kill(-a->proc.pid, sig) < 0 && kill(a->proc.pid, sig) < 0 && errno != ESRCH)
		log_msg(LOG_ERROR, "job.kill_failed", "cannot signal job process %d: %s (is CAP_KILL missing?)",
			(int)a->proc.pid, strerror(errno));
}

static void on_deadline(struct loop *l, void *arg)
{
	struct attempt *a = arg;

	if (!a->term_sent) {
		a->timed_out = true;
		a->term_sent = true;
		kill_group(a, SIGTERM);
		a->deadline = loop_timer(l, now_ms() + ATTEMPT_KILL_GRACE_MS, on_deadline, a);
		return;
	}
	a->deadline = NULL;
	kill_group(a, SIGKILL);
}

struct outcome *outcome_new(enum outcome_kind k, const char *error)
{
	struct outcome *o = xcalloc(1, sizeof(*o));

	o->kind = k;
	o->error = error ? xstrdup(error) : NULL;
	o->exit_code = -1;
	return o;
}

void outcome_free(struct outcome *o)
{
	if (!o)
		return;
	free(o->error);
	free(o->error_type);
	free(o->traceback);
	free(o->syscall);
	free(o->result);
	free(o->stdout_tail);
	free(o->stderr_tail);
	free(o);
}

static const char *jstr(json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

#define OK_PREFIX "{\"ok\":true,\"result\":"

/* Whether JSON text holds the escape \u0000 (not an escaped backslash
 * followed by "u0000"). */
static bool has_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 6 <= n && !memcmp(s + i + 2, "0000", 4))
			return true;
		i++;    /* skip the escaped character */
	}
	return false;
}

/* Turn the shim's result document into the outcome. */
static void classify_doc(struct attempt *a, struct outcome *o)
{
	json_error_t err;
	json_t *doc, *ok;

	if (a->result_overflow) {
		o->kind = OUT_CRASH;
		o->error = xasprintf("result document over %d bytes", RESULT_DOC_MAX);
		return;
	}
	if (!a->result_len) {
		o->kind = OUT_CRASH;
		o->retryable = true;
		if (o->exit_code > 0)
			o->error = xasprintf("shim exited with code %d without a result", o->exit_code);
		else
			o->error = xstrdup("no result from task (fd 3 closed without a result document)");
		if (o->exit_code > 0) {
			free(o->error);
			o->error = xasprintf("no result from task (the shim exited with code %d)", o->exit_code);
		}
		return;
	}
	/* Success is written as exactly OK_PREFIX <value> "}": the value is kept
	 * as the shim encoded it (Python's floats, integers of any size), checked
	 * only for being one JSON value, and measured as the task author is told. */
	if (a->result_len > sizeof(OK_PREFIX) && !memcmp(a->result, OK_PREFIX, sizeof(OK_PREFIX) - 1) &&
	    a->result[a->result_len - 1] == '}') {
		const char *raw = a->result + sizeof(OK_PREFIX) - 1;
		size_t n = a->result_len - sizeof(OK_PREFIX);
		json_t *v = json_loadb(raw, n, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &err);

		if (!v) {
			o->kind = OUT_CRASH;
			o->error = xasprintf("invalid result document: %s", err.text);
		} else if (n > a->result_max) {
			o->kind = OUT_TOO_LARGE;
			o->error_type = xstrdup("ResultTooLarge");
			o->error = xasprintf("result too large: %zu bytes > %llu", n, (unsigned long long)a->result_max);
		} else if (has_nul_escape(raw, n)) {
			/* The shim refuses these itself: PostgreSQL's jsonb cannot hold them. */
			o->kind = OUT_CRASH;
			o->error = xstrdup("invalid result document: a string holds \\u0000");
		} else {
			o->kind = OUT_COMPLETED;
			o->result = xstrndup(raw, n);
		}
		json_decref(v);
		return;
	}
	doc = json_loadb(a->result, a->result_len, 0, &err);
	ok = doc ? json_object_get(doc, "ok") : NULL;
	if (!json_is_false(ok)) {
		o->kind = OUT_CRASH;
		o->error = xasprintf("invalid result document: %s",
				     !doc ? err.text : json_is_true(ok) ? "not as the shim writes it" : "no \"ok\" member");
		json_decref(doc);
		return;
	}
	{
		const char *type = jstr(doc, "type"), *msg = jstr(doc, "message"), *tb = jstr(doc, "traceback");
		const char *kind = jstr(doc, "kind");

		o->error_type = xstrdup(type ? type : "Exception");
		o->traceback = tb ? xstrdup(tb) : NULL;
		o->retryable = json_is_true(json_object_get(doc, "retryable"));
		if (kind && !strcmp(kind, "too_large")) {
			o->kind = OUT_TOO_LARGE;
			o->error = xstrdup(msg ? msg : "result too large");
			o->retryable = false;
		} else {
			o->kind = !strcmp(o->error_type, "MemoryError") ? OUT_MEMORY : OUT_EXCEPTION;
			o->error = msg && *msg ? xasprintf("%s: %s", o->error_type, msg) : xstrdup(o->error_type);
		}
	}
	json_decref(doc);
}

static void on_remover_exit(struct loop *l, int fd, uint32_t events, void *arg)
{
	siginfo_t si;

	waitid(P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG);
	loop_del(l, fd);
	close(fd);
}

static void finish(struct attempt *a)
{
	struct outcome *o = outcome_new(OUT_CRASH, NULL);
	const struct attempt_ops *ops = a->ops;
	void *ctx = a->ctx;
	struct rusage ru = { 0 };
	int status = 0;

	bool server_died = proc_wait(&a->proc, &status, &ru) < 0;

	if (a->listener >= 0) {
		loop_del(a->loop, a->listener);
		close(a->listener);
	}
	for (int i = 0; i < 4; i++) {
		if (a->proc.fd[i] >= 0) {
			while (!drain(a, i))
				;
			loop_del(a->loop, a->proc.fd[i]);
		}
	}
	loop_del(a->loop, proc_exit_fd(&a->proc));
	if (a->deadline)
		loop_timer_cancel(a->loop, a->deadline);
	emit_lines(a, PROC_STDOUT, &a->lines[0], NULL, 0, true);
	emit_lines(a, PROC_STDERR, &a->lines[1], NULL, 0, true);
	emit_lines(a, PROC_EVENTS, &a->events, NULL, 0, true);

	o->duration_ms = now_ms() - a->started;
	o->cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000LL +
		    (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
	o->max_rss_kb = ru.ru_maxrss;
	o->landlock = a->proc.landlock;
	o->stdout_tail = tail_string(&a->tails[0]);
	o->stderr_tail = tail_string(&a->tails[1]);
	o->suppressed_lines = a->suppressed_lines;
	o->suppressed_bytes = a->suppressed_bytes;
	if (WIFEXITED(status))
		o->exit_code = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		o->signal = WTERMSIG(status);

	if (a->launch_err) {
		/* The child failed before its exec: no job code ran, the fault
		 * is the executor's (taskexec-protocol(7), executor_fault). */
		o->kind = OUT_EXECUTOR_FAULT;
		o->retryable = true;
		o->error = xasprintf("launch failed: %s", a->launch_err);
	} else if (a->violation) {
		o->kind = OUT_VIOLATION;
		o->syscall = a->violation;
		a->violation = NULL;
		o->error = xasprintf("sandbox violation: %s", o->syscall);
	} else if (server_died && !a->timed_out && a->stopped == OUT_COMPLETED) {
		/* Its warm server died under it: nothing the job did (it
		 * cannot signal the server), so not charged; it reruns. */
		o->kind = OUT_EXECUTOR_FAULT;
		o->retryable = true;
		o->exit_code = -1;
		o->signal = 0;
		o->error = xstrdup("warm server died during the attempt");
	} else if (a->stopped != OUT_COMPLETED) {
		o->kind = a->stopped;
		o->retryable = a->stopped == OUT_SHUTDOWN;
		o->error = xstrdup(a->stopped == OUT_CANCELLED ? "cancelled" : "stopped by executor shutdown");
	} else if (a->timed_out) {
		o->kind = OUT_TIMEOUT;
		o->retryable = true;
		o->error = xasprintf("timeout after %llds%s", (long long)(a->timeout_ms / 1000),
				     o->signal == SIGKILL ? " (killed after ignoring SIGTERM)" : "");
	} else if (o->signal == SIGSYS) {
		/* Killed by the kernel itself: a non-native (i386/x32) number, one
		 * newer than this build knows, or a disallowed argument. */
		o->kind = OUT_VIOLATION;
		o->error = xstrdup("sandbox violation: syscall outside the allow-list (non-native, unknown, or a "
				   "disallowed argument)");
	} else if (o->signal == SIGXCPU || (o->signal == SIGKILL && o->cpu_ms >= 1000 &&
					    o->cpu_ms + 1500 >= (int64_t)a->timeout_ms)) {
		o->kind = OUT_TIMEOUT;
		o->retryable = true;
		o->error = xstrdup("cpu time limit exceeded");
	} else if (o->signal) {
		o->kind = OUT_SIGNAL;
		o->retryable = true;
		o->error = xasprintf("killed by signal %d (%s)", o->signal, sigabbrev_np(o->signal) ?: "?");
	} else {
		classify_doc(a, o);
	}

	{
		int rm = proc_cleanup_async(&a->proc);
		siginfo_t si;

		/* Where the remover cannot be watched, wait for it here rather
		 * than leave a zombie and its pidfd behind. */
		if (rm >= 0 && (ops->wait_cleanup || loop_add(a->loop, rm, EPOLLIN, on_remover_exit, NULL) < 0)) {
			while (waitid(P_PIDFD, (id_t)rm, &si, WEXITED) < 0 && errno == EINTR)
				;
			close(rm);
		}
	}
	for (int i = 0; i < 2; i++) {
		tail_free(&a->tails[i]);
		free(a->lines[i].buf);
	}
	free(a->events.buf);
	free(a->result);
	free(a->violation);
	free(a->launch_err);
	free(a);
	ops->done(ctx, o);
}

static void on_exit_fd(struct loop *l, int fd, uint32_t events, void *arg)
{
	finish(arg);
}

/* Watch the child's listener, pipes and pidfd: 0, or -errno with none of
 * them left watched. */
static int watch(struct loop *l, struct attempt *a)
{
	int r = 0;

	if (a->proc.listener >= 0)
		r = loop_add(l, a->proc.listener, EPOLLIN, on_notify, a);
	for (int i = 0; i < 4 && r >= 0; i++)
		r = loop_add(l, a->proc.fd[i], EPOLLIN, on_pipe, a);
	if (r >= 0)
		r = loop_add(l, proc_exit_fd(&a->proc), EPOLLIN, on_exit_fd, a);
	if (r < 0) {
		/* loop_del of an fd that was never added does nothing. */
		loop_del(l, a->proc.listener);
		for (int i = 0; i < 4; i++)
			loop_del(l, a->proc.fd[i]);
		loop_del(l, proc_exit_fd(&a->proc));
	}
	return r;
}

struct attempt *attempt_start(struct loop *l, struct sandbox *sb, const struct launch *launch,
			      int64_t timeout_ms, uint64_t result_max, const struct attempt_ops *ops,
			      void *ctx, char **ret_err)
{
	struct attempt *a = xcalloc(1, sizeof(*a));
	int r;

	a->loop = l;
	a->ops = ops;
	a->ctx = ctx;
	a->timeout_ms = timeout_ms;
	a->result_max = result_max;
	a->out_cap = ops->cap_output ? launch->policy->output_bytes : UINT64_MAX;
	a->started = now_ms();
	if (sandbox_spawn(sb, launch, &a->proc, ret_err) < 0) {
		free(a);
		return NULL;
	}
	r = watch(l, a);
	if (r < 0) {
		/* Unwatched, its end would never be seen and its slot never freed:
		 * end it now; the caller records the executor's fault.  The child
		 * was just killed, so the wait is short (finish() waits the same). */
		*ret_err = xasprintf("cannot watch the attempt: %s", strerror(-r));
		kill_group(a, SIGKILL);
		proc_wait(&a->proc, NULL, NULL);
		proc_cleanup(&a->proc);
		free(a);
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		tail_init(&a->tails[i], ATTEMPT_TAIL_BYTES);
		a->lines[i].buf = xmalloc(LINE_MAX_BYTES);
		a->lines[i].cap = LINE_MAX_BYTES;
	}
	a->events.buf = xmalloc(EVENT_MAX_BYTES);
	a->events.cap = EVENT_MAX_BYTES;
	a->result = xmalloc(RESULT_DOC_MAX);
	/* From here on every seccomp notification is a violation. */
	a->listener = a->proc.listener;
	a->proc.listener = -1;
	a->launch_err = a->proc.launch_err;
	a->proc.launch_err = NULL;
	a->deadline = loop_timer(l, a->started + timeout_ms, on_deadline, a);
	return a;
}

void attempt_stop(struct attempt *a, enum outcome_kind why)
{
	a->stopped = why;
	kill_group(a, SIGKILL);
}

pid_t attempt_pid(const struct attempt *a)
{
	return a->proc.pid;
}

json_t *outcome_json(const struct outcome *o, const char *job_id)
{
	json_t *j = json_object();

	json_object_set_new(j, "job_id", job_id ? json_string(job_id) : json_null());
	json_object_set_new(j, "outcome", json_string(outcome_name(o->kind)));
	json_object_set_new(j, "error", o->error ? json_string(o->error) : json_null());
	json_object_set_new(j, "error_type", o->error_type ? json_string(o->error_type) : json_null());
	json_object_set_new(j, "retryable", json_boolean(o->retryable));
	json_object_set_new(j, "exit_code", o->exit_code >= 0 ? json_integer(o->exit_code) : json_null());
	json_object_set_new(j, "signal", o->signal ? json_integer(o->signal) : json_null());
	json_object_set_new(j, "syscall", o->syscall ? json_string(o->syscall) : json_null());
	json_object_set_new(j, "duration_ms", json_integer(o->duration_ms));
	json_object_set_new(j, "cpu_ms", json_integer(o->cpu_ms));
	json_object_set_new(j, "max_rss_kb", json_integer(o->max_rss_kb));
	json_object_set_new(j, "landlock", json_boolean(o->landlock));
	json_object_set_new(j, "traceback", o->traceback ? json_string(o->traceback) : json_null());
	return j;
}
