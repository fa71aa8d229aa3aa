/* SPDX-License-Identifier: ISC */
/* warm — warm servers: per isolation domain and policy, an interpreter
 * started once through the launch in spawn.c that forks each attempt on
 * request; the request, its replies and the server's pool. */

#include "sandbox_int.h"
#include "domain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- warm servers ----------------------------------------------------------
 *
 * A policy with [start] mode = warm runs its attempts as forks of a warm
 * server: the shim started with --serve through the launch of spawn.c (its
 * domain's uid, namespaces, rlimits, Landlock), plus a pid namespace of its
 * own whose pid 1 it is, under the STAGE_SERVER filter.  It imports what
 * every attempt needs once, never imports task code, and per attempt:
 *
 *   executor -> server   "R" + fds: job memfd, stdout, stderr, result, events,
 *                        status socket, setup memfd (see write_setup)
 *   server: fork; the child takes the fds, loads its own STAGE_JOB filter
 *           (sending its listener on the status socket) and only then runs
 *           the job, exactly as a fresh interpreter would
 *   server -> executor   "P" + the child's pidfd
 *   server -> executor   "X" + wait status and rusage, once it reaped it;
 *                        then it empties its /tmp for the next attempt
 *
 * Nothing of a job passes through the server's own memory: the job and its
 * secrets are read by the child from the memfds, so no later fork inherits
 * them.  A server that dies, stalls or breaks protocol is replaced, and the
 * attempt it held is the executor's fault, never the job's. */

struct warm {
	struct sandbox *sb;
	char *key;                      /* the policy it serves, as policy_print shows it */
	pid_t pid;
	int pidfd, ctl, listener, uid_lock;
	char *root;                     /* the host directory its root is mounted on */
	bool landlock, busy, retire;
	long forks, max_forks;
	int64_t started, max_age_ms;
};

#define WARM_REPLY_TIMEOUT_MS 10000

static char *policy_key(const struct policy *p)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return xstrdup(p->name);
	policy_print(p, f);
	fclose(f);
	return buf;
}

/* Stop a server and everything in its pid namespace, and forget it. */
static void warm_kill(struct warm *w)
{
	struct sandbox *sb = w->sb;
	siginfo_t si;

	if (w->pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
		while (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED) < 0 && errno == EINTR)
			;
	}
	close_nointr(w->pidfd);
	close_nointr(w->ctl);
	close_nointr(w->listener);
	close_nointr(w->uid_lock);      /* its uid's processes died with its namespace */
	if (w->root) {
		rm_rf_at(AT_FDCWD, w->root);
		free(w->root);
	}
	free(w->key);
	for (size_t i = 0; i < sb->n_warm; i++)
		if (sb->warm[i] == w) {
			sb->warm[i] = sb->warm[--sb->n_warm];
			break;
		}
	free(w);
}

void sandbox_warm_flush(struct sandbox *sb, bool all)
{
	for (size_t i = sb->n_warm; i-- > 0;) {
		struct warm *w = sb->warm[i];

		if (w->busy && !all)
			w->retire = true;
		else
			warm_kill(w);
	}
}

