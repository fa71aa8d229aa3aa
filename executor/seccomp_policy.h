/* SPDX-License-Identifier: ISC */
/* seccomp_policy — the seccomp allow-list of a job and of a warm server, as
 * BPF programs compiled with libseccomp (at build time, by gen_filter). */
#ifndef TASKEXEC_SECCOMP_POLICY_H
#define TASKEXEC_SECCOMP_POLICY_H

#include <linux/filter.h>
#include <stdint.h>

#include "policy.h"

/* The child's own pid is not known when the filter is compiled; rules about
 * "this process" compare against this value, which the child replaces in its
 * copy-on-write copy of the program before loading it. */
#define PID_PLACEHOLDER 0x7e57c0deU

/* Compile the seccomp program for a network mode (the build runs this once
 * through gen_filter and compiles the result in; see filter_for). */
enum filter_stage { STAGE_JOB, STAGE_SERVER };
int sandbox_build_filter(enum net_mode net, enum filter_stage stage, struct sock_filter **ret,
			 unsigned short *ret_len, char **ret_err);
/* The name of syscall NR on this architecture (caller frees). */
char *sandbox_syscall_name(long nr);
/* Take one seccomp notification from the listener: the syscall that broke
 * the policy (caller frees) and the notification's id, or NULL. */
char *sandbox_notif_recv(int listener, uint64_t *ret_id);
/* Answer it with EPERM — after the caller has killed the job. */
void sandbox_notif_deny(int listener, uint64_t id);

#endif
