/* log — one JSON object per line on stdout (daemon) or plain text on stderr (CLI). */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static bool as_json;
static char *executor;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_setup(const char *executor_id, enum log_level min, bool json)
{
	free(executor);
	executor = executor_id ? xstrdup(executor_id) : NULL;
	min_level = min;
	as_json = json;
}

int log_level_parse(const char *s, enum log_level *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(level_names); i++)
		if (!strcmp(s, level_names[i])) {
			*ret = (enum log_level)i;
			return 0;
		}
	return -1;
}

bool log_enabled(enum log_level level)
{
	return level >= min_level;
}

void log_json(enum log_level level, const char *event, json_t *fields)
{
	char ts[64];
	char *line;
	json_t *o;

	if (!log_enabled(level)) {
		json_decref(fields);
		return;
	}
	if (!as_json) {
		json_t *msg = fields ? json_object_get(fields, "msg") : NULL;
		char *rest = fields ? json_dumps(fields, JSON_COMPACT) : NULL;

		if (msg && json_object_size(fields) == 1)
			fprintf(stderr, "taskexec: %s\n", json_string_value(msg));
		else
			fprintf(stderr, "taskexec: %s %s\n", event, rest ? rest : "");
		free(rest);
		json_decref(fields);
		return;
	}
	iso8601_ms(wall_ms(), ts);
	o = json_pack("{s:s, s:s, s:s}", "ts", ts, "level", level_names[level], "event", event);
	if (executor)
		json_object_set_new(o, "executor_id", json_string(executor));
	if (fields)
		json_object_update(o, fields);
	json_decref(fields);
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	if (line) {
		size_t n = strlen(line);

		line[n] = '\n';
		/* One write per line so that lines of a busy daemon never interleave. */
		(void)write_all(STDOUT_FILENO, line, n + 1);
		free(line);
	}
}

void log_msg(enum log_level level, const char *event, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	log_json(level, event, json_pack("{s:s}", "msg", msg));
	free(msg);
}
