/* cli_common — what taskexec and taskexec-ops share: usage errors, configuration. */
#include "cli.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("taskexec: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_USAGE;
}

int cli_config(struct config *c)
{
	char *errors = NULL;

	if (config_load(c, NULL, CONFIG_SYSTEM_FILE | CONFIG_CHECKOUT, &errors) < 0) {
		fprintf(stderr, "taskexec: configuration: %s", errors);
		free(errors);
		config_free(c);
		return -1;
	}
	return 0;
}

