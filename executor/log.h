/* log — one JSON object per line on stdout (daemon) or plain text on stderr (CLI). */
#ifndef TASKEXEC_LOG_H
#define TASKEXEC_LOG_H

#include <jansson.h>
#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* json=false: "taskexec: message" lines on stderr, for the command-line tool. */
void log_setup(const char *executor_id, enum log_level min, bool json);
int log_level_parse(const char *s, enum log_level *ret);
bool log_enabled(enum log_level level);
/* Emit event with extra fields (reference stolen; may be NULL). */
void log_json(enum log_level level, const char *event, json_t *fields);
/* Emit event with a "msg" field. */
void log_msg(enum log_level level, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
