/* SPDX-License-Identifier: ISC */
/* daemon — taskexecd's process: the loop, Redis and PostgreSQL connections,
 * job slots, heartbeat, recovery, retry promotion, signals and drain. */
#ifndef TASKEXEC_DAEMON_H
#define TASKEXEC_DAEMON_H

#include "config.h"

int daemon_run(struct config *cfg);
/* Everything that can be checked without connecting: URLs, the listen
 * address, the interpreter, the shim, the verify keys, the job user.  0,
 * or -1 with one line per problem in *errors (caller frees). */
int daemon_preflight(const struct config *cfg, char **errors);

#endif
