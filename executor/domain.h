/* SPDX-License-Identifier: ISC */
/* domain — an attempt's isolation domain: its own mount, ipc and uts (and,
 * under network = none, network) namespaces, a minimal read-only root and a
 * size-limited tmpfs as its /tmp, entered by the launcher child between clone
 * and execve from a plan the parent built (see spawn.c). */
#ifndef TASKEXEC_DOMAIN_H
#define TASKEXEC_DOMAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

enum dom_kind { DOM_MKDIR, DOM_FILE, DOM_SYMLINK, DOM_BIND, DOM_TMPFS };

struct dom_op {
	enum dom_kind kind;
	char *src;              /* bind: host path; symlink: target; tmpfs: mount options */
	char *dst;              /* where, under the new root (already prefixed with it) */
	unsigned long flags;    /* bind and tmpfs: the mount flags it ends with */
};

/* Everything the child needs, prepared in the parent: plain memory it only reads. */
struct domain_plan {
	char *root;             /* the host directory the new root tmpfs is mounted on */
	struct dom_op *ops;
	size_t n, cap;
	int clone_flags;
	/* Unprivileged (user namespace): the maps the child writes for itself. */
	bool userns;
	char uid_map[32], gid_map[32];
};

/* Start a plan whose root is mounted on ROOT (an empty host directory). */
void domain_plan_init(struct domain_plan *dp, const char *root, bool net_none, bool userns, uid_t uid, gid_t gid);
void domain_plan_free(struct domain_plan *dp);
/* Mirror the host PATH at the same place: read-only, or writable; missing
 * paths are skipped (a policy may name what only some hosts have). */
void domain_bind(struct domain_plan *dp, const char *path, bool writable);
/* The three device nodes a job may use, on a tmpfs /dev. */
void domain_dev(struct domain_plan *dp);
/* A tmpfs at PATH (under the new root) with mount options OPTS. */
void domain_tmpfs(struct domain_plan *dp, const char *path, const char *opts);

/* In the launcher child, as the first steps after clone: build the root,
 * pivot into it, leave the job in /tmp.  Async-signal-safe: raw system calls
 * on the plan's memory only.  NULL, or the failing step (errno says why). */
const char *domain_enter(const struct domain_plan *dp);

/* Whether this kernel lets us make the domain (probed once, in a child):
 * 0, or -errno with a one-line reason naming the setting that refused. */
int domain_probe(bool userns, char **ret_err);

#endif
