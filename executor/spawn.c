/* SPDX-License-Identifier: ISC */
/* spawn — start one attempt as a fresh interpreter: a launcher child under
 * rlimits, a dropped uid and capabilities, no_new_privs, its isolation domain,
 * Landlock and a seccomp allow-list, and the handshake that waits for its
 * exec.
 *
 * Everything the child needs is prepared here in the parent: the seccomp
 * program (compiled once at start), the Landlock ruleset, argv, envp, the
 * pipes and the scratch dir.  Between fork and execve the child then makes only
 * raw system calls, in one linear sequence that reports the failing step on a
 * status pipe and exits 127.  No library state is touched there, so a thread
 * or lock in the parent can never deadlock a child. */

#include "sandbox_int.h"
#include "domain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

/* The child's steps before its exec take well under a millisecond. */
#define LAUNCH_TIMEOUT_MS 10000

/* ---- the child ------------------------------------------------------------ */

struct launch_status {
	int err;
	char step[56];
};

static void __attribute__((noreturn)) child_fail(int fd, const char *step)
{
	struct launch_status st = { .err = errno };

	memcpy(st.step, step, strnlen(step, sizeof(st.step) - 1));     /* async-signal-safe (POSIX.1-2017) */
	(void)!write(fd, &st, sizeof(st));
	_exit(127);
}


/* Each secret as a 0400 file of the job user in the directory we are in (the
 * job's /tmp), made while we may still chown: the job can read it, nobody
 * else on the host can, and it goes when the /tmp does.  O_EXCL: a name the
 * job could have prepared is never written through. */
