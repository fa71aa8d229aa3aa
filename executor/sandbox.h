/* SPDX-License-Identifier: ISC */
/* sandbox — launch one attempt: a fresh interpreter under rlimits, a dropped uid
 * and capabilities, no_new_privs, Landlock and a seccomp allow-list. */
#ifndef TASKEXEC_SANDBOX_H
#define TASKEXEC_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "config.h"
#include "policy.h"
#include "seccomp_policy.h"

/* The fd the interpreter is executed from; see the execveat rule in
 * seccomp_policy.c. */
#define SANDBOX_EXEC_FD 1023
/* The child's end of the status socket until execve: launch failures and the
 * seccomp listener travel over it. */
#define SANDBOX_STATUS_FD 1022

struct ll_path;

/* Built once at start, before any child exists. */
struct sandbox {
	int interp_fd;                  /* O_PATH of the interpreter */
	char *python, *interp_real, *loader_real, *shim_path, *shim_dir, *scratch_dir;
	bool drop_uid;                  /* running as root: switch to the job user */
	uid_t uid;                      /* weak mode: the job user; domains: the jobs' shared group */
	gid_t gid;
	/* Isolation domains (domain.h): as root each running job takes its own
	 * uid and gid from TASKEXEC_JOB_UIDS; unprivileged, a user namespace. */
	bool domains, userns;
	uid_t uid_first;                /* the shared group; slot i is uid_first + 1 + i */
	unsigned uid_slots;
	int landlock_abi;               /* 0 = not available */
	int cap_last;                   /* highest capability number the kernel knows */
	struct sock_filter *bpf[2][2];  /* per enum filter_stage and enum net_mode, built on first use */
	unsigned short bpf_len[2][2];
	/* Warm servers (policy [start] mode = warm): at most warm_max, one per
	 * running attempt plus idle ones kept for the next (see warm.c). */
	struct warm **warm;
	size_t n_warm;
	unsigned warm_max, warm_seq;
	void *stack;                    /* the child's stack until it execs (CLONE_VM) */
	struct ll_path *ll_cache;       /* O_PATH fds of the system paths, opened once */
	size_t ll_n;
};

/* What one attempt needs. */
struct launch {
	const struct policy *policy;
	char *const *roots;             /* task roots (read-only, on sys.path) */
	char *const *packages;          /* the allowed top-level packages: all a domain shows of the roots */
	const char *input;              /* the job envelope for fd 0 */
	size_t input_len;
	const char *job_id;             /* names the scratch dir */
};

/* A running attempt: the parent's ends of its pipes. */
struct proc {
	pid_t pid;
	int pidfd;
	int fd[4];                      /* PROC_STDOUT .. PROC_EVENTS, non-blocking */
	int listener;                   /* seccomp notifications: every one is a violation */
	char *launch_err;               /* "step: error" when the child failed before its exec */
	char *scratch;                  /* removed by proc_cleanup */
	bool landlock;
	bool domain;                    /* ran in an isolation domain */
	int uid_lock;                   /* the flock that makes its uid ours, or -1 */
	struct warm *server;            /* forked by this warm server (which reaps it), or NULL */
	bool reaped;
};
enum { PROC_STDOUT, PROC_STDERR, PROC_RESULT, PROC_EVENTS };

int sandbox_init(struct sandbox *sb, const struct config *c, char **ret_err);
/* The user a job runs as when the daemon is root: 0, or -ENOENT (no such
 * user) or -EPERM (uid or gid 0: a job never runs as root) with a message
 * naming TASKEXEC_JOB_USER. */
int sandbox_job_user(const char *name, uid_t *ret_uid, gid_t *ret_gid, char **ret_err)
	__attribute__((warn_unused_result));
void sandbox_free(struct sandbox *sb);
/* Start an attempt.  0, or -1 with a one-line message (nothing left behind). */
int sandbox_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err);
/* The fd that becomes readable when the attempt's process has ended: its
 * pidfd, or its warm server's control socket. */
int proc_exit_fd(const struct proc *p);
/* Reap the ended attempt: its wait status and resource use.  0, or -1 when
 * its warm server died or broke protocol (the status is then a SIGKILL):
 * the executor's fault, not the job's.  Blocks until the process is gone. */
int proc_wait(struct proc *p, int *ret_status, struct rusage *ret_ru);
/* Close the parent's fds and remove the scratch dir (after proc_wait); a
 * warm attempt's server goes back to its pool, or is replaced. */
void proc_cleanup(struct proc *p);
/* The same, but a scratch dir the job left full is removed by an rm child:
 * returns its pidfd, to be reaped with waitid(P_PIDFD), or -1. */
int proc_cleanup_async(struct proc *p);
/* Stop idle warm servers now and busy ones when their attempt ends (SIGHUP:
 * policies may have changed); ALL: stop every one now (exit). */
void sandbox_warm_flush(struct sandbox *sb, bool all);

#endif
