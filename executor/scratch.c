/* SPDX-License-Identifier: ISC */
/* scratch — the files an attempt gets on the host: its scratch dir (in a
 * domain, only where its root is mounted), the policy's write paths, made
 * without following a symbolic link, and the removal of both kinds of tree
 * afterwards without following one either, at once or in an rm child. */

#include "sandbox_int.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Remove a tree without following symlinks, relative to directory fds, so a
 * job cannot redirect the removal elsewhere. */
void rm_rf_at(int parent, const char *name)
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

int make_scratch(const struct sandbox *sb, const char *job_id, char **ret, char **ret_err)
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
int make_write_paths(const struct sandbox *sb, const struct policy *p, char **ret_err)
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


/* A scratch directory the job left full: rm -rf in a child process, so a
 * job that made a million files cannot stall the caller's event loop.  The
 * job is gone, so nothing can change the tree under rm; rm never follows a
 * symbolic link.  Returns the child's pidfd for the caller to reap, or -1
 * when it was removed here (at once, or as a fallback). */
int remove_tree_async(const char *path)
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
