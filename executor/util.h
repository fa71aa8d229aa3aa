/* SPDX-License-Identifier: ISC */
/* util — small helpers shared by every module: parsing, time, fds, strings. */
#ifndef TASKEXEC_UTIL_H
#define TASKEXEC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Durations: "500ms", "30s", "5m", "2h", "7d" or plain seconds.  0 or -EINVAL. */
int parse_duration_ms(const char *s, int64_t *ret_ms);
/* Sizes: "512K", "2G", "10240" (bytes).  0 or -EINVAL. */
int parse_size(const char *s, uint64_t *ret_bytes);
int parse_int(const char *s, long min, long max, long *ret);
int parse_bool(const char *s, bool *ret);

int64_t now_ms(void);           /* CLOCK_MONOTONIC */
int64_t wall_ms(void);          /* CLOCK_REALTIME */
void iso8601_ms(int64_t wall, char buf[64]);
/* "2026-11-26T05:00:00.123Z" (fraction optional) -> ms since the epoch; 0 or -EINVAL. */
int parse_iso8601_ms(const char *s, int64_t *ret_ms);

void *xmalloc(size_t n) __attribute__((malloc, returns_nonnull));
void *xcalloc(size_t n, size_t m) __attribute__((malloc, returns_nonnull));
/* realloc(p, n * m) that aborts on overflow or out of memory, like the rest
 * of this family: the caller never sees a failed resize. */
void *xreallocarray(void *p, size_t n, size_t m) __attribute__((returns_nonnull));
char *xstrdup(const char *s) __attribute__((malloc, returns_nonnull));
char *xstrndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Error lines gathered so that every problem is named at once (settings,
 * policy files, the daemon's preflight): text is NULL while there is none,
 * else lines that each end in '\n'. */
struct errs {
	char *text;
	size_t len;
};
void errs_add(struct errs *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Split "a, b,c" on commas, trimming blanks; returns a NULL-terminated array. */
char **split_list(const char *s, char sep);
void strv_free(char **v);
size_t strv_len(char *const *v);

int fd_nonblock(int fd);
void close_nointr(int fd);
/* Write all of buf; 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);
/* Read a whole small file into a NUL-terminated buffer; 0 or -errno (-EFBIG
 * past max bytes).  errno is not meaningful afterwards: print strerror(-r). */
int read_file(const char *path, size_t max, char **ret, size_t *ret_len) __attribute__((warn_unused_result));

/* Seed jansson's hash tables (first thing in main). */
void seed_json(void);

/* (size - 1) / 2 random bytes in hex, NUL-terminated; size at most 65. */
void random_hex(char *buf, size_t size);
/* A random UUIDv7-style identifier (time-ordered). */
void make_job_id(char buf[37]);

/* Bounded tail of a byte stream, for the attempt row. */
struct tail {
	char *buf;
	size_t cap, len;        /* len <= cap: bytes kept */
	uint64_t total;         /* bytes seen */
};
void tail_init(struct tail *t, size_t cap);
void tail_push(struct tail *t, const char *p, size_t n);
/* Copy of the kept bytes, NUL-terminated (with a "[… N bytes dropped]" mark). */
char *tail_string(const struct tail *t);
void tail_free(struct tail *t);



/* A copy of p[0..n) that is valid UTF-8: invalid bytes become U+FFFD, NULs are
 * dropped (PostgreSQL text and JSON strings accept neither). */
char *utf8_clean(const char *p, size_t n);
/* The length of the longest prefix of the string P, at most MAX bytes, that
 * ends on a character boundary and is valid UTF-8: for quoting with "%.*s". */
size_t utf8_prefix(const char *p, size_t max);

/* Job-controlled text on its way to an operator's terminal (taskexec run's
 * standard error, status, show, list, submit --wait).  Returns a copy of
 * p[0..n) in which no byte can be a terminal command: C0 controls but tab
 * (and newline with TERM_KEEP_NL), DEL and the C1 controls U+0080..U+009F
 * become \xNN, invalid UTF-8 bytes become \xNN.  With TERM_JSON the text is
 * JSON and stays equal JSON: controls become \u00NN, invalid bytes \ufffd. */
enum {
	TERM_KEEP_NL = 1 << 0,
	TERM_JSON = 1 << 1,
};
char *term_escape(const char *p, size_t n, unsigned flags);
/* The same into OUT, which holds TERM_ESCAPE_MAX(n) bytes (worst case: \u00NN
 * or \ufffd for every byte); returns the length written. */
#define TERM_ESCAPE_MAX(n) ((n) * 6 + 1)
size_t term_escape_into(char *out, const char *p, size_t n, unsigned flags);
/* term_escape() of a NUL-terminated string (NULL gives ""). */
char *term_escape_str(const char *s, unsigned flags);

#endif
