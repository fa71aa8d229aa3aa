/* SPDX-License-Identifier: ISC */
/* sandbox — launch one attempt: a fresh interpreter under rlimits, a dropped uid
 * and capabilities, no_new_privs, Landlock and a seccomp allow-list.
 *
 * This file is the launcher's state and its public face: what is found and
 * checked once at start (the interpreter, the shim, the job users and uid
 * range), the choice between a fresh launch and a warm server, and the end
 * of an attempt.  The concerns it delegates, one file each:
 *
 *   seccomp_policy.c  the seccomp allow-list, compiled at build time
 *   landlock.c        the Landlock ruleset
 *   domain.c          the isolation domain: namespaces and mounts
 *   scratch.c         scratch dirs and write paths, made and removed
 *   spawn.c           the launcher child, fork to exec, and its handshake
 *   warm.c            warm servers that fork attempts on request */

#include "sandbox_int.h"
#include "domain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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
	landlock_free_cache(sb);
	memset(sb, 0, sizeof(*sb));
	sb->interp_fd = -1;
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
	return p->server ? warm_exit_fd(p->server) : p->pidfd;
}

int proc_wait(struct proc *p, int *ret_status, struct rusage *ret_ru)
{
	struct rusage ru = { 0 };
	int status = 0;

	if (p->server)
		return warm_wait(p, ret_status, ret_ru);
	while (wait4(p->pid, &status, 0, &ru) < 0 && errno == EINTR)
		;
	p->reaped = true;
	if (ret_status)
		*ret_status = status;
	if (ret_ru)
		*ret_ru = ru;
	return 0;
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
