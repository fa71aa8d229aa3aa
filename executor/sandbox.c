/* sandbox — launch one attempt: a fresh interpreter under rlimits, a dropped uid
 * and capabilities, no_new_privs, Landlock and a seccomp allow-list.
 *
 * Everything the child needs is prepared here in the parent: the seccomp
 * program (compiled once at start), the Landlock ruleset, argv, envp, the
 * pipes and the scratch dir.  Between fork and execve the child then makes only
 * raw system calls, in one linear sequence that reports the failing step on a
 * status pipe and exits 127.  No library state is touched there, so a thread
 * or lock in the parent can never deadlock a child. */

#include "sandbox.h"
#include "domain.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/landlock.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
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
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <spawn.h>
#include <termios.h>
#include <unistd.h>


/* Landlock rights newer than the installed header may know. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;    /* ABI 4 */
	uint64_t scoped;                /* ABI 6 */
};

/* The child's own pid is not known when the filter is compiled; rules about
 * "this process" compare against this value, which the child replaces in its
 * copy-on-write copy of the program before loading it. */
#define PID_PLACEHOLDER 0x7e57c0deU

/* ---- seccomp ---------------------------------------------------------- */

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

/* ---- Landlock ----------------------------------------------------------- */

static int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	return v < 0 ? 0 : (int)v;
}

static uint64_t ll_fs_handled(int abi)
{
	uint64_t fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1;   /* ABI 1 */

	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return fs;
}

#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_FILE_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
			LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)
#define LL_WRITE (LL_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
		  LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | \
		  LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER)

struct ll_path {
	char *path;
	int fd;
	bool dir;
};

static int ll_rule(int ruleset, uint64_t handled, int fd, bool dir, uint64_t access)
{
	struct landlock_path_beneath_attr pb;

	if (!dir)
		access &= LL_FILE_RIGHTS;
	pb.allowed_access = access & handled;
	pb.parent_fd = fd;
	if (pb.allowed_access && syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
		return -errno;
	return 0;
}

/* Missing paths are skipped: a policy may name a directory that only some hosts have. */
static int ll_allow(int ruleset, uint64_t handled, const char *path, uint64_t access)
{
	struct stat st;
	int fd = open(path, O_PATH | O_CLOEXEC);
	int r;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	r = ll_rule(ruleset, handled, fd, fstat(fd, &st) == 0 && S_ISDIR(st.st_mode), access);
	close(fd);
	return r;
}

/* The operating system's own paths do not move while we run: open them once. */
static int ll_allow_cached(struct sandbox *sb, int ruleset, uint64_t handled, const char *path, uint64_t access)
{
	struct stat st;
	int fd;

	for (size_t i = 0; i < sb->ll_n; i++)
		if (!strcmp(sb->ll_cache[i].path, path))
			return ll_rule(ruleset, handled, sb->ll_cache[i].fd, sb->ll_cache[i].dir, access);
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	sb->ll_cache = xreallocarray(sb->ll_cache, sb->ll_n + 1, sizeof(*sb->ll_cache));
	sb->ll_cache[sb->ll_n] = (struct ll_path){ xstrdup(path), fd, fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) };
	return ll_rule(ruleset, handled, fd, sb->ll_cache[sb->ll_n++].dir, access);
}

/* System files every interpreter needs to start, read-only. */
static const char *const system_read[] = {
	"/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/hosts", "/etc/resolv.conf",
	"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates",
	"/etc/mime.types", "/dev/urandom",
};

