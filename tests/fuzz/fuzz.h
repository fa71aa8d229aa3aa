/* SPDX-License-Identifier: ISC */
/* fuzz — helpers shared by the libFuzzer harnesses: a private scratch
 * directory made once per process, whole-file writes, and a loud check that
 * aborts (libFuzzer then saves the input) when an invariant breaks. */
#ifndef TASKEXEC_FUZZ_H
#define TASKEXEC_FUZZ_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_CHECK(cond, ...)                                                       \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "fuzz: %s:%d: invariant '%s' broken: ",     \
				__FILE__, __LINE__, #cond);                         \
			fprintf(stderr, __VA_ARGS__);                               \
			fputc('\n', stderr);                                        \
			abort();                                                    \
		}                                                                   \
	} while (0)

static inline void fuzz_die(const char *what)
{
	fprintf(stderr, "fuzz: %s: %s\n", what, strerror(errno));
	exit(2);
}

static char fuzz_tmp[96];
static pid_t fuzz_tmp_owner;

static inline void fuzz_rm_rf(const char *dir)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz: could not remove %s\n", dir);
}

static inline void fuzz_rm_tmp(void)
{
	if (fuzz_tmp[0] && getpid() == fuzz_tmp_owner)
		fuzz_rm_rf(fuzz_tmp);
}

/* A process that crashed leaves its directory behind (libFuzzer ends with
 * _exit after writing the crash input): remove those whose process is gone. */
static inline void fuzz_sweep(const char *base)
{
	DIR *d = opendir(base);
	struct dirent *de;
	char path[160];
	long pid;

	if (!d)
		return;
	while ((de = readdir(d)))
		if (sscanf(de->d_name, "taskexec-fuzz.%ld.", &pid) == 1 && pid > 0 && kill((pid_t)pid, 0) < 0 &&
		    errno == ESRCH) {
			snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
			fuzz_rm_rf(path);
		}
	closedir(d);
}

/* One private directory per process, removed when it exits normally. */
static inline const char *fuzz_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (fuzz_tmp[0])
		return fuzz_tmp;
	if (!base || !*base || strlen(base) > 48 || strchr(base, '\''))
		base = "/tmp";
	fuzz_sweep(base);
	snprintf(fuzz_tmp, sizeof(fuzz_tmp), "%s/taskexec-fuzz.%ld.XXXXXX", base, (long)getpid());
	if (!mkdtemp(fuzz_tmp))
		fuzz_die("mkdtemp");
	fuzz_tmp_owner = getpid();
	atexit(fuzz_rm_tmp);
	return fuzz_tmp;
}

static inline void fuzz_write(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = data;

	if (fd < 0)
		fuzz_die(path);
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			fuzz_die(path);
		}
		p += w;
		n -= (size_t)w;
	}
	close(fd);
}

/* A NUL-terminated copy of the input (inputs may hold NULs; C-string APIs then
 * see the prefix, as they would in the product). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
