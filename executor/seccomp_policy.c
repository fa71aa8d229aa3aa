/* SPDX-License-Identifier: ISC */
/* seccomp_policy — the seccomp allow-list a job (and a warm server) runs
 * under: the tables of allowed, refused and killed calls, the argument rules,
 * and the BPF programs libseccomp compiles from them.  The build compiles this
 * file twice: into gen_filter, which links nothing else of the executor and
 * prints the programs as C (build/filter_bpf.h), and with
 * TASKEXEC_PREBUILT_FILTER into the executor, which then only copies them.
 * Also here: naming a syscall and answering a notification on the listener,
 * where every notification is a violation. */

#include "sandbox_int.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

/* Allowed without conditions: what CPython 3.11 calls for start-up, imports,
 * file I/O in permitted places, threads, time, and exceptions (measured with
 * strace -f -c), plus the file and memory calls of the stdlib modules tasks
 * commonly use (sqlite3, json, shutil, tempfile, threading, select). */
static const char *const allow_always[] = {
	"read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
	"pwritev2", "lseek", "close", "close_range", "openat", "open", "creat", "newfstatat", "fstat",
	"stat", "lstat", "statx", "access", "faccessat", "faccessat2", "readlink", "readlinkat",
	"getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "unlink", "unlinkat", "rename",
	"renameat", "renameat2", "rmdir", "link", "linkat", "symlink", "symlinkat", "utimensat", "futimesat", "utime", "utimes", "fsync", "fdatasync", "sync_file_range",
	"ftruncate", "truncate", "fallocate", "fadvise64", "flock", "dup", "dup2", "dup3",
	"pipe", "pipe2", "copy_file_range", "sendfile", "statfs", "fstatfs", "umask",
	"getxattr", "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr",
	"mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "brk", "msync", "mlock", "munlock",
	"futex", "set_robust_list", "get_robust_list", "set_tid_address", "rseq", "arch_prctl",
	"getrandom", "gettid", "getpid", "getppid", "getpgrp", "getpgid", "getsid", "getuid", "geteuid",
	"getgid", "getegid", "getgroups", "getresuid", "getresgid", "uname", "sysinfo", "times",
	"getrusage", "getcpu", "sched_yield", "sched_getaffinity", "sched_getparam", "sched_getscheduler",
	"getpriority", "getitimer", "setitimer", "alarm",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "rt_sigpending",
	"rt_sigtimedwait", "rt_sigsuspend", "pause", "restart_syscall",
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
	"poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
	"epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "timerfd_create",
	"timerfd_settime", "timerfd_gettime", "inotify_init1", "inotify_add_watch", "inotify_rm_watch",
	"exit", "exit_group",
};

/* Calls ordinary library code may try that must fail, not kill: the task gets
 * an exception with a traceback that lands in the attempt row. */
static const char *const deny_eperm[] = {
	"execve", "fork", "vfork", "chown", "fchown", "lchown", "fchownat", "setxattr", "lsetxattr",
	"fsetxattr", "removexattr", "lremovexattr", "fremovexattr", "mknod", "mknodat", "setuid",
	"setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
	"setpriority", "sched_setaffinity", "sched_setscheduler", "sched_setparam", "setpgid", "setsid",
	"wait4", "waitid",
};

/* What a warm server may do beyond a job: fork, reap, start sessions for its
 * attempts and name each to the executor by a pidfd (see the clone rules). */
static const char *const server_calls[] = { "wait4", "waitid", "setsid", "pidfd_open" };

static bool is_server_call(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(server_calls); i++)
		if (!strcmp(server_calls[i], name))
			return true;
	return false;
}

/* Newer interfaces whose arguments BPF cannot inspect (clone3 keeps its flags
 * in memory) or that bypass seccomp for later operations (io_uring): ENOSYS
 * makes libraries fall back to the checked calls. */
