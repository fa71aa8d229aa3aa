/* SPDX-License-Identifier: ISC */
/* fuzz_config — libFuzzer harness for taskexec.conf (taskexec.conf(5)).
 *
 * Each input is written to a private file named by TASKEXEC_CONFIG and loaded
 * with config_load, with every other TASKEXEC_* variable removed from the
 * environment so only the file speaks.  An accepted file must give settings
 * within their documented ranges; the effective settings are then printed
 * (which masks the passwords of both URLs).  The input as one string also goes
 * to config_mask_url directly. */
#include "config.h"
#include "util.h"

#include "fuzz.h"

extern char **environ;

static char *file;
static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	for (char **e = environ; *e;) {
		if (!strncmp(*e, "TASKEXEC_", 9) || !strncmp(*e, "ALLOWED_MODULES=", 16)) {
			char *name = strndup(*e, strcspn(*e, "="));

			unsetenv(name);
			free(name);
			e = environ;    /* unsetenv reshuffles the array */
			continue;
		}
		e++;
	}
	file = xasprintf("%s/taskexec.conf", fuzz_tmpdir());
	setenv("TASKEXEC_CONFIG", file, 1);
	devnull = fopen("/dev/null", "we");
	if (!devnull)
		fuzz_die("/dev/null");
	return 0;
}

static void check_config(const struct config *c)
{
	FUZZ_CHECK(c->concurrency >= 1 && c->concurrency <= 256, "concurrency %ld", c->concurrency);
	FUZZ_CHECK(c->max_retries >= 0 && c->max_retries <= 100, "max_retries %ld", c->max_retries);
	FUZZ_CHECK(c->heartbeat_ms >= 100 && c->heartbeat_ms <= 3600 * 1000, "heartbeat %lld",
		   (long long)c->heartbeat_ms);
	FUZZ_CHECK(c->shutdown_ms >= 0 && c->shutdown_ms <= 24 * 3600 * 1000LL, "shutdown %lld",
		   (long long)c->shutdown_ms);
	FUZZ_CHECK(c->result_max >= 2 && c->result_max <= 64 << 20, "result_max %llu",
		   (unsigned long long)c->result_max);
	FUZZ_CHECK(strv_len(c->allowed_modules) > 0 && strv_len(c->tasks_path) > 0, "empty module or path list");
	for (char **p = c->tasks_path; *p; p++)
		FUZZ_CHECK(**p == '/', "relative task root '%s'", *p);
	FUZZ_CHECK(!strcmp(c->log_level, "debug") || !strcmp(c->log_level, "info") || !strcmp(c->log_level, "warn") ||
		   !strcmp(c->log_level, "error"), "log level '%s'", c->log_level);
	FUZZ_CHECK(*c->queue_prefix && !strpbrk(c->queue_prefix, "{}: "), "queue prefix '%s'", c->queue_prefix);
	FUZZ_CHECK(!c->require_signature || strv_len(c->verify_keys) > 0, "signatures required with no keys");
	FUZZ_CHECK(c->config_file && !strcmp(c->config_file, file), "config file '%s'",
		   c->config_file ? c->config_file : "(null)");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char *errors = NULL, *s, *m;

	fuzz_write(file, data, size);
	if (config_load(&c, NULL, 0, &errors) == 0) {
		FUZZ_CHECK(!errors, "accepted with errors");
		check_config(&c);
		config_print(&c, devnull);
	} else {
		size_t n;

		FUZZ_CHECK(errors && *errors, "refused without a message");
		n = strlen(errors);
		FUZZ_CHECK(errors[n - 1] == '\n', "error text does not end in a newline");
		free(errors);
	}
	config_free(&c);

	s = fuzz_strndup(data, size);
	m = config_mask_url(s);
	FUZZ_CHECK(m, "config_mask_url returned NULL");
	free(m);
	free(s);
	return 0;
}