static int warm_start(struct sandbox *sb, const struct launch *l, char *key, struct warm **ret, char **ret_err)
{
	const struct policy *p = l->policy;
	struct child_args a = { 0 };
	struct domain_plan plan = { 0 };
	int ctl[2] = { -1, -1 }, status[2] = { -1, -1 }, null = -1, errfd = -1, ruleset = -1, uid_lock = -1;
	char *root = NULL, **envp = NULL, *launch_err = NULL, id[48];
	char *argv[] = { sb->python, "-I", "-S", "-B", sb->shim_path, "--serve", NULL };
	struct warm *w = NULL;
	uid_t uid = sb->uid;
	gid_t gid = sb->gid;
	pid_t pid = -1;
	int pidfd = -1, listener = -1, r = -1;

	snprintf(id, sizeof(id), "warm-%d-%u", (int)getpid(), ++sb->warm_seq);
	if (filter_for(sb, p->network, STAGE_SERVER, ret_err) < 0 || filter_for(sb, p->network, STAGE_JOB, ret_err) < 0 ||
	    make_write_paths(sb, p, ret_err) < 0 || make_scratch(sb, id, &root, ret_err) < 0)
		goto out;
	if (sb->drop_uid) {
		uid_lock = take_uid(sb, &uid);
		if (uid_lock < 0) {
			*ret_err = xasprintf("no free uid in TASKEXEC_JOB_UIDS: all %u run a job", sb->uid_slots);
			goto out;
		}
		gid = (gid_t)uid;
	}
	plan_domain(sb, l, root, uid, gid, &plan);
	/* Its stdout goes nowhere, its stderr (tracebacks of the server itself;
	 * it never holds job data) to ours. */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	errfd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (null < 0 || errfd < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, status) < 0) {
		*ret_err = xasprintf("warm server: %s", strerror(errno));
		goto out;
	}
	if (landlock_build(sb, l, NULL, &ruleset, ret_err) < 0)
		goto out;
	envp = build_env(p, "/tmp");
	child_args_init(&a, sb, p, uid, gid);
	a.in_fd = null;
	a.out_fd[0] = null;
	a.out_fd[1] = errfd;
	a.out_fd[2] = ctl[1];
	a.out_fd[3] = null;
	a.ruleset_fd = ruleset;
	a.status_fd = status[1];
	a.scratch = root;
	a.domain = &plan;
	a.newpid = true;
	/* The CPU limit is each attempt's own (it sets soft and hard itself):
	 * the server's forks would otherwise add up against it. */
	a.rl_cpu = (struct rlimit){ RLIM_INFINITY, RLIM_INFINITY };
	a.bpf = sb->bpf[STAGE_SERVER][p->network];     /* no pid in it to patch */
	a.bpf_len = sb->bpf_len[STAGE_SERVER][p->network];
	a.argv = argv;
	a.envp = envp;
	if (clone_child(sb, &a, plan.clone_flags | CLONE_NEWPID, status, &pid, &pidfd, &listener, &launch_err,
			ret_err) < 0)
		goto out;
	w = xcalloc(1, sizeof(*w));
	w->sb = sb;
	w->pid = pid;
	w->pidfd = pidfd;
	w->ctl = ctl[0];
	ctl[0] = -1;
	w->listener = listener;
	w->uid_lock = uid_lock;
	uid_lock = -1;
	w->root = root;
	root = NULL;
	w->landlock = ruleset >= 0;
	w->key = key;
	key = NULL;
	w->max_forks = p->warm_forks;
	w->max_age_ms = p->warm_age_ms;
	w->started = now_ms();
	sb->warm = xreallocarray(sb->warm, sb->n_warm + 1, sizeof(struct warm *));
	sb->warm[sb->n_warm++] = w;
	if (launch_err) {
		*ret_err = xasprintf("warm server: %s", launch_err);
		warm_kill(w);
		goto out;
	}
	*ret = w;
	r = 0;
out:
	free(key);
	free(launch_err);
	close_nointr(uid_lock);
	domain_plan_free(&plan);
	close_nointr(ctl[0]);
	close_nointr(ctl[1]);
	close_nointr(status[0]);
	close_nointr(status[1]);
	close_nointr(null);
	close_nointr(errfd);
	close_nointr(ruleset);
	strv_free(envp);
	if (root) {
		rm_rf_at(AT_FDCWD, root);
		free(root);
	}
	return r;
}

/* An idle server for this policy, or a new one: expired and surplus idle
 * servers are stopped first. */
static int warm_take(struct sandbox *sb, const struct launch *l, struct warm **ret, char **ret_err)
{
	char *key = policy_key(l->policy);
	int64_t now = now_ms();
	size_t idle_other = 0;

	for (size_t i = sb->n_warm; i-- > 0;) {
		struct warm *w = sb->warm[i];

		if (!w->busy && (w->retire || w->forks >= w->max_forks || now - w->started >= w->max_age_ms))
			warm_kill(w);
	}
	for (size_t i = 0; i < sb->n_warm; i++) {
		struct warm *w = sb->warm[i];

		if (!w->busy && !strcmp(w->key, key)) {
			free(key);
			*ret = w;
			return 0;
		}
		idle_other += !w->busy;
	}
	for (size_t i = sb->n_warm; i-- > 0 && idle_other && sb->n_warm >= sb->warm_max;)
		if (!sb->warm[i]->busy) {
			warm_kill(sb->warm[i]);
			idle_other--;
		}
	return warm_start(sb, l, key, ret, ret_err);
}

/* What the child reads from its setup memfd before anything else, in the
 * native byte order: u32 count, then per variable u32 length + "NAME=value";
 * u32 count, then per secret u32 + file name, u32 + value; u64 soft and hard
 * CPU limit; u32 instructions + its STAGE_JOB seccomp program. */
static void put_u32(FILE *f, uint32_t v) { fwrite(&v, sizeof(v), 1, f); }