static void write_secrets(const struct child_args *a, int st)
{
	for (size_t i = 0; i < a->n_secrets; i++) {
		const struct secret *s = &a->secrets[i];
		int fd = open(s->file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
		size_t off = 0;

		if (fd < 0)
			child_fail(st, "create secret file");
		while (off < s->len) {
			ssize_t n = write(fd, s->value + off, s->len - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				child_fail(st, "write secret file");
			off += (size_t)n;
		}
		if (a->drop_uid && fchown(fd, a->uid, a->gid) < 0)
			child_fail(st, "chown secret file");
		close(fd);
	}
}

/* Between fork and execve: raw system calls only, in this order. */
static int child(void *arg)
{
	struct child_args *a = arg;
	struct sigaction dfl = { .sa_handler = SIG_DFL };
	struct rlimit zero = { 0, 0 };
	int fd[6], st = a->status_fd;
	sigset_t none;
	int listener;

	/* 1. Signal state survives execve: undo the parent's ignored SIGPIPE and
	 *    blocked mask, or the interpreter would inherit them. */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
		child_fail(st, "sigprocmask");

	/* 2. A session of its own: no controlling tty (no TIOCSTI into ours), and a
	 *    process group the watchdog can signal as a whole. */
	if (setsid() < 0)
		child_fail(st, "setsid");

	/* 3. fds: copy every source above 4 first so no dup2 can clobber another
	 *    source, then place 0-4 and the exec fd; everything else is marked
	 *    close-on-exec, so the interpreter starts with exactly 0-4. */
	fd[0] = fcntl(a->in_fd, F_DUPFD_CLOEXEC, 5);
	for (int i = 0; i < 4; i++)
		fd[i + 1] = fcntl(a->out_fd[i], F_DUPFD_CLOEXEC, 5);
	fd[5] = fcntl(a->interp_fd, F_DUPFD_CLOEXEC, 5);
	for (int i = 0; i < 6; i++)
		if (fd[i] < 0 || fd[i] == SANDBOX_EXEC_FD)
			child_fail(st, "dup fds");
	for (int i = 0; i < 5; i++)
		if (dup2(fd[i], i) < 0)
			child_fail(st, "dup2");
	if (dup3(fd[5], SANDBOX_EXEC_FD, O_CLOEXEC) < 0)
		child_fail(st, "dup3 exec fd");
	if (dup3(st, SANDBOX_STATUS_FD, O_CLOEXEC) < 0)
		child_fail(st, "dup3 status fd");
	st = SANDBOX_STATUS_FD;
	if (syscall(SYS_close_range, 5, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		child_fail(st, "close_range");

	/* 3b. The isolation domain, while we may still mount: it leaves us in
	 *     the domain's /tmp.  Files made there and in the write paths are
	 *     group-writable, for the other jobs of the shared group. */
	if (a->domain) {
		const char *step = domain_enter(a->domain);

		if (step)
			child_fail(st, step);
		umask(002);
	} else if (chdir(a->scratch) < 0) {
		child_fail(st, "chdir scratch");
	}
	write_secrets(a, st);

	/* 4. Resource limits.  NOFILE stays below SANDBOX_EXEC_FD (see the filter).
	 *    NPROC comes after the uid switch: set before, execve would fail while
	 *    other jobs of the same user run. */
	if (setrlimit(RLIMIT_AS, &a->rl_as) < 0 || setrlimit(RLIMIT_CPU, &a->rl_cpu) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &a->rl_nofile) < 0 || setrlimit(RLIMIT_FSIZE, &a->rl_fsize) < 0 ||
	    setrlimit(RLIMIT_CORE, &zero) < 0 || setrlimit(RLIMIT_MEMLOCK, &zero) < 0 ||
	    setrlimit(RLIMIT_MSGQUEUE, &zero) < 0)
		child_fail(st, "setrlimit");

	/* 5. Privileges.  The bounding set is emptied while we still hold
	 *    CAP_SETPCAP; the uid switch then clears every other set.  The raw
	 *    syscalls skip glibc's cross-thread setxid machinery. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		child_fail(st, "clear ambient caps");
	if (a->drop_uid) {
		for (int c = 0; c <= a->cap_last; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
				child_fail(st, "drop bounding caps");
		if (syscall(SYS_setgroups, a->domain ? 1 : 0, &a->group) < 0)
			child_fail(st, "setgroups");
		if (syscall(SYS_setresgid, a->gid, a->gid, a->gid) < 0)
			child_fail(st, "setresgid");
		if (syscall(SYS_setresuid, a->uid, a->uid, a->uid) < 0)
			child_fail(st, "setresuid");
	}
	{
		struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct d[2] = { { 0, 0, 0 }, { 0, 0, 0 } };

		if (syscall(SYS_capset, &h, d) < 0)
			child_fail(st, "capset");
	}
	if (setrlimit(RLIMIT_NPROC, &a->rl_nproc) < 0)
		child_fail(st, "setrlimit nproc");

	/* 6. Die with the daemon (set after the uid switch, which clears it), and
	 *    catch a daemon that already died before we got here. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(st, "pdeathsig");
	/* (In a new pid namespace the parent shows as 0; a daemon gone by now
	 * is caught when the listener cannot be sent.) */
	if (!a->newpid && getppid() != a->parent)
		_exit(127);

	/* 7. no_new_privs: required for unprivileged Landlock and seccomp, and no
	 *    set-uid binary could ever raise the job's privileges again. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		child_fail(st, "no_new_privs");

	/* 8. Landlock before seccomp: the filter does not allow landlock_* calls.
	 *    A domain's /tmp exists only now, in our mount namespace: its rule is
	 *    added here. */
	if (a->ruleset_fd >= 0 && a->domain) {
		/* Listing the domain's own directories shows nothing but what it
		 * mounted, and the import system lists every sys.path entry. */
		struct landlock_path_beneath_attr tmp = { .allowed_access = a->tmp_access },
						  dirs = { .allowed_access = LANDLOCK_ACCESS_FS_READ_DIR };

		tmp.parent_fd = open("/tmp", O_PATH | O_CLOEXEC);
		dirs.parent_fd = open("/", O_PATH | O_CLOEXEC);
		if (tmp.parent_fd < 0 || dirs.parent_fd < 0 ||
		    syscall(SYS_landlock_add_rule, a->ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &tmp, 0) < 0 ||
		    syscall(SYS_landlock_add_rule, a->ruleset_fd, LANDLOCK_RULE_PATH_BENEATH, &dirs, 0) < 0)
			child_fail(st, "landlock rules of the domain");
		close(tmp.parent_fd);
		close(dirs.parent_fd);
	}
	if (a->ruleset_fd >= 0 && syscall(SYS_landlock_restrict_self, a->ruleset_fd, 0) < 0)
		child_fail(st, "landlock_restrict_self");

	/* 9. seccomp, last before execveat: patch our pid into our private copy of
	 *    the program, load it, and hand its notification listener (close-on-
	 *    exec here) to the supervisor. */
	{
		uint32_t self = (uint32_t)syscall(SYS_getpid);
		struct sock_fprog prog = { .len = a->bpf_len, .filter = a->bpf };
		char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
		char tag = 'L';
		struct iovec iov = { &tag, 1 };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
				      .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

		for (unsigned i = 0; i < a->bpf_len; i++)
			if (a->bpf[i].k == PID_PLACEHOLDER)
				a->bpf[i].k = self;
		if (a->newpid) {
			/* A warm server: no listener (see sandbox_build_filter). */
			if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
				child_fail(st, "seccomp");
			goto exec;
		}
		listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (listener < 0)
			child_fail(st, "seccomp");
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &listener, sizeof(int));
		if (sendmsg(st, &msg, MSG_NOSIGNAL) < 0)
			child_fail(st, "send seccomp listener");
	}

exec:
	syscall(SYS_execveat, SANDBOX_EXEC_FD, "", a->argv, a->envp, AT_EMPTY_PATH);
	child_fail(st, "execveat");
}

/* ---- spawn ---------------------------------------------------------------- */

/* Kill the child and return only once it runs no more (it stays waitable). */
static void kill_and_wait(pid_t pid)
{
	siginfo_t si;

	kill(pid, SIGKILL);
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
}

/* Between clone and the child's exec: take the seccomp listener it sends,
 * let its one execveat continue, and return once the status socket reaches
 * EOF (the exec closed the child's copy, or the child is gone).  A warm
 * child (WARM) has no exec: its EOF is the close it makes once its own
 * filter is loaded, after which it may run task code at once.  So its own
 * listener is never read here (every notification on it is the job's, left
 * for the attempt's watcher to name), and nothing is let through; only the
 * server's listener, when there is one, is watched.  A failure before the
 * EOF arrives as "step: error" in *ret_err; the child has then exited. */
void launch_handshake(pid_t pid, int status_fd, bool warm, int server_listener, int *ret_listener,
		      char **ret_err)
{
	bool exec_let_through = false;
	int64_t deadline = now_ms() + LAUNCH_TIMEOUT_MS;

	*ret_listener = -1;
	*ret_err = NULL;
	for (;;) {
		int watched = warm ? server_listener : *ret_listener;
		struct pollfd pf[2] = { { status_fd, POLLIN, 0 }, { watched, POLLIN, 0 } };
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0) {
			kill_and_wait(pid);
			if (!*ret_err)
				*ret_err = xstrdup("launch: no exec within 10 seconds");
			return;
		}
		n = poll(pf, watched >= 0 ? 2 : 1, (int)left);
		if (n < 0 && errno != EINTR) {
			kill_and_wait(pid);
			if (!*ret_err)
				*ret_err = xasprintf("launch: poll: %s", strerror(errno));
			return;
		}
		if (n <= 0)
			continue;
		if (pf[1].revents & POLLIN) {
			struct seccomp_notif req;
			struct seccomp_notif_resp resp;

			memset(&req, 0, sizeof(req));
			if (ioctl(watched, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
				memset(&resp, 0, sizeof(resp));
				resp.id = req.id;
				if (!warm && !exec_let_through && req.data.nr == SYS_execveat && (pid_t)req.pid == pid) {
					exec_let_through = true;
					resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
				} else {
					/* Our own code broke the policy before the exec. */
					char *name = sandbox_syscall_name(req.data.nr);

					kill(pid, SIGKILL);
					resp.error = -EPERM;
					if (!*ret_err)
						*ret_err = xasprintf("launch: %s before %s", name,
								     warm ? "its own filter" : "exec");
					free(name);
				}
				ioctl(watched, SECCOMP_IOCTL_NOTIF_SEND, &resp);
			}
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			struct launch_status st;
			char cbuf[CMSG_SPACE(sizeof(int))];
			struct iovec iov = { &st, sizeof(st) };
			struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
					      .msg_controllen = sizeof(cbuf) };
			ssize_t r = recvmsg(status_fd, &msg, MSG_CMSG_CLOEXEC);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				return;         /* EOF: exec'd, or exited */
			for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
				if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && *ret_listener < 0)
					memcpy(ret_listener, CMSG_DATA(cm), sizeof(int));
			if (r == (ssize_t)sizeof(st) && !*ret_err) {
				st.step[sizeof(st.step) - 1] = '\0';
				*ret_err = xasprintf("%s: %s", st.step, strerror(st.err));
			}
		}
	}
}