static const char *const deny_enosys[] = {
	"clone3", "io_uring_setup", "io_uring_enter", "io_uring_register",
};

/* Everything else — ptrace, mount, unshare, setns, bpf, (f)init_module, kexec,
 * keyctl, userfaultfd, memfd_create, process_vm_*, pidfd_*, seccomp, landlock_*,
 * perf_event_open, personality, open_by_handle_at, ioctl and prctl commands
 * not listed, signals to other processes, syscalls newer than this list — is
 * a sandbox violation that kills the whole process.  The default action is
 * SECCOMP_RET_USER_NOTIF rather than KILL_PROCESS only so that the kill can
 * be named: the call never runs; the supervisor reads which syscall it was,
 * SIGKILLs the job's process group, and only then answers.  (After a
 * KILL_PROCESS the kernel tells nobody which call it was.)  i386 and x32
 * numbers are killed by the kernel itself (the bad-arch action). */

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
		  CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME)

static int rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n, ...)
{
	struct scmp_arg_cmp args[3];
	int nr = seccomp_syscall_resolve_name(name);
	va_list ap;

	if (nr == __NR_SCMP_ERROR)
		return 0;       /* not on this architecture */
	va_start(ap, n);
	for (unsigned i = 0; i < n; i++)
		args[i] = va_arg(ap, struct scmp_arg_cmp);
	va_end(ap);
	return seccomp_rule_add_array(ctx, action, nr, n, args);
}

/* Compare only the low 32 bits: the kernel reads these arguments as int, so
 * whatever a caller leaves in the high half must not change the verdict. */
#define A32(i, v) SCMP_CMP((i), SCMP_CMP_MASKED_EQ, 0xffffffffULL, (scmp_datum_t)(uint32_t)(v))

