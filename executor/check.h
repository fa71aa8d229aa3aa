/* SPDX-License-Identifier: ISC */
/* check — taskexecd --check --connect: Redis and PostgreSQL reached once,
 * as the daemon reaches them, each failure named on one line. */
#ifndef TASKEXEC_CHECK_H
#define TASKEXEC_CHECK_H

#include <stdio.h>

#include "config.h"

/* Redis: connect, AUTH, SELECT, PING.  PostgreSQL: connect, read the
 * version of schema taskexec.  What answered goes to OUT as a comment
 * ("# redis: ok (…)"); each failure to ERR as one line naming the variable,
 * the service and its URL with the password masked, then why.  Returns the
 * number of failures (0, 1 or 2).  C must have passed config_load. */
int check_connect(const struct config *c, FILE *out, FILE *err);

#endif