/* What a domain shows of the host: the interpreter's /usr (and the links to
 * it), the system files of system_read, the shim, the allowed packages of
 * each task root, the policy's paths; the job's /tmp and /dev of its own. */
void plan_domain(const struct sandbox *sb, const struct launch *l, const char *root, uid_t uid, gid_t gid,
			struct domain_plan *dp)
{
	const struct policy *p = l->policy;
	uint64_t size = p->scratch_size;
	char *opts = xasprintf("size=%llu,nr_inodes=%llu,mode=0700,uid=%u,gid=%u", (unsigned long long)size,
			       (unsigned long long)(size / 4096 > 1024 ? size / 4096 : 1024), (unsigned)uid,
			       (unsigned)gid);

	domain_plan_init(dp, root, p->network == NET_NONE, sb->userns, uid, gid);
	domain_tmpfs(dp, "/tmp", opts);
	free(opts);
	domain_dev(dp);
	for (size_t i = 0; i < n_system_read; i++)
		if (strncmp(system_read[i], "/dev/", 5))
			domain_bind(dp, system_read[i], false);
	domain_bind(dp, sb->shim_dir, false);
	for (char *const *r = l->roots; r && *r; r++)
		for (char *const *pkg = l->packages; pkg && *pkg; pkg++) {
			char *dir = xasprintf("%s/%s", *r, *pkg), *file = xasprintf("%s/%s.py", *r, *pkg);

			domain_bind(dp, dir, false);
			domain_bind(dp, file, false);
			free(dir);
			free(file);
		}
	for (char **q = p->read_paths; q && *q; q++)
		domain_bind(dp, *q, false);
	for (char **q = p->python_path; q && *q; q++)
		domain_bind(dp, *q, false);
	for (char **q = p->write_paths; q && *q; q++)
		domain_bind(dp, *q, true);
}

