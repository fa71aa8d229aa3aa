/* SPDX-License-Identifier: ISC */
/* util — small helpers shared by every module. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

int parse_duration_ms(const char *s, int64_t *ret_ms)
{
	char *end;
	double v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !(v >= 0 && v <= 1e9))     /* NaN fails both */
		return -EINVAL;
	if (!strcmp(end, "ms"))
		;
	else if (!*end || !strcmp(end, "s"))
		v *= 1000;
	else if (!strcmp(end, "m"))
		v *= 60 * 1000;
	else if (!strcmp(end, "h"))
		v *= 3600 * 1000;
	else if (!strcmp(end, "d"))     /* taskexec prune --older-than 30d, list --since 7d */
		v *= 24 * 3600 * 1000;
	else
		return -EINVAL;
	*ret_ms = (int64_t)v;
	return 0;
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 'K': case 'k': mul = 1ULL << 10; break;
		case 'M': case 'm': mul = 1ULL << 20; break;
		case 'G': case 'g': mul = 1ULL << 30; break;
		case 'T': case 't': mul = 1ULL << 40; break;
		default: return -EINVAL;
		}
		end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v > UINT64_MAX / mul)
		return -EINVAL;
	*ret_bytes = v * mul;
	return 0;
}

int parse_int(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_bool(const char *s, bool *ret)
{
	if (!strcmp(s, "1") || !strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcasecmp(s, "on"))
		*ret = true;
	else if (!strcmp(s, "0") || !strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcasecmp(s, "off"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int64_t clock_ms(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
int64_t wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

void iso8601_ms(int64_t wall, char buf[64])
{
	time_t t = wall / 1000;
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(wall % 1000));
}

int parse_iso8601_ms(const char *s, int64_t *ret_ms)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t ms = 0, scale = 100;

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ms += (*p - '0') * scale;
	if (*p != 'Z' && strcmp(p, "+00:00"))
		return -EINVAL;
	*ret_ms = (int64_t)timegm(&tm) * 1000 + ms;
	return 0;
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		abort();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (!p)
		abort();
	return p;
}

void *xreallocarray(void *p, size_t n, size_t m)
{
	void *q = reallocarray(p, n ? n : 1, m ? m : 1);

	if (!q)
		abort();
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		abort();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		abort();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		abort();
	va_end(ap);
	return p;
}

void errs_add(struct errs *e, const char *fmt, ...)
{
	va_list ap;
	char *line;
	size_t n;

	va_start(ap, fmt);
	if (vasprintf(&line, fmt, ap) < 0)
		abort();
	va_end(ap);
	n = strlen(line);
	e->text = xreallocarray(e->text, e->len + n + 2, 1);
	memcpy(e->text + e->len, line, n);
	e->len += n;
	e->text[e->len++] = '\n';
	e->text[e->len] = '\0';
	free(line);
}

char **split_list(const char *s, char sep)
{
	size_t n = 0, cap = 4;
	char **v = xcalloc(cap + 1, sizeof(*v));
	const char *p = s;

	while (p && *p) {
		const char *e = strchr(p, sep);
		const char *b = p, *t = e ? e : p + strlen(p);

		while (b < t && (*b == ' ' || *b == '\t'))
			b++;
		while (t > b && (t[-1] == ' ' || t[-1] == '\t'))
			t--;
		if (t > b) {
			if (n == cap) {
				cap *= 2;
				v = xreallocarray(v, cap + 1, sizeof(*v));
			}
			v[n++] = xstrndup(b, (size_t)(t - b));
			v[n] = NULL;
		}
		p = e ? e + 1 : NULL;
	}
	return v;
}

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

int fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

void close_nointr(int fd)
{
	if (fd >= 0)
		close(fd);
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0, cap = 4096;
	char *buf;
	int r = 0;

	if (fd < 0)
		return -errno;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (len + 1 >= cap) {
			if (cap > max) {
				r = -EFBIG;
				break;
			}
			cap *= 2;
			buf = xreallocarray(buf, cap, 1);
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (r < 0 || len > max) {
		free(buf);
		return r < 0 ? r : -EFBIG;
	}
	buf[len] = '\0';
	*ret = buf;
	if (ret_len)
		*ret_len = len;
	return 0;
}

void seed_json(void)
{
	uint32_t seed = 0;

	/* jansson seeds its hash tables from /dev/urandom, opened without
	 * O_CLOEXEC, unless given a seed: give it one from getrandom(2). */
	while (!seed)
		if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
			abort();
	json_object_seed(seed);
}

void random_hex(char *buf, size_t size)
{
	uint8_t b[32];
	size_t n = (size - 1) / 2;

	if (!size || n > sizeof(b) || getrandom(b, n, 0) != (ssize_t)n)
		abort();
	for (size_t i = 0; i < n; i++)
		snprintf(buf + 2 * i, 3, "%02x", b[i]);
	buf[2 * n] = '\0';
}

void make_job_id(char buf[37])
{
	uint8_t b[16];
	uint64_t ms = (uint64_t)wall_ms();

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		abort();
	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)(ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (b[6] & 0x0f));
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
	snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
}

void tail_init(struct tail *t, size_t cap)
{
	t->buf = xmalloc(cap);
	t->cap = cap;
	t->len = 0;
	t->total = 0;
}

void tail_push(struct tail *t, const char *p, size_t n)
{
	t->total += n;
	if (n >= t->cap) {
		memcpy(t->buf, p + n - t->cap, t->cap);
		t->len = t->cap;
		return;
	}
	if (t->len + n > t->cap) {
		size_t drop = t->len + n - t->cap;

		memmove(t->buf, t->buf + drop, t->len - drop);
		t->len -= drop;
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

char *tail_string(const struct tail *t)
{
	uint64_t dropped = t->total - t->len;
	char *s;

	if (!dropped) {
		s = xmalloc(t->len + 1);
		memcpy(s, t->buf, t->len);
		s[t->len] = '\0';
		return s;
	}
	s = xasprintf("[... %llu bytes dropped]\n%.*s", (unsigned long long)dropped, (int)t->len, t->buf);
	return s;
}

void tail_free(struct tail *t)
{
	free(t->buf);
	t->buf = NULL;
}

static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		len = 2, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		len = 3, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t utf8_prefix(const char *p, size_t max)
{
	const unsigned char *s = (const unsigned char *)p;
	size_t n = strnlen(p, max), i = 0;

	while (i < n) {
		size_t k = utf8_seq(s + i, n - i);

		if (!k)
			break;
		i += k;
	}
	return i;
}

char *utf8_clean(const char *p, size_t n)
{
	const unsigned char *s = (const unsigned char *)p;
	char *out = xmalloc(n * 3 + 1), *o = out;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, n - i);

		if (k == 1 && s[i] == 0) {
			i++;
			continue;
		}
		if (!k) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, s + i, k);
		o += k;
		i += k;
	}
	*o = '\0';
	return out;
}

/* ESC, CSI (also as the C1 byte U+009B), OSC and a bare CR are how a job
 * would rewrite an operator's screen, set the window title or make its own
 * line look like ours; a tab cannot. */
static bool term_control(uint32_t cp, unsigned flags)
{
	if (cp == '\t' || (cp == '\n' && (flags & TERM_KEEP_NL)))
		return false;
	return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

char *term_escape(const char *p, size_t n, unsigned flags)
{
	char *out = xmalloc(TERM_ESCAPE_MAX(n));

	term_escape_into(out, p, n, flags);
	return out;
}

size_t term_escape_into(char *out, const char *p, size_t n, unsigned flags)
{
	const unsigned char *s = (const unsigned char *)p;
	char *o = out;

	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(s + i, n - i);
		uint32_t cp = k == 1 ? s[i] : k == 2 ? (uint32_t)((s[i] & 0x1f) << 6 | (s[i + 1] & 0x3f)) : 0x100;

		if (!k) {
			o += flags & TERM_JSON ? sprintf(o, "\\ufffd") : sprintf(o, "\\x%02x", s[i]);
			i++;
			continue;
		}
		if (term_control(cp, flags)) {
			o += sprintf(o, flags & TERM_JSON ? "\\u%04x" : "\\x%02x", (unsigned)cp);
			i += k;
			continue;
		}
		memcpy(o, s + i, k);
		o += k;
		i += k;
	}
	*o = '\0';
	return (size_t)(o - out);
}

char *term_escape_str(const char *s, unsigned flags)
{
	return s ? term_escape(s, strlen(s), flags) : xstrdup("");
}
