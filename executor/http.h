/* http — GET /healthz and GET /metrics (libmicrohttpd, driven by our loop). */
#ifndef TASKEXEC_HTTP_H
#define TASKEXEC_HTTP_H

struct daemon;
struct http;

/* LISTEN is "host:port" or "off" (then NULL is returned and *ret_err stays NULL). */
struct http *http_new(struct daemon *d, const char *listen, char **ret_err);
void http_free(struct http *h);

#endif
