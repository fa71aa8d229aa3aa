/* SPDX-License-Identifier: ISC */
/* http — GET /livez, /readyz (alias /healthz) and /metrics (libmicrohttpd,
 * driven by our loop). */
#ifndef TASKEXEC_HTTP_H
#define TASKEXEC_HTTP_H

#include <jansson.h>

#include "loop.h"
#include "queue.h"
#include "store.h"

struct metrics;
struct http;

/* What the endpoint needs of its daemon. */
struct http_host {
	const char *executor_id;
	struct loop *loop;
	struct queue *queue;
	struct store *store;
	struct metrics *metrics;
	/* Add the daemon's own part of a readiness answer to BODY (slots,
	 * draining); returns its own fault, which makes it unready, or NULL. */
	const char *(*state)(void *arg, json_t *body);
	void *arg;
};

/* LISTEN is "host:port" or "off" (then NULL is returned and *ret_err stays NULL). */
struct http *http_new(const struct http_host *host, const char *listen, char **ret_err);
void http_free(struct http *h);
/* Check a TASKEXEC_HTTP_LISTEN value without binding: 0, or -1 with a message. */
int http_listen_check(const char *listen, char **ret_err);

#endif