static int write_setup(struct sandbox *sb, const struct launch *l, char *const *envp, const struct secret *secrets,
		       size_t n_secrets, int *ret_fd, char **ret_err)
{
	const struct policy *p = l->policy;
	uint64_t cpu[2] = { (uint64_t)((p->cpu_ms + 999) / 1000), (uint64_t)((p->cpu_ms + 999) / 1000 + 2) };
	unsigned short n = sb->bpf_len[STAGE_JOB][p->network];
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int fd = -1;

	if (!f) {
		*ret_err = xasprintf("setup: %s", strerror(errno));
		return -1;
	}
	put_u32(f, (uint32_t)strv_len((char **)envp));
	for (char *const *e = envp; *e; e++) {
		put_u32(f, (uint32_t)strlen(*e));
		fwrite(*e, 1, strlen(*e), f);
	}
	put_u32(f, (uint32_t)n_secrets);
	for (size_t i = 0; i < n_secrets; i++) {
		put_u32(f, (uint32_t)strlen(secrets[i].file));
		fwrite(secrets[i].file, 1, strlen(secrets[i].file), f);
		put_u32(f, (uint32_t)secrets[i].len);
		fwrite(secrets[i].value, 1, secrets[i].len, f);
	}
	fwrite(cpu, sizeof(cpu), 1, f);
	put_u32(f, n);
	fwrite(sb->bpf[STAGE_JOB][p->network], sizeof(struct sock_filter), n, f);
	if (fclose(f) != 0) {
		*ret_err = xstrdup("setup: out of memory");
		free(buf);
		return -1;
	}
	fd = memfd_create("taskexec-setup", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0 || write_all(fd, buf, len) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		*ret_err = xasprintf("setup memfd: %s", strerror(errno));
		close_nointr(fd);
		fd = -1;
	}
	explicit_bzero(buf, len);
	free(buf);
	*ret_fd = fd;
	return fd < 0 ? -1 : 0;
}

/* Wait for a message on the server's control socket: its length (the tag in
 * buf[0]), with an fd in *ret_fd if one came; 0 on EOF or after the timeout,
 * -1 on error.  A notification on the server's own listener breaks the
 * wait: the server, or a child still under the server's filter, broke it. */
static ssize_t warm_recv(struct warm *w, void *buf, size_t size, int *ret_fd, int64_t timeout_ms, char **ret_violation)
{
	int64_t deadline = now_ms() + timeout_ms;

	if (ret_fd)
		*ret_fd = -1;
	for (;;) {
		struct pollfd pf[2] = { { w->ctl, POLLIN, 0 }, { w->listener, POLLIN, 0 } };
		int64_t left = deadline - now_ms();
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { buf, size };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				      .msg_controllen = sizeof(cbuf) };
		ssize_t n;

		if (left <= 0)
			return 0;
		n = poll(pf, w->listener >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno != EINTR)
			return -1;
		if (n <= 0)
			continue;
		if (pf[1].revents & POLLIN) {
			uint64_t id;
			char *name = sandbox_notif_recv(w->listener, &id);

			if (name) {
				syscall(SYS_pidfd_send_signal, w->pidfd, SIGKILL, NULL, 0);
				sandbox_notif_deny(w->listener, id);
				if (ret_violation && !*ret_violation)
					*ret_violation = name;
				else
					free(name);
				return 0;
			}
		}
		if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = recvmsg(w->ctl, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm), sizeof(int));
				if (ret_fd && *ret_fd < 0)
					*ret_fd = fd;
				else
					close(fd);
			}
		return n;
	}
}

/* The pid a pidfd refers to, in our pid namespace. */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], line[128];
	FILE *f;
	int pid = -1;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", pidfd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Pid: %d", &pid) == 1)
			break;
	fclose(f);
	return pid;
}

/* One attempt on server W.  0; -EAGAIN when the server was gone before it
 * forked (the caller starts a new one: the attempt never began); or -1. */