/* A uid of the range no job on this host runs as (root, domains): its lock
 * file, held while the attempt lives, says so to every daemon and every
 * `taskexec run` of the host, whatever their settings.  The uid's processes
 * are gone when the lock is released: the job can make no process that
 * outlives it.  Returns the lock fd and the uid, or -1. */
int take_uid(const struct sandbox *sb, uid_t *ret_uid)
{
	for (unsigned i = 0; i < sb->uid_slots; i++) {
		uid_t uid = sb->uid_first + 1 + i;
		char path[64];
		int fd;

		snprintf(path, sizeof(path), "%s/%u", UID_LOCK_DIR, (unsigned)uid);
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			*ret_uid = uid;
			return fd;
		}
		close(fd);
	}
	return -1;
}

/* The file a secret is written to in the job's /tmp. */
static char *secret_file(const char *var, size_t len)
{
	return xasprintf("taskexec-secret.%.*s", (int)len, var);
}

/* A secret's variable names the file that holds it, not the value: the value
 * then never sits in the environment, where every process the interpreter
 * starts inherits it and os.environ dumps (error reports, debug output) would
 * carry it into the job's log. */
char **build_env(const struct policy *p, const char *scratch)
{
	size_t n = strv_len(p->env), ns = strv_len(p->secrets), k = 0;
	char **env = xcalloc(n + ns + 4, sizeof(char *));

	env[k++] = xstrdup("PATH=/usr/bin:/bin");
	env[k++] = xstrdup("LANG=C.UTF-8");
	env[k++] = xasprintf("TMPDIR=%s", scratch);
	for (size_t i = 0; i < n; i++)
		env[k++] = xstrdup(p->env[i]);
	for (size_t i = 0; i < ns; i++) {
		size_t len = (size_t)(strchr(p->secrets[i], '=') - p->secrets[i]);
		char *file = secret_file(p->secrets[i], len);

		env[k++] = xasprintf("%.*s=%s/%s", (int)len, p->secrets[i], scratch, file);
		free(file);
	}
	env[k] = NULL;
	return env;
}

/* Read the policy's secrets now, at launch, so a rotated file takes effect
 * with the next job.  A small local file: the read does not hold the loop. */
int read_secrets(const struct policy *p, struct secret **ret, size_t *ret_n, char **ret_err)
{
	size_t n = strv_len(p->secrets);
	struct secret *v = xcalloc(n + 1, sizeof(*v));

	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(p->secrets[i], '=');
		char *err = NULL;

		v[i].file = secret_file(p->secrets[i], (size_t)(eq - p->secrets[i]));
		if (policy_secret_read(eq + 1, &v[i].value, &v[i].len, &err) < 0) {
			*ret_err = xasprintf("secret %.*s of task type %s: %s", (int)(eq - p->secrets[i]), p->secrets[i],
					     p->name, err);
			free(err);
			*ret = v;
			*ret_n = i + 1;
			return -1;
		}
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void secrets_free(struct secret *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		if (v[i].value) {
			explicit_bzero(v[i].value, v[i].len);
			free(v[i].value);
		}
		free(v[i].file);
	}
	free(v);
}