static int landlock_build(struct sandbox *sb, const struct launch *l, const char *scratch,
			  int *ret_fd, char **ret_err)
{
	struct ll_ruleset_attr attr = { 0 };
	size_t size = sizeof(attr.handled_access_fs);
	int fd, r = 0;
	uint64_t fs;

	*ret_fd = -1;
	if (!sb->landlock_abi)
		return 0;
	fs = attr.handled_access_fs = ll_fs_handled(sb->landlock_abi);
	if (sb->landlock_abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP |
			(l->policy->network == NET_NONE ? LL_NET_CONNECT_TCP : 0);
		size = offsetof(struct ll_ruleset_attr, scoped);
	}
	if (sb->landlock_abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	fd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (fd < 0) {
		*ret_err = xasprintf("landlock_create_ruleset: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(system_read) && !r; i++)
		r = ll_allow_cached(sb, fd, fs, system_read[i], LL_READ);
	/* EXECUTE only on the interpreter and its loader: the kernel checks it
	 * when it opens them for our own execveat. */
	if (!r)
		r = ll_allow_cached(sb, fd, fs, sb->interp_real, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE);
	if (!r && sb->loader_real)
		r = ll_allow_cached(sb, fd, fs, sb->loader_real, LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_EXECUTE);
	if (!r)
		r = ll_allow_cached(sb, fd, fs, "/dev/null", LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE);
	if (!r)
		r = ll_allow(fd, fs, sb->shim_dir, LL_READ);
	/* Landlock follows the path as the job sees it: in a domain a root is a
	 * directory of the domain's own, and only its packages are the host's. */
	for (char *const *p = l->roots; p && *p && !r; p++) {
		if (!scratch) {
			for (char *const *pkg = l->packages; pkg && *pkg && !r; pkg++) {
				char *dir = xasprintf("%s/%s", *p, *pkg), *file = xasprintf("%s/%s.py", *p, *pkg);

				r = ll_allow(fd, fs, dir, LL_READ);
				if (!r)
					r = ll_allow(fd, fs, file, LL_READ);
				free(dir);
				free(file);
			}
			continue;
		}
		r = ll_allow(fd, fs, *p, LL_READ);
	}
	for (char **p = l->policy->read_paths; p && *p && !r; p++)
		r = ll_allow(fd, fs, *p, LL_READ);
	for (char **p = l->policy->python_path; p && *p && !r; p++)
		r = ll_allow(fd, fs, *p, LL_READ);
	for (char **p = l->policy->write_paths; p && *p && !r; p++)
		r = ll_allow(fd, fs, *p, LL_WRITE);
	if (!r && scratch)
		r = ll_allow(fd, fs, scratch, LL_WRITE);
	if (r) {
		*ret_err = xasprintf("landlock_add_rule: %s", strerror(-r));
		close(fd);
		return -1;
	}
	*ret_fd = fd;
	return 0;
}

/* ---- set-up in the parent ---------------------------------------------- */

#define CHILD_STACK (256 * 1024)
/* The child's steps before its exec take well under a millisecond. */
#define LAUNCH_TIMEOUT_MS 10000

/* Python never caches the byte code of the script it is started with, so
 * starting from taskexec_shim.py would compile it for every job.  Start from
 * the byte code the build (or the package) compiled for this very
 * interpreter instead: __pycache__/taskexec_shim.cpython-311.pyc for
 * python3.11, when it is there and not older than the source. */
static void use_compiled_shim(struct sandbox *sb)
{
	const char *base = strrchr(sb->interp_real, '/');
	struct stat src, pyc;
	char *path;
	int major, minor;

	if (!base || sscanf(base, "/python%d.%d", &major, &minor) != 2)
		return;
	path = xasprintf("%s/__pycache__/taskexec_shim.cpython-%d%d.pyc", sb->shim_dir, major, minor);
	if (stat(sb->shim_path, &src) == 0 && stat(path, &pyc) == 0 && pyc.st_mtime >= src.st_mtime) {
		free(sb->shim_path);
		sb->shim_path = path;
		return;
	}
	free(path);
}

/* Where the uids of running domains are locked, host-wide. */
#define UID_LOCK_DIR "/run/taskexec/uids"

/* The range must be ours alone: an id some user or group has would give a
 * job that user's files. */
static int uid_range_free(const struct config *c, char **ret_err)
{
	uid_t first = c->job_uid_first, last = c->job_uid_first + c->job_uid_count - 1;
	struct passwd *pw;
	struct group *gr;
	int r = 0;

	if (c->job_uid_count < 2) {
		*ret_err = xasprintf("TASKEXEC_JOB_UIDS: %s: at least two ids (a group and one job)", c->job_uids);
		return -1;
	}
	setpwent();
	while (!r && (pw = getpwent()))
		if (pw->pw_uid >= first && pw->pw_uid <= last) {
			*ret_err = xasprintf("TASKEXEC_JOB_UIDS: %s: uid %u belongs to user %s", c->job_uids,
					     (unsigned)pw->pw_uid, pw->pw_name);
			r = -1;
		}
	endpwent();
	setgrent();
	while (!r && (gr = getgrent()))
		if (gr->gr_gid >= first && gr->gr_gid <= last) {
			*ret_err = xasprintf("TASKEXEC_JOB_UIDS: %s: gid %u belongs to group %s", c->job_uids,
					     (unsigned)gr->gr_gid, gr->gr_name);
			r = -1;
		}
	endgrent();
	return r;
}

int sandbox_job_user(const char *name, uid_t *ret_uid, gid_t *ret_gid, char **ret_err)
{
	struct passwd *pw = getpwnam(name);

	if (!pw) {
		*ret_err = xasprintf("TASKEXEC_JOB_USER: no user '%s'", name);
		return -ENOENT;
	}
	if (pw->pw_uid == 0 || pw->pw_gid == 0) {
		*ret_err = xasprintf("TASKEXEC_JOB_USER: '%s' is root; a job never runs as root", name);
		return -EPERM;
	}
	*ret_uid = pw->pw_uid;
	*ret_gid = pw->pw_gid;
	return 0;
}

int sandbox_init(struct sandbox *sb, const struct config *c, char **ret_err)
{
	char real[PATH_MAX];

	memset(sb, 0, sizeof(*sb));
	sb->interp_fd = -1;
	sb->python = xstrdup(c->python);
	sb->shim_dir = xstrdup(c->shim_dir);
	sb->shim_path = xasprintf("%s/taskexec_shim.py", c->shim_dir);
	sb->scratch_dir = xstrdup(c->scratch_dir);
	if (access(sb->shim_path, R_OK) < 0) {
		*ret_err = xasprintf("%s: %s", sb->shim_path, strerror(errno));
		goto fail;
	}
	sb->interp_fd = open(c->python, O_PATH | O_CLOEXEC);
	if (sb->interp_fd < 0 || !realpath(c->python, real)) {
		*ret_err = xasprintf("TASKEXEC_PYTHON: %s: %s", c->python, strerror(errno));
		goto fail;
	}
	sb->interp_real = xstrdup(real);
	use_compiled_shim(sb);
	if (realpath("/lib64/ld-linux-x86-64.so.2", real))
		sb->loader_real = xstrdup(real);
	sb->domains = !strcmp(c->isolation, "domain");
	if (sb->domains) {
		sb->userns = geteuid() != 0;
		if (domain_probe(sb->userns, ret_err) < 0)
			goto fail;
	}
	if (sb->domains && !sb->userns) {
		if (uid_range_free(c, ret_err) < 0)
			goto fail;
		sb->drop_uid = true;
		sb->uid_first = c->job_uid_first;
		sb->uid = sb->gid = c->job_uid_first;
		sb->uid_slots = c->job_uid_count - 1;
		if ((mkdir("/run/taskexec", 0755) < 0 && errno != EEXIST) ||
		    (mkdir(UID_LOCK_DIR, 0700) < 0 && errno != EEXIST)) {
			*ret_err = xasprintf("%s: %s", UID_LOCK_DIR, strerror(errno));
			goto fail;
		}
	} else if (sb->domains) {
		sb->uid = getuid();
		sb->gid = getgid();
	} else if (geteuid() == 0) {
		if (sandbox_job_user(c->job_user, &sb->uid, &sb->gid, ret_err) < 0)
			goto fail;
		sb->drop_uid = true;
	}
	sb->cap_last = (int)cap_max_bits() - 1;
	sb->landlock_abi = landlock_abi();
	sb->warm_max = c->concurrency > 0 ? (unsigned)c->concurrency : 1;
	sb->stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (sb->stack == MAP_FAILED) {
		sb->stack = NULL;
		*ret_err = xasprintf("child stack: %s", strerror(errno));
		goto fail;
	}
	return 0;
fail:
	sandbox_free(sb);
	return -1;
}

void sandbox_free(struct sandbox *sb)
{
	close_nointr(sb->interp_fd);
	free(sb->python);
	free(sb->interp_real);
	free(sb->loader_real);
	free(sb->shim_path);
	free(sb->shim_dir);
	free(sb->scratch_dir);
	sandbox_warm_flush(sb, true);
	free(sb->warm);
	for (int st = 0; st < 2; st++)
		for (int m = 0; m < 2; m++)
			free(sb->bpf[st][m]);
	if (sb->stack)
		munmap(sb->stack, CHILD_STACK);
	for (size_t i = 0; i < sb->ll_n; i++) {
		close(sb->ll_cache[i].fd);
		free(sb->ll_cache[i].path);
	}
	free(sb->ll_cache);
	memset(sb, 0, sizeof(*sb));
	sb->interp_fd = -1;
}

/* Remove a tree without following symlinks, relative to directory fds, so a
 * job cannot redirect the removal elsewhere. */
static void rm_rf_at(int parent, const char *name)
{
	int fd;

	/* Most jobs leave their scratch directory empty: one rmdir, no listing
	 * (reading even an empty ext4 directory cost a quarter of the
	 * daemon's CPU per no-op job). */
	if (unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		DIR *d = fdopendir(fd);
		struct dirent *de;

		if (d) {
			while ((de = readdir(d)))
				if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
					rm_rf_at(dirfd(d), de->d_name);
			closedir(d);
		} else {
			close(fd);
		}
		unlinkat(parent, name, AT_REMOVEDIR);
	} else if (unlinkat(parent, name, 0) < 0 && errno == EISDIR) {
		unlinkat(parent, name, AT_REMOVEDIR);   /* a directory we could not open */
	}
}

static int make_scratch(const struct sandbox *sb, const char *job_id, char **ret, char **ret_err)
{
	char *path = xasprintf("%s/taskexec-%.40s-XXXXXX", sb->scratch_dir, job_id);
	const char *dir = mkdtemp(path);

	if (!dir) {
		*ret_err = xasprintf("scratch dir under %s: %s", sb->scratch_dir, strerror(errno));
		free(path);
		return -1;
	}
	/* In a domain this is only where its root is mounted: ours, empty. */
	if (sb->drop_uid && !sb->domains && chown(dir, sb->uid, sb->gid) < 0) {
		*ret_err = xasprintf("chown %s: %s", dir, strerror(errno));
		rmdir(dir);
		free(path);
		return -1;
	}
	*ret = path;
	return 0;
}

/* Policy write paths must exist for Landlock (and a domain) to name them.
 * Missing ones are made here, one component at a time, each opened with
 * O_NOFOLLOW: a component that is a symbolic link stops it, so nobody can
 * swap one in to have root create the leaf elsewhere.  The parents stay
 * root's; the leaf is the job user's (weak mode), or, in domains, root's
 * with the jobs' shared group and set-gid, so that every job of the type
 * may write there (the child's umask is 002). */
static int make_write_paths(const struct sandbox *sb, const struct policy *p, char **ret_err)
{
	for (char **w = p->write_paths; w && *w; w++) {
		struct stat st;
		char *dup, *comp, *save = NULL;
		int fd, r = 0;
		bool created = false;

		if (stat(*w, &st) == 0)
			continue;       /* the operator's, as the operator made it */
		fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			r = -errno;
		dup = xstrdup(*w);
		for (comp = strtok_r(dup, "/", &save); comp && fd >= 0; comp = strtok_r(NULL, "/", &save)) {
			int nfd;

			created = mkdirat(fd, comp, 0755) == 0;
			if (!created && errno != EEXIST) {
				r = -errno;
				break;
			}
			nfd = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd < 0) {
				r = errno == ELOOP || errno == ENOTDIR ? -ELOOP : -errno;
				break;
			}
			close(fd);
			fd = nfd;
		}
		if (!r && created && sb->drop_uid &&
		    (sb->domains ? fchown(fd, 0, sb->gid) < 0 || fchmod(fd, 02770) < 0
				 : fchown(fd, sb->uid, sb->gid) < 0))
			r = -errno;
		close_nointr(fd);
		free(dup);
		if (r) {
			*ret_err = r == -ELOOP ? xasprintf("write path %s: a component is a symbolic link or not a "
							   "directory", *w)
					       : xasprintf("write path %s: %s", *w, strerror(-r));
			return -1;
		}
	}
	return 0;
}

/* ---- the child ------------------------------------------------------------ */

struct child_args {
	int in_fd, out_fd[4];           /* fd 0 source and fds 1-4 sources */
	int interp_fd, ruleset_fd, status_fd;
	pid_t parent;
	const char *scratch;
	const struct domain_plan *domain;       /* NULL in weak mode */
	bool newpid;                            /* pid 1 of a new pid namespace (a warm server) */
	uint64_t tmp_access;                    /* the Landlock rights on a domain's /tmp */
	bool drop_uid;
	uid_t uid;
	gid_t gid, group;                       /* group: the jobs' shared group, in domains */
	int cap_last;
	struct rlimit rl_as, rl_cpu, rl_nofile, rl_fsize, rl_nproc;
	struct sock_filter *bpf;
	unsigned short bpf_len;
	char *const *argv, *const *envp;
	const struct secret *secrets;           /* written to the job's /tmp, see write_secrets */
	size_t n_secrets;
};

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

/* The policy's [secrets], read by the parent before clone. */
struct secret {
	char *file;             /* name in the job's /tmp (the child's cwd) */
	char *value;
	size_t len;
};

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

#ifdef TASKEXEC_PREBUILT_FILTER
/* build/filter_bpf.h: the programs sandbox_build_filter produced at build
 * time (make runs build/gen_filter), so no job pays for compiling them. */
#include "filter_bpf.h"
#endif

/* The seccomp program for a network mode and stage, the first time it is needed. */
static int filter_for(struct sandbox *sb, enum net_mode m, enum filter_stage st, char **ret_err)
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

/* ---- spawn ---------------------------------------------------------------- */

/* Between clone and the child's exec: take the seccomp listener it sends,
 * let its one execveat continue, and return once the status socket reaches
 * EOF (the exec closed the child's copy, or the child is gone).  The child
 * runs on our memory until then, so we only wait here.  A failure before the
 * exec arrives as "step: error" in *ret_err; the child has then exited. */
/* Kill the child and return only once it runs no more (it stays waitable). */
static void kill_and_wait(pid_t pid)
{
	siginfo_t si;

	kill(pid, SIGKILL);
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
}

static void launch_handshake(pid_t pid, int status_fd, int server_listener, int *ret_listener, char **ret_err)
{
	bool exec_let_through = false;
	int64_t deadline = now_ms() + LAUNCH_TIMEOUT_MS;

	*ret_listener = -1;
	*ret_err = NULL;
	for (;;) {
		/* A fresh child's own listener (its one exec); a warm child's
		 * server's, which nothing may trip (there is no exec). */
		int watched = server_listener >= 0 ? server_listener : *ret_listener;
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
				if (server_listener < 0 && !exec_let_through && req.data.nr == SYS_execveat &&
				    (pid_t)req.pid == pid) {
					exec_let_through = true;
					resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
				} else {
					/* Our own code broke the policy before the exec. */
					char *name = sandbox_syscall_name(req.data.nr);

					kill(pid, SIGKILL);
					resp.error = -EPERM;
					if (!*ret_err)
						*ret_err = xasprintf("launch: %s before %s", name,
								     server_listener < 0 ? "exec" : "its own filter");
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
static void plan_domain(const struct sandbox *sb, const struct launch *l, const char *root, uid_t uid, gid_t gid,
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
	for (size_t i = 0; i < ARRAY_SIZE(system_read); i++)
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
static int take_uid(const struct sandbox *sb, uid_t *ret_uid)
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
static char **build_env(const struct policy *p, const char *scratch)
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
static int read_secrets(const struct policy *p, struct secret **ret, size_t *ret_n, char **ret_err)
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

static void secrets_free(struct secret *v, size_t n)
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
 * fds 1-4 and the status socket of its launch.  0, or -1 with *ret_err. */
static int make_io(const struct launch *l, int *in_fd, int pipes[4][2], int status[2], char **ret_err)
{
	*in_fd = memfd_create("taskexec-job", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (*in_fd < 0 || write_all(*in_fd, l->input, l->input_len) < 0 || lseek(*in_fd, 0, SEEK_SET) < 0 ||
	    fcntl(*in_fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0) {
		*ret_err = xasprintf("job input memfd: %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < 4; i++)
		if (pipe2(pipes[i], O_CLOEXEC) < 0) {
			*ret_err = xasprintf("pipe: %s", strerror(errno));
			return -1;
		}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, status) < 0) {
		*ret_err = xasprintf("socketpair: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* The limits of the policy, for child(). */
static void set_limits(struct child_args *a, const struct policy *p)
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
static int clone_child(struct sandbox *sb, struct child_args *a, int flags, int status[2], pid_t *ret_pid,
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
	launch_handshake(pid, status[0], -1, ret_listener, ret_launch_err);
	*ret_pid = pid;
	*ret_pidfd = pidfd;
	return 0;
}

static int fresh_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err)
{
	const struct policy *p = l->policy;
	struct child_args a = { 0 };
	int pipes[4][2], status[2] = { -1, -1 }, in_fd = -1, ruleset = -1;
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

	for (int i = 0; i < 4; i++)
		pipes[i][0] = pipes[i][1] = -1;
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
	if (make_io(l, &in_fd, pipes, status, ret_err) < 0 ||
	    landlock_build(sb, l, sb->domains ? NULL : scratch, &ruleset, ret_err) < 0)
		goto out;
	envp = build_env(p, sb->domains ? "/tmp" : scratch);

	a.in_fd = in_fd;
	for (int i = 0; i < 4; i++)
		a.out_fd[i] = pipes[i][1];
	a.interp_fd = sb->interp_fd;
	a.ruleset_fd = ruleset;
	a.status_fd = status[1];
	a.parent = getpid();
	a.scratch = scratch;
	a.domain = sb->domains ? &plan : NULL;
	a.tmp_access = ll_fs_handled(sb->landlock_abi) & LL_WRITE;
	a.drop_uid = sb->drop_uid;
	a.uid = uid;
	a.gid = gid;
	a.group = sb->gid;
	a.cap_last = sb->cap_last;
	set_limits(&a, p);
	/* The child patches its pid into its copy of this. */
	bpf = xmalloc(sb->bpf_len[STAGE_JOB][p->network] * sizeof(*bpf));
	memcpy(bpf, sb->bpf[STAGE_JOB][p->network], sb->bpf_len[STAGE_JOB][p->network] * sizeof(*bpf));
	a.bpf = bpf;
	a.bpf_len = sb->bpf_len[STAGE_JOB][p->network];
	a.argv = argv;
	a.envp = envp;
	a.secrets = secrets;
	a.n_secrets = n_secrets;

	if (clone_child(sb, &a, plan.clone_flags, status, &ret->pid, &ret->pidfd, &ret->listener, &ret->launch_err,
			ret_err) < 0)
		goto out;
	for (int i = 0; i < 4; i++) {
		ret->fd[i] = pipes[i][0];
		pipes[i][0] = -1;
		fd_nonblock(ret->fd[i]);
	}
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
	for (int i = 0; i < 4; i++) {
		close_nointr(pipes[i][0]);
		close_nointr(pipes[i][1]);
	}
	close_nointr(status[0]);
	close_nointr(status[1]);
	close_nointr(in_fd);
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

/* ---- warm servers ----------------------------------------------------------
 *
 * A policy with [start] mode = warm runs its attempts as forks of a warm
 * server: the shim started with --serve through the very launch above (its
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
	a.in_fd = null;
	a.out_fd[0] = null;
	a.out_fd[1] = errfd;
	a.out_fd[2] = ctl[1];
	a.out_fd[3] = null;
	a.interp_fd = sb->interp_fd;
	a.ruleset_fd = ruleset;
	a.status_fd = status[1];
	a.parent = getpid();
	a.scratch = root;
	a.domain = &plan;
	a.newpid = true;
	a.tmp_access = ll_fs_handled(sb->landlock_abi) & LL_WRITE;
	a.drop_uid = sb->drop_uid;
	a.uid = uid;
	a.gid = gid;
	a.group = sb->gid;
	a.cap_last = sb->cap_last;
	set_limits(&a, p);
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
	sb->warm = xreallocarray(sb->warm, sb->n_warm + 1, sizeof(*sb->warm));
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
	int pipes[4][2], status[2] = { -1, -1 }, in_fd = -1, setup = -1, pidfd = -1, r = -1;
	struct secret *secrets = NULL;
	size_t n_secrets = 0;
	char **envp = NULL, *violation = NULL, tag = 'R', reply[8];
	ssize_t n;

	for (int i = 0; i < 4; i++)
		pipes[i][0] = pipes[i][1] = -1;
	if (make_write_paths(sb, p, ret_err) < 0 || read_secrets(p, &secrets, &n_secrets, ret_err) < 0 ||
	    make_io(l, &in_fd, pipes, status, ret_err) < 0)
		goto out;
	envp = build_env(p, "/tmp");
	if (write_setup(sb, l, envp, secrets, n_secrets, &setup, ret_err) < 0)
		goto out;
	{
		int fds[7] = { in_fd, pipes[0][1], pipes[1][1], pipes[2][1], pipes[3][1], status[1], setup };
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
	for (int i = 0; i < 4; i++) {
		close_nointr(pipes[i][1]);
		pipes[i][1] = -1;
	}
	close_nointr(status[1]);
	status[1] = -1;
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
	launch_handshake(ret->pid, status[0], w->listener, &ret->listener, &ret->launch_err);
	for (int i = 0; i < 4; i++) {
		ret->fd[i] = pipes[i][0];
		pipes[i][0] = -1;
		fd_nonblock(ret->fd[i]);
	}
	ret->landlock = w->landlock;
	ret->domain = true;
	w->forks++;
	r = 0;
out:
	free(violation);
	close_nointr(pidfd);
	for (int i = 0; i < 4; i++) {
		close_nointr(pipes[i][0]);
		close_nointr(pipes[i][1]);
	}
	close_nointr(status[0]);
	close_nointr(status[1]);
	close_nointr(in_fd);
	close_nointr(setup);
	strv_free(envp);
	secrets_free(secrets, n_secrets);
	return r;
}

static int warm_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err)
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

int sandbox_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err)
{
	memset(ret, 0, sizeof(*ret));
	ret->pidfd = ret->listener = ret->uid_lock = -1;
	for (int i = 0; i < 4; i++)
		ret->fd[i] = -1;
	/* Warm servers need a domain: its pid namespace and /tmp are what keep
	 * one attempt from the next. */
	if (l->policy->start == START_WARM && sb->domains)
		return warm_spawn(sb, l, ret, ret_err);
	return fresh_spawn(sb, l, ret, ret_err);
}

int proc_exit_fd(const struct proc *p)
{
	return p->server ? p->server->ctl : p->pidfd;
}

int proc_wait(struct proc *p, int *ret_status, struct rusage *ret_ru)
{
	struct {
		char tag, pad[3];
		int32_t status;
		int64_t utime_us, stime_us, maxrss_kb;
	} x;
	struct rusage ru = { 0 };
	int status = 0;
	ssize_t n;

	if (!p->server) {
		while (wait4(p->pid, &status, 0, &ru) < 0 && errno == EINTR)
			;
		p->reaped = true;
		if (ret_status)
			*ret_status = status;
		if (ret_ru)
			*ret_ru = ru;
		return 0;
	}
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
static void warm_release(struct proc *p)
{
	struct warm *w = p->server;

	p->server = NULL;
	w->busy = false;
	if (!p->reaped || w->retire || w->forks >= w->max_forks || now_ms() - w->started >= w->max_age_ms)
		warm_kill(w);
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

/* A scratch directory the job left full: rm -rf in a child process, so a
 * job that made a million files cannot stall the caller's event loop.  The
 * job is gone, so nothing can change the tree under rm; rm never follows a
 * symbolic link.  Returns the child's pidfd for the caller to reap, or -1
 * when it was removed here (at once, or as a fallback). */
static int remove_tree_async(const char *path)
{
	char *argv[] = { (char *)"rm", (char *)"-rf", (char *)"--one-file-system", (char *)"--", (char *)path, NULL };
	char *envp[] = { NULL };
	pid_t pid;
	int pidfd;

	if (unlinkat(AT_FDCWD, path, AT_REMOVEDIR) == 0 || errno == ENOENT)
		return -1;
	if (posix_spawn(&pid, "/bin/rm", NULL, NULL, argv, envp) != 0) {
		rm_rf_at(AT_FDCWD, path);
		return -1;
	}
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pidfd;
}

int proc_cleanup_async(struct proc *p)
{
	int pidfd = -1;

	if (p->scratch) {
		pidfd = remove_tree_async(p->scratch);
		free(p->scratch);
		p->scratch = NULL;
	}
	proc_cleanup(p);
	return pidfd;
}

void proc_cleanup(struct proc *p)
{
	if (p->server)
		warm_release(p);
	close_nointr(p->uid_lock);
	p->uid_lock = -1;
	for (int i = 0; i < 4; i++) {
		close_nointr(p->fd[i]);
		p->fd[i] = -1;
	}
	close_nointr(p->pidfd);
	close_nointr(p->listener);
	p->pidfd = p->listener = -1;
	free(p->launch_err);
	p->launch_err = NULL;
	if (p->scratch) {
		rm_rf_at(AT_FDCWD, p->scratch);
		free(p->scratch);
		p->scratch = NULL;
	}
}