static int warm_request(struct sandbox *sb, struct warm *w, const struct launch *l, struct proc *ret, char **ret_err)
{
	const struct policy *p = l->policy;
	struct attempt_io io = ATTEMPT_IO_NONE;
	int setup = -1, pidfd = -1, r = -1;
	struct secret *secrets = NULL;
	size_t n_secrets = 0;
	char **envp = NULL, *violation = NULL, tag = 'R', reply[8];
	ssize_t n;

	if (make_write_paths(sb, p, ret_err) < 0 || read_secrets(p, &secrets, &n_secrets, ret_err) < 0 ||
	    make_io(l, &io, ret_err) < 0)
		goto out;
	envp = build_env(p, "/tmp");
	if (write_setup(sb, l, envp, secrets, n_secrets, &setup, ret_err) < 0)
		goto out;
	{
		int fds[7] = { io.in_fd, io.pipe[0][1], io.pipe[1][1], io.pipe[2][1], io.pipe[3][1], io.status[1], setup };
		char cbuf[CMSG_SPACE(sizeof(fds))] = { 0 };
		struct iovec iov = { &tag, 1 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				      .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(fds));
		memcpy(CMSG_DATA(cm), fds, sizeof(fds));
		if (sendmsg(w->ctl, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			*ret_err = xasprintf("warm server: send: %s", strerror(errno));
			r = -EAGAIN;
			goto out;
		}
	}
	/* Only the child may hold its ends now: their EOFs are its end. */
	io_close_child_ends(&io);
	w->busy = true;
	n = warm_recv(w, reply, sizeof(reply), &pidfd, WARM_REPLY_TIMEOUT_MS, &violation);
	if (n != 1 || reply[0] != 'P' || pidfd < 0) {
		*ret_err = violation ? xasprintf("warm server: sandbox violation: %s", violation)
				     : xstrdup("warm server: no fork within 10 seconds, or it died");
		r = n == 0 && !violation ? -EAGAIN : -1;
		w->retire = true;
		goto out;
	}
	ret->pid = pidfd_pid(pidfd);
	ret->pidfd = pidfd;
	pidfd = -1;
	ret->server = w;
	/* The child, still under the server's filter, sets itself up and sends
	 * the listener of its own filter; a notification on the server's
	 * listener meanwhile is a fault of our code, not the job's. */
	launch_handshake(ret->pid, io.status[0], true, w->listener, &ret->listener, &ret->launch_err);
	io_give(&io, ret);
	ret->landlock = w->landlock;
	ret->domain = true;
	w->forks++;
	r = 0;
out:
	free(violation);
	close_nointr(pidfd);
	io_close(&io);
	close_nointr(setup);
	strv_free(envp);
	secrets_free(secrets, n_secrets);
	return r;
}

int warm_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err)
{
	/* A server that died while idle costs one more start, never the job. */
	for (int tries = 0; tries < 2; tries++) {
		struct warm *w;
		int r;

		if (warm_take(sb, l, &w, ret_err) < 0)
			return -1;
		r = warm_request(sb, w, l, ret, ret_err);
		if (r == 0)
			return 0;
		warm_kill(w);
		if (r != -EAGAIN || tries == 1)
			return -1;
		free(*ret_err);
		*ret_err = NULL;
	}
	return -1;
}

/* The fd that becomes readable when a warm attempt has ended (proc_exit_fd). */
int warm_exit_fd(const struct warm *w)
{
	return w->ctl;
}

/* proc_wait for an attempt of a warm server: the server reaped it and
 * replies with its wait status and resource use. */
int warm_wait(struct proc *p, int *ret_status, struct rusage *ret_ru)
{
	struct {
		char tag, pad[3];
		int32_t status;
		int64_t utime_us, stime_us, maxrss_kb;
	} x;
	struct rusage ru = { 0 };
	ssize_t n;

	n = warm_recv(p->server, &x, sizeof(x), NULL, WARM_REPLY_TIMEOUT_MS, NULL);
	if (n != (ssize_t)sizeof(x) || x.tag != 'X') {
		/* Dead, stalled or confused: its namespace goes, and the child with it. */
		p->server->retire = true;
		if (ret_status)
			*ret_status = SIGKILL;
		if (ret_ru)
			*ret_ru = ru;
		return -1;
	}
	p->reaped = true;
	ru.ru_utime = (struct timeval){ x.utime_us / 1000000, x.utime_us % 1000000 };
	ru.ru_stime = (struct timeval){ x.stime_us / 1000000, x.stime_us % 1000000 };
	ru.ru_maxrss = x.maxrss_kb;
	if (ret_status)
		*ret_status = x.status;
	if (ret_ru)
		*ret_ru = ru;
	return 0;
}

/* A warm attempt is over: its server takes the next one, unless it is due
 * for replacement, or its attempt was never reaped (a reply would be left
 * in the socket). */
void warm_release(struct proc *p)
{
	struct warm *w = p->server;

	p->server = NULL;
	w->busy = false;
	if (!p->reaped || w->retire || w->forks >= w->max_forks || now_ms() - w->started >= w->max_age_ms)
		warm_kill(w);
}
