/* SPDX-License-Identifier: ISC */
/* domain — an attempt's isolation domain (see domain.h).
 *
 * The parent turns what a job may see into a list of steps with every path
 * and option already formatted; the child, between clone and execve, only
 * walks that list with raw system calls.  The new root is a tmpfs mounted on
 * an empty host directory: the interpreter's /usr, the few /etc files name
 * resolution and the loader read, three device nodes, the job's allowed task
 * packages, the shim, the policy's read and write paths, and a size-limited
 * tmpfs /tmp as the job's scratch.  Everything is nosuid; everything but the
 * device nodes nodev; all of it read-only but /tmp and the write paths.  Then
 * pivot_root and a lazy unmount of the old root: nothing else of the host
 * stays reachable by path, so no host socket, no /etc/shadow to stat, no
 * sibling's scratch to watch or chmod. */
#include "domain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void domain_plan_init(struct domain_plan *dp, const char *root, bool net_none, bool userns, uid_t uid, gid_t gid)
{
	memset(dp, 0, sizeof(*dp));
	dp->root = xstrdup(root);
	dp->clone_flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (net_none ? CLONE_NEWNET : 0) |
			  (userns ? CLONE_NEWUSER : 0);
	dp->userns = userns;
	/* Unprivileged, the job keeps its own ids, mapped to themselves. */
	snprintf(dp->uid_map, sizeof(dp->uid_map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	snprintf(dp->gid_map, sizeof(dp->gid_map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
}

void domain_plan_free(struct domain_plan *dp)
{
	for (size_t i = 0; i < dp->n; i++) {
		free(dp->ops[i].src);
		free(dp->ops[i].dst);
	}
	free(dp->ops);
	free(dp->root);
	memset(dp, 0, sizeof(*dp));
}

static bool has_dst(const struct domain_plan *dp, const char *dst)
{
	for (size_t i = 0; i < dp->n; i++)
		if (!strcmp(dp->ops[i].dst, dst))
			return true;
	return false;
}

static void add(struct domain_plan *dp, enum dom_kind kind, const char *src, const char *path, unsigned long flags)
{
	if (dp->n == dp->cap) {
		dp->cap = dp->cap ? 2 * dp->cap : 32;
		dp->ops = xreallocarray(dp->ops, dp->cap, sizeof(*dp->ops));
	}
	dp->ops[dp->n++] = (struct dom_op){ kind, src ? xstrdup(src) : NULL, xasprintf("%s%s", dp->root, path), flags };
}

/* Directories leading to PATH (and PATH itself when SELF), each made once. */
static void mkdirs(struct domain_plan *dp, const char *path, bool self)
{
	char *p = xstrdup(path);

	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c && c != '/')
			continue;
		if (!c && !self)
			break;
		*s = '\0';
		{
			char *dst = xasprintf("%s%s", dp->root, p);

			if (!has_dst(dp, dst))
				add(dp, DOM_MKDIR, NULL, p, 0);
			free(dst);
		}
		*s = c;
		if (!c)
			break;
	}
	free(p);
}

/* The flags a bind mount must keep: in a user namespace the kernel refuses
 * to drop what the source mount has (nosuid, nodev, noexec, read-only,
 * atime), so carry them over, and add ours. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;

	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY)
		f |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME)
		f |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		f |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		f |= MS_RELATIME;
	return f;
}

void domain_bind(struct domain_plan *dp, const char *path, bool writable)
{
	struct stat st;
	char target[256];
	ssize_t n;
	char *dst;

	if (*path != '/' || lstat(path, &st) < 0)
		return;
	dst = xasprintf("%s%s", dp->root, path);
	if (has_dst(dp, dst)) {
		free(dst);
		return;
	}
	free(dst);
	/* /lib -> usr/lib on a merged-/usr system: the same link, inside. */
	if (S_ISLNK(st.st_mode) && !strchr(path + 1, '/') &&
	    (n = readlink(path, target, sizeof(target) - 1)) > 0 && target[0] != '/') {
		target[n] = '\0';
		add(dp, DOM_SYMLINK, target, path, 0);
		return;
	}
	if (stat(path, &st) < 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		mkdirs(dp, path, true);
	} else {
		mkdirs(dp, path, false);
		add(dp, DOM_FILE, NULL, path, 0);
	}
	add(dp, DOM_BIND, path, path, MS_NOSUID | MS_NODEV | (writable ? 0 : MS_RDONLY) | locked_flags(path));
}

void domain_dev(struct domain_plan *dp)
{
	static const char *const nodes[] = { "/dev/null", "/dev/zero", "/dev/urandom" };

	domain_tmpfs(dp, "/dev", "size=64k,nr_inodes=16,mode=0755");
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		add(dp, DOM_FILE, NULL, nodes[i], 0);
		/* Device nodes need dev; nothing there may be executed. */
		add(dp, DOM_BIND, nodes[i], nodes[i], (MS_NOSUID | MS_NOEXEC | locked_flags(nodes[i])) & ~MS_NODEV);
	}
}

