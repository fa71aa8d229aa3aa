/* http — GET /healthz and GET /metrics (libmicrohttpd, driven by our loop). */
#ifndef TASKEXEC_HTTP_H
#define TASKEXEC_HTTP_H

struct daemon;
struct http;

/* LISTEN is "host:port" or "off" (then NULL is returned and *ret_err stays NULL). */
struct http *http_new(struct daemon *d, const char *listen, char **ret_err);
void http_free(struct http *h);
/* Check a TASKEXEC_HTTP_LISTEN value without binding: 0, or -1 with a message. */
int http_listen_check(const char *listen, char **ret_err);

#endif
