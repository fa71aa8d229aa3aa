/* SPDX-License-Identifier: ISC */
/* Shared helpers for the cmocka unit tests in tests/unit/. */
#ifndef TASKEXEC_UNIT_H
#define TASKEXEC_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Fails with both strings shown when NEEDLE is not a substring of HAY. */
#define assert_contains(hay, needle)                                                           \
	do {                                                                                   \
		const char *h_ = (hay), *n_ = (needle);                                        \
		if (!h_ || !strstr(h_, n_))                                                    \
			fail_msg("expected \"%s\" to contain \"%s\"", h_ ? h_ : "(null)", n_); \
	} while (0)
#define assert_not_contains(hay, needle)                                                   \
	do {                                                                               \
		const char *h_ = (hay), *n_ = (needle);                                    \
		if (h_ && strstr(h_, n_))                                                  \
			fail_msg("expected \"%s\" not to contain \"%s\"", h_, n_);         \
	} while (0)

static inline char *unit_mkdtemp(void)
{
	char *d = strdup("/tmp/taskexec-unit-XXXXXX");

	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

static inline char *unit_path(const char *dir, const char *name)
{
	char *p;

	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

/* Write TEXT to DIR/NAME (DIR/NAME may contain sub-directories that exist). */
static inline char *unit_write(const char *dir, const char *name, const char *text)
{
	char *p = unit_path(dir, name);
	FILE *f = fopen(p, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return p;
}

static inline void unit_write_free(const char *dir, const char *name, const char *text)
{
	free(unit_write(dir, name, text));
}

static inline void unit_mkdir(const char *dir, const char *name)
{
	char *p = unit_path(dir, name);

	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
}

static inline int unit_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

static inline void unit_rm_rf(const char *dir)
{
	if (dir)
		nftw(dir, unit_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