/* An attempt's I/O: the job on a sealed memfd (a payload of any size is
 * ready to read at once, and nobody can change it after the fact), pipes for
 * fds 1-4 and the status socket of its launch.  0, or -1 with *ret_err; the
 * caller closes IO either way (io_close). */
int make_io(const struct launch *l, struct attempt_io *io, char **ret_err)
{
	io->status[0] = io->status[1] = -1;
	for (int i = 0; i < 4; i++)
		io->pipe[i][0] = io->pipe[i][1] = -1;
	io->in_fd = memfd_create("taskexec-job", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (io->in_fd < 0 || write_all(io->in_fd, l->input, l->input_len) < 0 || lseek(io->in_fd, 0, SEEK_SET) < 0 ||
	    fcntl(io->in_fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		*ret_err = xasprintf("job input memfd: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 4; i++)
		if (pipe2(io->pipe[i], O_CLOEXEC) < 0) {
			*ret_err = xasprintf("pipe: %s", strerror(errno));
			return -1;
		}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, io->status) < 0) {
		*ret_err = xasprintf("socketpair: %s", strerror(errno));
		return -1;
	}
	return 0;
}

void io_close_child_ends(struct attempt_io *io)
{
	for (int i = 0; i < 4; i++) {
		close_nointr(io->pipe[i][1]);
		io->pipe[i][1] = -1;
	}
	close_nointr(io->status[1]);
	io->status[1] = -1;
	close_nointr(io->in_fd);
	io->in_fd = -1;
}

void io_give(struct attempt_io *io, struct proc *ret)
{
	for (int i = 0; i < 4; i++) {
		ret->fd[i] = io->pipe[i][0];
		io->pipe[i][0] = -1;
		fd_nonblock(ret->fd[i]);
	}
}

void io_close(struct attempt_io *io)
{
	io_close_child_ends(io);
	for (int i = 0; i < 4; i++) {
		close_nointr(io->pipe[i][0]);
		io->pipe[i][0] = -1;
	}
	close_nointr(io->status[0]);
	io->status[0] = -1;
}

/* What every child() of this sandbox gets for policy P, as uid/gid. */
void child_args_init(struct child_args *a, const struct sandbox *sb, const struct policy *p, uid_t uid, gid_t gid)
{
	memset(a, 0, sizeof(*a));
	a->interp_fd = sb->interp_fd;
	a->parent = getpid();
	a->tmp_access = ll_fs_handled(sb->landlock_abi) & LL_WRITE;
	a->drop_uid = sb->drop_uid;
	a->uid = uid;
	a->gid = gid;
	a->group = sb->gid;
	a->cap_last = sb->cap_last;
	set_limits(a, p);
}

/* The limits of the policy, for child(). */
void set_limits(struct child_args *a, const struct policy *p)
{
	a->rl_as = (struct rlimit){ p->memory, p->memory };
	a->rl_cpu = (struct rlimit){ (rlim_t)((p->cpu_ms + 999) / 1000), (rlim_t)((p->cpu_ms + 999) / 1000 + 2) };
	a->rl_nofile = (struct rlimit){ (rlim_t)p->open_files, (rlim_t)p->open_files };
	a->rl_fsize = (struct rlimit){ p->file_size, p->file_size };
	a->rl_nproc = (struct rlimit){ (rlim_t)p->processes, (rlim_t)p->processes };
}

/* Start child(a) in the namespaces of FLAGS and wait for its exec (see
 * launch_handshake).  0, or -1 with *ret_err when no child could be made;
 * a failure inside the child arrives as *ret_launch_err. */
int clone_child(struct sandbox *sb, struct child_args *a, int flags, int status[2], pid_t *ret_pid,
		       int *ret_pidfd, int *ret_listener, char **ret_launch_err, char **ret_err)
{
	int pidfd = -1;
	pid_t pid;

	/* The child gets a copy of our memory, not our memory: nothing it does
	 * between clone and execve (errno, its stack, the plan it walks) can
	 * touch the parent, which runs the handshake meanwhile, and the same
	 * path runs under valgrind.  (CLONE_VFORK is no option: the child's
	 * execveat waits for our answer, see launch_handshake.)  CLONE_PIDFD
	 * hands us the pidfd with no window in which the pid could be reused;
	 * where the flags are refused (EINVAL: some emulators), fork and
	 * unshare do the same in two steps (without a pid namespace: unshare
	 * would put only the child's children in it). */
	pid = clone(child, (char *)sb->stack + CHILD_STACK, CLONE_PIDFD | SIGCHLD | flags, a, &pidfd);
	if (pid < 0 && errno == EINVAL) {
		a->newpid = false;
		pid = fork();
		if (pid == 0) {
			if ((flags & ~CLONE_NEWPID) && unshare(flags & ~CLONE_NEWPID) < 0)
				child_fail(a->status_fd, "unshare");
			_exit(child(a));
		}
		if (pid > 0 && (pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			pid = -1;
		}
	}
	if (pid < 0) {
		*ret_err = xasprintf("clone: %s", strerror(errno));
		return -1;
	}
	/* Only the child's copy of the status socket may remain: its EOF is the exec. */
	close_nointr(status[1]);
	status[1] = -1;
	launch_handshake(pid, status[0], false, -1, ret_listener, ret_launch_err);
	*ret_pid = pid;
	*ret_pidfd = pidfd;
	return 0;
}

int fresh_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err)
{
	const struct policy *p = l->policy;
	struct child_args a = { 0 };
	struct attempt_io io = ATTEMPT_IO_NONE;
	int ruleset = -1;
	char *scratch = NULL, **envp = NULL;
	struct secret *secrets = NULL;
	size_t n_secrets = 0;
	struct sock_filter *bpf = NULL;
	struct domain_plan plan = { 0 };
	int uid_lock = -1;
	char *argv[] = { sb->python, "-I", "-S", "-B", sb->shim_path, NULL };
	uid_t uid = sb->uid;
	gid_t gid = sb->gid;
	int r = -1;

	if (filter_for(sb, p->network, STAGE_JOB, ret_err) < 0 || make_write_paths(sb, p, ret_err) < 0 ||
	    read_secrets(p, &secrets, &n_secrets, ret_err) < 0 || make_scratch(sb, l->job_id, &scratch, ret_err) < 0)
		goto out;
	if (sb->domains && sb->drop_uid) {
		uid_lock = take_uid(sb, &uid);
		if (uid_lock < 0) {
			*ret_err = xasprintf("no free uid in TASKEXEC_JOB_UIDS: all %u run a job", sb->uid_slots);
			goto out;
		}
		gid = (gid_t)uid;
	}
	if (sb->domains)
		plan_domain(sb, l, scratch, uid, gid, &plan);
	if (make_io(l, &io, ret_err) < 0 ||
	    landlock_build(sb, l, sb->domains ? NULL : scratch, &ruleset, ret_err) < 0)
		goto out;
	envp = build_env(p, sb->domains ? "/tmp" : scratch);

	child_args_init(&a, sb, p, uid, gid);
	a.in_fd = io.in_fd;
	for (int i = 0; i < 4; i++)
		a.out_fd[i] = io.pipe[i][1];
	a.ruleset_fd = ruleset;
	a.status_fd = io.status[1];
	a.scratch = scratch;
	a.domain = sb->domains ? &plan : NULL;
	/* The child patches its pid into its copy of this. */
	bpf = xmalloc(sb->bpf_len[STAGE_JOB][p->network] * sizeof(*bpf));
	memcpy(bpf, sb->bpf[STAGE_JOB][p->network], sb->bpf_len[STAGE_JOB][p->network] * sizeof(*bpf));
	a.bpf = bpf;
	a.bpf_len = sb->bpf_len[STAGE_JOB][p->network];
	a.argv = argv;
	a.envp = envp;
	a.secrets = secrets;
	a.n_secrets = n_secrets;

	if (clone_child(sb, &a, plan.clone_flags, io.status, &ret->pid, &ret->pidfd, &ret->listener, &ret->launch_err,
			ret_err) < 0)
		goto out;
	io_give(&io, ret);
	ret->scratch = scratch;
	scratch = NULL;
	ret->landlock = ruleset >= 0;
	ret->domain = sb->domains;
	ret->uid_lock = uid_lock;
	uid_lock = -1;
	r = 0;
out:
	close_nointr(uid_lock);
	domain_plan_free(&plan);
	io_close(&io);
	close_nointr(ruleset);
	strv_free(envp);
	/* The child has its copy; ours is cleared at once. */
	secrets_free(secrets, n_secrets);
	free(bpf);
	if (scratch) {
		rm_rf_at(AT_FDCWD, scratch);
		free(scratch);
	}
	return r;
}
