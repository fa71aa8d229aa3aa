/* SPDX-License-Identifier: ISC */
/* landlock — the Landlock ruleset of an attempt: the rights this kernel's ABI
 * handles, the system paths every interpreter reads (opened once and cached),
 * the task roots or packages, the policy's read and write paths and the
 * scratch dir.  Built in the parent; the launcher child adds a domain's /tmp
 * and restricts itself (spawn.c). */

#include "sandbox_int.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;    /* ABI 4 */
	uint64_t scoped;                /* ABI 6 */
};


int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	return v < 0 ? 0 : (int)v;
}

uint64_t ll_fs_handled(int abi)
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


#define LL_FILE_RIGHTS (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
			LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

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
const char *const system_read[] = {
	"/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/etc/localtime", "/etc/hosts", "/etc/resolv.conf",
	"/etc/nsswitch.conf", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl", "/etc/ca-certificates",
	"/etc/mime.types", "/dev/urandom",
};
const size_t n_system_read = ARRAY_SIZE(system_read);

int landlock_build(struct sandbox *sb, const struct launch *l, const char *scratch,
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
	for (size_t i = 0; i < n_system_read && !r; i++)
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

/* Close the cached system paths (sandbox_free). */
void landlock_free_cache(struct sandbox *sb)
{
	for (size_t i = 0; i < sb->ll_n; i++) {
		close(sb->ll_cache[i].fd);
		free(sb->ll_cache[i].path);
	}
	free(sb->ll_cache);
}
