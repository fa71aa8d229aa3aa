/* SPDX-License-Identifier: ISC */
/* log — one JSON object per line on stdout (daemon) or plain text on stderr (CLI). */
#include "log.h"
#include "outbuf.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static bool as_json;
static char *executor;
/* Between log_attach() and log_detach(): the daemon's stdout, written
 * without blocking (see log.h). */
static struct outbuf *out;
static uint64_t dropped_before;         /* by outbufs already freed */
static uint64_t dropped_reported;       /* of out's drops, those a log.dropped line named */

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
	return -EINVAL;
}

const char *log_level_choices(void)
{
	static char text[64];

	if (!*text) {
		size_t n = ARRAY_SIZE(level_names);

		for (size_t i = 0; i < n; i++)
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s", level_names[i],
				 i + 2 < n ? ", " : i + 1 < n ? " or " : "");
	}
	return text;
}

bool log_enabled(enum log_level level)
{
	return level >= min_level;
}

static void emit(enum log_level level, const char *event, json_t *fields)
{
	char ts[64];
	char *line;
	json_t *o;

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
		if (out)
			(void)outbuf_put(out, line, n + 1);
		else
			(void)write_all(STDOUT_FILENO, line, n + 1);
		free(line);
	}
}

/* Name the lines dropped since the last report once the reader has caught
 * up (the buffer is at most half full), or now when force is set. */
static void report_drops(bool force)
{
	uint64_t n;

	if (!out)
		return;
	n = outbuf_dropped(out) - dropped_reported;
	if (!n || (!force && outbuf_buffered(out) > outbuf_cap(out) / 2))
		return;
	dropped_reported += n;
	if (log_enabled(LOG_WARN))
		emit(LOG_WARN, "log.dropped",
		     json_pack("{s:I, s:s}", "lines", (json_int_t)n, "msg",
			       "log lines were dropped: standard output was not read fast enough"));
}

static void on_flushed(void *arg)
{
	report_drops(false);
}

int log_attach(struct loop *l)
{
	int r;

	if (!as_json)
		return 0;
	if (!out && (r = outbuf_new(STDOUT_FILENO, LOG_BUF_BYTES, &out)) < 0)
		return r;
	outbuf_on_flush(out, on_flushed, NULL);
	outbuf_attach(out, l);
	return 0;
}

void log_detach(int timeout_ms)
{
	if (!out)
		return;
	outbuf_attach(out, NULL);
	report_drops(true);
	(void)outbuf_drain(out, timeout_ms);
	dropped_before += outbuf_dropped(out);
	dropped_reported = 0;
	outbuf_free(out);
	out = NULL;
}

uint64_t log_lines_dropped(void)
{
	return dropped_before + (out ? outbuf_dropped(out) : 0);
}

void log_json(enum log_level level, const char *event, json_t *fields)
{
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
	report_drops(false);
	emit(level, event, fields);
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
