/* SPDX-License-Identifier: ISC */
/* sandbox_int — what the launcher's files share and nothing else includes:
 * sandbox.c, seccomp_policy.c, landlock.c, scratch.c, spawn.c and warm.c.
 * Other modules include only sandbox.h. */
#ifndef TASKEXEC_SANDBOX_INT_H
#define TASKEXEC_SANDBOX_INT_H

#include <linux/landlock.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "sandbox.h"

struct domain_plan;

#define CHILD_STACK (256 * 1024)

/* Where the uids of running domains are locked, host-wide. */
#define UID_LOCK_DIR "/run/taskexec/uids"

/* ---- seccomp_policy.c --------------------------------------------------- */

/* The seccomp program for a network mode and stage, the first time it is needed. */
int filter_for(struct sandbox *sb, enum net_mode m, enum filter_stage st, char **ret_err);

/* ---- landlock.c ------------------------------------------------------- */

/* Landlock rights newer than the installed header may know. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define LL_WRITE (LL_READ | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
		  LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_DIR | \
		  LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SYM | LANDLOCK_ACCESS_FS_REFER)

/* System files every interpreter needs to start, read-only. */
extern const char *const system_read[];
extern const size_t n_system_read;

/* The ABI this kernel offers, 0 when Landlock is not available. */
int landlock_abi(void);
/* The filesystem rights ABI handles. */
uint64_t ll_fs_handled(int abi);
/* The ruleset of an attempt in *ret_fd (-1 without Landlock); SCRATCH is
 * its scratch dir in weak mode, NULL in a domain.  0, or -1 with *ret_err. */
int landlock_build(struct sandbox *sb, const struct launch *l, const char *scratch, int *ret_fd, char **ret_err);
void landlock_free_cache(struct sandbox *sb);

/* ---- scratch.c ------------------------------------------------------- */

void rm_rf_at(int parent, const char *name);
int make_scratch(const struct sandbox *sb, const char *job_id, char **ret, char **ret_err);
int make_write_paths(const struct sandbox *sb, const struct policy *p, char **ret_err);
int remove_tree_async(const char *path);

/* ---- spawn.c ------------------------------------------------------------ */

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

/* The policy's [secrets], read by the parent before clone. */
struct secret {
	char *file;             /* name in the job's /tmp (the child's cwd) */
	char *value;
	size_t len;
};

void launch_handshake(pid_t pid, int status_fd, bool warm, int server_listener, int *ret_listener,
		      char **ret_err);
void plan_domain(const struct sandbox *sb, const struct launch *l, const char *root, uid_t uid, gid_t gid,
		 struct domain_plan *dp);
int take_uid(const struct sandbox *sb, uid_t *ret_uid);
char **build_env(const struct policy *p, const char *scratch);
int read_secrets(const struct policy *p, struct secret **ret, size_t *ret_n, char **ret_err);
void secrets_free(struct secret *v, size_t n);
/* An attempt's I/O until the child holds its ends (see make_io). */
struct attempt_io {
	int in_fd;              /* the job, on a sealed memfd */
	int pipe[4][2];         /* fds 1-4: [0] ours, [1] the child's */
	int status[2];          /* the launch's status socket: [0] ours, [1] the child's */
};
#define ATTEMPT_IO_NONE { -1, { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } }, { -1, -1 } }
int make_io(const struct launch *l, struct attempt_io *io, char **ret_err);
/* Close what the child now holds (after it has its copies). */
void io_close_child_ends(struct attempt_io *io);
/* Give our ends of fds 1-4 to RET, non-blocking. */
void io_give(struct attempt_io *io, struct proc *ret);
void io_close(struct attempt_io *io);
void set_limits(struct child_args *a, const struct policy *p);
void child_args_init(struct child_args *a, const struct sandbox *sb, const struct policy *p, uid_t uid, gid_t gid);
int clone_child(struct sandbox *sb, struct child_args *a, int flags, int status[2], pid_t *ret_pid,
		int *ret_pidfd, int *ret_listener, char **ret_launch_err, char **ret_err);
int fresh_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err);

/* ---- warm.c ------------------------------------------------------------- */

int warm_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err);
int warm_exit_fd(const struct warm *w);
int warm_wait(struct proc *p, int *ret_status, struct rusage *ret_ru);
void warm_release(struct proc *p);

#endif
