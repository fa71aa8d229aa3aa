/* SPDX-License-Identifier: ISC */
/* Unit tests for executor/attempt.h: what attempt_start leaves behind when
 * the loop cannot watch the attempt it has just launched. */
#include "unit.h"
#include "attempt.h"
#include "config.h"
#include "loop.h"
#include "policy.h"
#include "sandbox.h"
#include "util.h"

#include <dirent.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* While set, the loop cannot watch a pidfd: this definition stands in for
 * libc's in this test program, so loop_add sees what a full epoll would
 * give it (ENOSPC past max_user_watches). */
static bool refuse_pidfds;

static bool is_pidfd(int fd)
{
	char link[64], target[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return strstr(target, "pidfd") != NULL;
}

int epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
	if (refuse_pidfds && op == EPOLL_CTL_ADD && is_pidfd(fd)) {
		errno = ENOSPC;
		return -1;
	}
	return (int)syscall(SYS_epoll_ctl, ep, op, fd, ev);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	assert_non_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

static void on_line(void *ctx, int stream, const char *line, size_t len) {}
static void on_event(void *ctx, const char *line, size_t len) {}

static void on_done(void *ctx, struct outcome *o)
{
	*(struct outcome **)ctx = o;
}

static void an_attempt_whose_pidfd_cannot_be_watched_is_refused_and_reaped(void **state)
{
	static const struct attempt_ops ops = { .line = on_line, .event = on_event, .done = on_done };
	struct policy_vars vars = { "/tmp", TASKEXEC_SRCDIR };
	struct sandbox sb = { 0 };
	struct policy_set ps;
	struct launch launch;
	struct outcome *out = NULL;
	struct attempt *a;
	struct config c;
	struct loop *l = NULL;
	char *err = NULL;
	siginfo_t si = { 0 };
	int before, r, e;

	if (config_load(&c, NULL, 0, &err) < 0)
		fail_msg("config_load: %s", err);
	free(c.shim_dir);
	c.shim_dir = xstrdup(TASKEXEC_SRCDIR "/runner-shim");
	if (sandbox_init(&sb, &c, &err) < 0)
		fail_msg("sandbox_init: %s", err);
	if (policy_load_dir(TASKEXEC_SRCDIR "/policy", &vars, &ps, &err) < 0)
		fail_msg("policy_load_dir: %s", err);
	assert_int_equal(loop_new(&l), 0);
	launch = (struct launch){ .policy = policy_find(&ps, "ad_hoc"), .roots = (char *const[]){ TASKEXEC_SRCDIR, NULL },
				  .input = "{}", .input_len = 2, .job_id = "unwatched" };
	assert_non_null(launch.policy);

	/* Twice: the first launch also opens the sandbox's cache of system
	 * paths, which stays open by design. */
	for (int round = 0; round < 2; round++) {
		before = count_fds();
		refuse_pidfds = true;
		a = attempt_start(l, &sb, &launch, 10000, 10240, &ops, &out, &err);
		refuse_pidfds = false;

		/* Refused with a reason (the daemon records it as its own fault)... */
		assert_null(a);
		assert_contains(err, "cannot watch the attempt");
		free(err);
		err = NULL;
		/* ...and nothing of it is left: no child to reap, no fd open. */
		r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG);
		e = errno;
		if (r == 0 && si.si_pid)
			fail_msg("child %d was left to reap", (int)si.si_pid);
		if (r != -1 || e != ECHILD)
			fail_msg("waitid: %d, %s", r, strerror(e));
		if (round)
			assert_int_equal(count_fds(), before);
	}

	loop_free(l);
	policy_set_free(&ps);
	sandbox_free(&sb);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_attempt_whose_pidfd_cannot_be_watched_is_refused_and_reaped),
	};

	seed_json();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