void domain_tmpfs(struct domain_plan *dp, const char *path, const char *opts)
{
	mkdirs(dp, path, true);
	add(dp, DOM_TMPFS, opts, path, MS_NOSUID | MS_NODEV);
}

/* ---- in the child --------------------------------------------------------- */

static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, text, strlen(text));
	close(fd);
	return n == (ssize_t)strlen(text) ? 0 : -1;
}

const char *domain_enter(const struct domain_plan *dp)
{
	/* 1. Unprivileged: map our own ids to themselves (setgroups must be
	 *    denied first, or the kernel refuses the gid map). */
	if (dp->userns) {
		/* The runner made itself non-dumpable, which leaves /proc/self to
		 * root; until the exec the child is the caller's own uid, so nobody
		 * gains anything by its being dumpable. */
		if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
			return "userns dumpable";
		if (write_file("/proc/self/setgroups", "deny") < 0)
			return "userns setgroups";
		if (write_file("/proc/self/uid_map", dp->uid_map) < 0)
			return "userns uid_map";
		if (write_file("/proc/self/gid_map", dp->gid_map) < 0)
			return "userns gid_map";
	}
	/* 2. Nothing we mount may propagate back to the host. */
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		return "mount private";
	/* 3. The new root, then every step of the plan, in order: /tmp and /dev
	 *    come first, so binds beneath them land on the tmpfs. */
	if (mount("tmpfs", dp->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") < 0)
		return "mount root tmpfs";
	for (size_t i = 0; i < dp->n; i++) {
		const struct dom_op *op = &dp->ops[i];
		int fd;

		switch (op->kind) {
		case DOM_MKDIR:
			if (mkdir(op->dst, 0755) < 0 && errno != EEXIST)
				return "mkdir";
			break;
		case DOM_FILE:
			fd = open(op->dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
			if (fd < 0)
				return "create mount point";
			close(fd);
			break;
		case DOM_SYMLINK:
			if (symlink(op->src, op->dst) < 0)
				return "symlink";
			break;
		case DOM_BIND:
			if (mount(op->src, op->dst, "none", MS_BIND | MS_REC, NULL) < 0)
				return "bind mount";
			if (mount("none", op->dst, "none", MS_REMOUNT | MS_BIND | op->flags, NULL) < 0)
				return "remount bind";
			break;
		case DOM_TMPFS:
			if (mount("tmpfs", op->dst, "tmpfs", op->flags, op->src) < 0)
				return "mount tmpfs";
			break;
		}
	}
	if (mount("none", dp->root, "none", MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return "remount root read-only";
	/* 4. Into it: pivot_root with the old root stacked beneath the new one,
	 *    then detach the old root; no path leads out any more. */
	if (chdir(dp->root) < 0)
		return "chdir root";
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return "pivot_root";
	if (umount2(".", MNT_DETACH) < 0)
		return "detach old root";
	if (chdir("/tmp") < 0)
		return "chdir /tmp";
	return NULL;
}

int domain_probe(bool userns, char **ret_err)
{
	int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | (userns ? CLONE_NEWUSER : 0);
	pid_t pid = fork();
	int status, err;

	if (pid < 0) {
		*ret_err = xasprintf("isolation domains: fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0)
		_exit(unshare(flags) < 0 ? (errno & 0x7f) : 0);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status)) {
		*ret_err = xstrdup("isolation domains: the probe child did not exit");
		return -ECHILD;
	}
	err = WEXITSTATUS(status);
	if (!err)
		return 0;
	if (userns)
		*ret_err = xasprintf("isolation domains: the kernel refuses unprivileged user namespaces (%s): check "
				     "the sysctls kernel.unprivileged_userns_clone, user.max_user_namespaces and "
				     "kernel.apparmor_restrict_unprivileged_userns, or run as root; "
				     "TASKEXEC_ISOLATION=weak runs jobs without domains", strerror(err));
	else
		*ret_err = xasprintf("isolation domains: the kernel refuses new namespaces (%s): a seccomp filter, "
				     "an LSM or a container without CAP_SYS_ADMIN around taskexecd; "
				     "TASKEXEC_ISOLATION=weak runs jobs without domains", strerror(err));
	return -err;
}