int sandbox_build_filter(enum net_mode net, enum filter_stage stage, struct sock_filter **ret,
			  unsigned short *ret_len, char **ret_err)
{
	bool server = stage == STAGE_SERVER;
	static const unsigned long ioctls[] = { TCGETS, TIOCGWINSZ, FIONREAD, FIONBIO, FIOCLEX, FIONCLEX };
	static const int fcntls[] = { F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK,
				      F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_GETOWN,
				      F_GETOWN_EX, F_GETSIG, F_GETLEASE, F_NOTIFY, F_GETPIPE_SZ,
				      F_SETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS };
	static const int prctls[] = { PR_GET_NAME, PR_SET_NAME, PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS,
				      PR_CAPBSET_READ, PR_GET_SECCOMP };
	/* A warm server's default is TRACE, which with no tracer fails the call
	 * with ENOSYS: a chain of filters holds only one listener, and it must
	 * be the attempt's (stacked on top, its NOTIF outranks TRACE, so every
	 * call neither allows reaches the attempt's listener by name). */
	scmp_filter_ctx ctx = seccomp_init(server ? SCMP_ACT_TRACE(0) : SCMP_ACT_NOTIFY);
	int r = 0, fds[2] = { -1, -1 };
	char *buf = NULL;
	ssize_t n;

	if (!ctx) {
		*ret_err = xstrdup("seccomp_init failed");
		return -1;
	}
	/* i386 and x32 numbers arrive with another arch token or bit 30 set:
	 * libseccomp routes both to the bad-arch action. */
	r |= seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	r |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);     /* the child sets it itself */
	/* A binary tree: CPython makes ~1000 syscalls just to start. */
	r |= seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < ARRAY_SIZE(allow_always); i++)
		r |= rule(ctx, SCMP_ACT_ALLOW, allow_always[i], 0);
	for (size_t i = 0; i < ARRAY_SIZE(deny_eperm); i++)
		if (!server || !is_server_call(deny_eperm[i]))
			r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), deny_eperm[i], 0);
	for (size_t i = 0; i < ARRAY_SIZE(deny_enosys); i++)
		r |= rule(ctx, SCMP_ACT_ERRNO(ENOSYS), deny_enosys[i], 0);

	/* Threads yes, processes and namespaces no. */
	r |= rule(ctx, SCMP_ACT_ALLOW, "clone", 1,
		  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | NS_FLAGS, CLONE_THREAD));
	if (!server) {
		r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	} else {
		/* A warm server forks its attempts (a plain fork: no shared
		 * memory, no namespace), reaps them, hands the executor each
		 * one's pidfd, and lets each load its own, tighter filter —
		 * this program without these rules, which a filter stacked on
		 * top can only narrow (see warm_child in the shim). */
		r |= rule(ctx, SCMP_ACT_ALLOW, "clone", 1,
			  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_VM | NS_FLAGS, 0));
		r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1,
			  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD | CLONE_VM, CLONE_VM));
		for (size_t i = 0; i < ARRAY_SIZE(server_calls); i++)
			r |= rule(ctx, SCMP_ACT_ALLOW, server_calls[i], 0);
		r |= rule(ctx, SCMP_ACT_ALLOW, "seccomp", 1, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER));
	}

	/* No execve, no execveat is ever allowed by the filter itself.  The one
	 * exec the sandbox makes, execveat(SANDBOX_EXEC_FD, "", ...,
	 * AT_EMPTY_PATH), falls to the default action, a notification: the
	 * supervisor, waiting in sandbox_spawn while no task code exists yet,
	 * lets exactly that first one continue, and treats every later one as
	 * a violation.  (BPF cannot read the path: execveat(SANDBOX_EXEC_FD,
	 * "/any/abs/path", ..., AT_EMPTY_PATH) ignores the fd, so comparing
	 * arguments could not close exec on its own.)  Other fds fail quietly. */
	r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "execveat", 1,
		  SCMP_A0(SCMP_CMP_NE, SANDBOX_EXEC_FD));
	/* A server has no listener to let its exec through: its filter allows
	 * exactly that call (the fd is closed by the exec; the attempts' own
	 * filters refuse it again). */
	if (server)
		r |= rule(ctx, SCMP_ACT_ALLOW, "execveat", 1, SCMP_A0(SCMP_CMP_EQ, SANDBOX_EXEC_FD));

	/* fcntl commands from a list, compared on their low 32 bits.  Refused:
	 * those that make the kernel signal another process on I/O (F_SETOWN +
	 * F_SETSIG + O_ASYNC could SIGKILL any process of the job's uid: the
	 * other jobs, a non-root daemon), and F_SETLEASE: a lease on a file in
	 * a write path other jobs share makes their open() of it wait for the
	 * holder (up to lease-break-time, again and again).  F_NOTIFY stays: its
	 * signal goes to the caller itself (F_SETSIG is refused) and it shows
	 * no more than inotify.  Any other command is a violation. */
	for (size_t i = 0; i < ARRAY_SIZE(fcntls); i++)
		r |= rule(ctx, SCMP_ACT_ALLOW, "fcntl", 1, A32(1, fcntls[i]));
	r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "fcntl", 1, A32(1, F_SETOWN));
	r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "fcntl", 1, A32(1, F_SETOWN_EX));
	r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "fcntl", 1, A32(1, F_SETSIG));
	r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), "fcntl", 1, A32(1, F_SETLEASE));

	/* No set-uid or set-gid file: a job's copy of python3 made 06755 in its
	 * scratch would run as the job user for anyone on the host.  The mode
	 * is tested bit by bit, so the three rules of a call cover every mode.
	 * S_ISVTX stays allowed: it only limits who may delete.  Files created
	 * with those bits (open, creat, mkdir) are left to the kernel: the first
	 * write, truncate or fallocate by a caller without CAP_FSETID clears
	 * them, so such a file stays empty; mkdir keeps neither bit.  fchmodat2 is unknown to an older
	 * libseccomp: rule() skips it and the default action, a violation,
	 * stops it instead of letting it pass. */
	{
		static const struct { const char *name; unsigned arg; } chmods[] = {
			{ "chmod", 1 }, { "fchmod", 1 }, { "fchmodat", 2 }, { "fchmodat2", 2 },
		};

		for (size_t i = 0; i < ARRAY_SIZE(chmods); i++) {
			unsigned a = chmods[i].arg;

			r |= rule(ctx, SCMP_ACT_ALLOW, chmods[i].name, 1,
				  SCMP_CMP(a, SCMP_CMP_MASKED_EQ, S_ISUID | S_ISGID, 0));
			r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), chmods[i].name, 1,
				  SCMP_CMP(a, SCMP_CMP_MASKED_EQ, S_ISUID, S_ISUID));
			r |= rule(ctx, SCMP_ACT_ERRNO(EPERM), chmods[i].name, 1,
				  SCMP_CMP(a, SCMP_CMP_MASKED_EQ, S_ISGID, S_ISGID));
		}
	}

	/* Signals only to itself (its pid is patched in at launch); any other
	 * target is a violation the supervisor names. */
	if (!server) {
		r |= rule(ctx, SCMP_ACT_ALLOW, "kill", 1, SCMP_A0(SCMP_CMP_EQ, PID_PLACEHOLDER));
		r |= rule(ctx, SCMP_ACT_ALLOW, "tgkill", 1, SCMP_A0(SCMP_CMP_EQ, PID_PLACEHOLDER));
	} else {
		/* Its pid namespace holds only itself and its attempt; an
		 * attempt's own filter allows only its own pid. */
		r |= rule(ctx, SCMP_ACT_ALLOW, "kill", 0);
		r |= rule(ctx, SCMP_ACT_ALLOW, "tgkill", 0);
	}
	r |= rule(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, SCMP_A0(SCMP_CMP_EQ, 0));

	/* ioctl commands compared on their low 32 bits, as the kernel reads them
	 * (the TIOCSTI high-bits trick); every other command is a violation. */
	for (size_t i = 0; i < ARRAY_SIZE(ioctls); i++)
		r |= rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, A32(1, ioctls[i]));
	for (size_t i = 0; i < ARRAY_SIZE(prctls); i++)
		r |= rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, A32(0, prctls[i]));
	if (server)
		r |= rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, A32(0, PR_SET_DUMPABLE));

	/* The launcher hands the seccomp listener over on the status socket, the
	 * one fd above the job's RLIMIT_NOFILE besides the exec fd. */
	r |= rule(ctx, SCMP_ACT_ALLOW, "sendmsg", 1, SCMP_A0(SCMP_CMP_EQ, SANDBOX_STATUS_FD));
	/* A connected pair reaches nobody else; asyncio needs one for its loop. */
	r |= rule(ctx, SCMP_ACT_ALLOW, "socketpair", 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
	r |= rule(ctx, SCMP_ACT_ERRNO(EACCES), "socketpair", 1, SCMP_A0(SCMP_CMP_NE, AF_UNIX));
	{
		/* Calls on sockets the job already has: under network = none only
		 * socketpair ones. */
		static const char *const sockcalls[] = {
			"sendto", "recvfrom", "recvmsg", "sendmmsg", "recvmmsg", "getsockopt", "setsockopt",
			"getsockname", "getpeername", "shutdown",
		};

		for (size_t i = 0; i < ARRAY_SIZE(sockcalls); i++)
			r |= rule(ctx, SCMP_ACT_ALLOW, sockcalls[i], 0);
		r |= rule(ctx, SCMP_ACT_ALLOW, "sendmsg", 1, SCMP_A0(SCMP_CMP_NE, SANDBOX_STATUS_FD));
	}
	if (net == NET_NONE) {
		r |= rule(ctx, SCMP_ACT_ERRNO(EACCES), "socket", 0);
	} else {
		static const char *const netcalls[] = { "connect", "bind" };

		/* Outbound IP only: no AF_UNIX (host daemons' sockets), no netlink. */
		r |= rule(ctx, SCMP_ACT_ALLOW, "socket", 1, A32(0, AF_INET));
		r |= rule(ctx, SCMP_ACT_ALLOW, "socket", 1, A32(0, AF_INET6));
		for (int fam = 0; fam < AF_MAX; fam++)
			if (fam != AF_INET && fam != AF_INET6)
				r |= rule(ctx, SCMP_ACT_ERRNO(EACCES), "socket", 1, A32(0, fam));
		for (size_t i = 0; i < ARRAY_SIZE(netcalls); i++)
			r |= rule(ctx, SCMP_ACT_ALLOW, netcalls[i], 0);
	}

	if (r) {
		*ret_err = xasprintf("building the seccomp filter failed: %s", strerror(-r));
		goto out;
	}
	/* libseccomp 2.5 exports only to an fd; read the program back into memory. */
	if (pipe2(fds, O_CLOEXEC) < 0 || fcntl(fds[0], F_SETPIPE_SZ, 1 << 20) < 0) {
		*ret_err = xasprintf("pipe: %s", strerror(errno));
		r = -1;
		goto out;
	}
	r = seccomp_export_bpf(ctx, fds[1]);
	close(fds[1]);
	fds[1] = -1;
	if (r < 0) {
		*ret_err = xasprintf("seccomp_export_bpf: %s", strerror(-r));
		goto out;
	}
	buf = xmalloc(1 << 20);
	n = read(fds[0], buf, 1 << 20);
	if (n <= 0 || n % sizeof(struct sock_filter) || n / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		*ret_err = xstrdup("seccomp program has an unexpected size");
		r = -1;
		goto out;
	}
	*ret = (struct sock_filter *)buf;
	*ret_len = (unsigned short)(n / sizeof(struct sock_filter));
	buf = NULL;
	r = 0;
out:
	free(buf);
	close_nointr(fds[0]);
	close_nointr(fds[1]);
	seccomp_release(ctx);
	return r ? -1 : 0;
}

