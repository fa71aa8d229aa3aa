/* SPDX-License-Identifier: ISC */
/* log — one JSON object per line on stdout (daemon) or plain text on stderr (CLI). */
#ifndef TASKEXEC_LOG_H
#define TASKEXEC_LOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "loop.h"

/* What the daemon's stdout may hold unread before lines are dropped. */
#define LOG_BUF_BYTES (1 << 20)

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* json=false: "taskexec: message" lines on stderr, for the command-line tool. */
void log_setup(const char *executor_id, enum log_level min, bool json);
/* A level by its name: 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *ret) __attribute__((warn_unused_result));
/* "debug, info, warn or error": the names log_level_parse() takes, for messages. */
const char *log_level_choices(void);
bool log_enabled(enum log_level level);
/* Emit event with extra fields (reference stolen; may be NULL). */
void log_json(enum log_level level, const char *event, json_t *fields);
/* From here on JSON lines go through a buffer of LOG_BUF_BYTES that l
 * flushes when stdout is writable: a slow reader never stalls the loop;
 * past the buffer lines are dropped, counted, and named by one log.dropped
 * line once the reader has caught up.  0 or -errno (then lines are written
 * as before, blocking). */
int log_attach(struct loop *l);
/* Back to plain writes, after waiting at most timeout_ms for what is buffered. */
void log_detach(int timeout_ms);
/* Lines dropped so far because stdout was not read. */
uint64_t log_lines_dropped(void);
/* Emit event with a "msg" field. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
