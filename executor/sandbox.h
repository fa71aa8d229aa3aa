/* sandbox — launch one attempt: a fresh interpreter under rlimits, a dropped uid
 * and capabilities, no_new_privs, Landlock and a seccomp allow-list. */
#ifndef TASKEXEC_SANDBOX_H
#define TASKEXEC_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "policy.h"

/* The fd the interpreter is executed from; see the comment in sandbox.c. */
#define SANDBOX_EXEC_FD 1023

/* Built once at start, before any child exists. */
struct sandbox {
	int interp_fd;                  /* O_PATH of the interpreter */
	char *python, *interp_real, *loader_real, *shim_path, *shim_dir, *scratch_dir;
	bool drop_uid;                  /* running as root: switch to the job user */
	uid_t uid;
	gid_t gid;
	int landlock_abi;               /* 0 = not available */
	int cap_last;                   /* highest capability number the kernel knows */
	struct sock_filter *bpf[2];     /* per enum net_mode, with a pid placeholder */
	unsigned short bpf_len[2];
};

/* What one attempt needs. */
struct launch {
	const struct policy *policy;
	char *const *roots;             /* task roots (read-only, on sys.path) */
	const char *input;              /* the job envelope for fd 0 */
	size_t input_len;
	const char *job_id;             /* names the scratch dir */
};

/* A running attempt: the parent's ends of its pipes. */
struct proc {
	pid_t pid;
	int pidfd;
	int fd[4];                      /* PROC_STDOUT .. PROC_EVENTS, non-blocking */
	int status_fd;                  /* launch failures; EOF at a successful execve */
	char *scratch;                  /* removed by proc_cleanup */
	bool landlock;
};
enum { PROC_STDOUT, PROC_STDERR, PROC_RESULT, PROC_EVENTS };

int sandbox_init(struct sandbox *sb, const struct config *c, char **ret_err);
void sandbox_free(struct sandbox *sb);
/* Start an attempt.  0, or -1 with a one-line message (nothing left behind). */
int sandbox_spawn(struct sandbox *sb, const struct launch *l, struct proc *ret, char **ret_err);
/* Close the parent's fds and remove the scratch dir (after the child is reaped). */
void proc_cleanup(struct proc *p);
/* The name of syscall NR on this architecture (caller frees). */
char *sandbox_syscall_name(long nr);
/* Read a launch failure from the status fd: "step: error", or NULL when the
 * execve succeeded (caller frees). */
char *proc_launch_error(struct proc *p);

#endif