char *sandbox_syscall_name(long nr)
{
	char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, (int)nr);

	if (name && (nr & 0x40000000) == 0)
		return name;
	free(name);
	return xasprintf("syscall %ld%s", nr, (nr & 0x40000000) ? " (x32)" : "");
}

char *sandbox_notif_recv(int listener, uint64_t *ret_id)
{
	struct seccomp_notif req;

	memset(&req, 0, sizeof(req));
	if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
		return NULL;
	*ret_id = req.id;
	return sandbox_syscall_name(req.data.nr);
}

void sandbox_notif_deny(int listener, uint64_t id)
{
	struct seccomp_notif_resp resp;

	memset(&resp, 0, sizeof(resp));
	resp.id = id;
	resp.error = -EPERM;
	ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);       /* fails once the job is gone: fine */
}

#ifdef TASKEXEC_PREBUILT_FILTER
/* build/filter_bpf.h: the programs sandbox_build_filter produced at build
 * time (make runs build/gen_filter), so no job pays for compiling them. */
#include "filter_bpf.h"
#endif

/* The seccomp program for a network mode and stage, the first time it is needed. */
int filter_for(struct sandbox *sb, enum net_mode m, enum filter_stage st, char **ret_err)
{
	if (sb->bpf[st][m])
		return 0;
#ifdef TASKEXEC_PREBUILT_FILTER
	sb->bpf_len[st][m] = prebuilt_len[st][m];
	sb->bpf[st][m] = xmalloc(prebuilt_len[st][m] * sizeof(struct sock_filter));
	memcpy(sb->bpf[st][m], prebuilt[st][m], prebuilt_len[st][m] * sizeof(struct sock_filter));
	return 0;
#else
	return sandbox_build_filter(m, st, &sb->bpf[st][m], &sb->bpf_len[st][m], ret_err);
#endif
}
