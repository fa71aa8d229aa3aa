/* SPDX-License-Identifier: ISC */
/* http — GET /livez, /readyz (alias /healthz) and /metrics, on libmicrohttpd
 * in external-epoll mode so the daemon's one loop drives it; no thread of its
 * own.
 *
 * /livez answers from the loop at once: that it answers is the proof that
 * the loop turns, so a slow database never gets a healthy daemon restarted.
 * /readyz checks now: it suspends the request, sends PING to Redis and
 * SELECT 1 to PostgreSQL, and answers when both replied or after a second,
 * naming whatever did not answer, or the executor's own fault (jobs cannot
 * start here).  Slow or malformed clients are bounded by MHD's connection
 * timeout and limit. */
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define HEALTH_TIMEOUT_MS 1000

struct http {
	struct http_host host;
	char *id_json;          /* the executor id as a JSON string */
	struct MHD_Daemon *mhd;
	int epfd;
	struct timer *tick;
};

struct health {
	struct http *h;
	struct MHD_Connection *conn;
	int refs;
	bool redis_ok, pg_ok, redis_done, pg_done, answered, timed_out;
	struct timer *timeout;
};

static void run_mhd(struct http *h)
{
	MHD_run(h->mhd);
}

static void health_unref(struct health *hc)
{
	if (--hc->refs == 0)
		free(hc);
}

static void health_maybe_resume(struct health *hc)
{
	if (hc->answered || !hc->conn || (!(hc->redis_done && hc->pg_done) && !hc->timed_out))
		return;
	hc->answered = true;
	if (hc->timeout) {
		loop_timer_cancel(hc->h->host.loop, hc->timeout);
		hc->timeout = NULL;
	}
	MHD_resume_connection(hc->conn);
	run_mhd(hc->h);
}

static void on_ping(void *arg, redisReply *reply)
{
	struct health *hc = arg;

	hc->redis_ok = reply && reply->type == REDIS_REPLY_STATUS;
	hc->redis_done = true;
	health_maybe_resume(hc);
	health_unref(hc);
}

static void on_select(void *arg, PGresult *res, const char *refused)
{
	struct health *hc = arg;

	hc->pg_ok = res != NULL;
	hc->pg_done = true;
	health_maybe_resume(hc);
	health_unref(hc);
}

static void on_health_timeout(struct loop *l, void *arg)
{
	struct health *hc = arg;

	hc->timeout = NULL;
	hc->timed_out = true;
	health_maybe_resume(hc);
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type, char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **state)
{
	struct http *h = cls;
	const struct http_host *d = &h->host;

	if (strcmp(url, "/healthz") && strcmp(url, "/readyz") && strcmp(url, "/livez") && strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_NOT_FOUND, "text/plain",
			     xstrdup("not found: try /livez, /readyz, /healthz or /metrics\n"));
	if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
		struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		enum MHD_Result ret;

		MHD_add_response_header(r, "Allow", "GET, HEAD");
		ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (!strcmp(url, "/metrics"))
		return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", metrics_render(d->metrics));
	if (!strcmp(url, "/livez"))
		return reply(c, MHD_HTTP_OK, "application/json",
			     xasprintf("{\"status\":\"alive\",\"executor_id\":%s}\n", h->id_json));

	if (!*state) {
		struct health *hc = xcalloc(1, sizeof(*hc));

		hc->h = h;
		hc->conn = c;
		hc->refs = 3;   /* the request, the Redis reply, the PostgreSQL reply */
		*state = hc;
		MHD_suspend_connection(c);
		/* A check that cannot even be sent fails now, but the answer still
		 * goes out from the loop, never from inside this MHD callback. */
		if (queue_ping(d->queue, on_ping, hc) < 0) {
			hc->redis_done = true;
			hc->refs--;
		}
		if (store_up(d->store)) {
			store_query(d->store, "SELECT 1", 0, NULL, on_select, hc);
		} else {
			hc->pg_done = true;
			hc->refs--;
		}
		hc->timeout = loop_timer(d->loop, now_ms() + (hc->redis_done && hc->pg_done ? 0 : HEALTH_TIMEOUT_MS),
					 on_health_timeout, hc);
		return MHD_YES;
	}
	{
		struct health *hc = *state;
		char *body;
		json_t *j = json_pack("{s:s, s:s, s:s}", "redis",
				      hc->redis_ok ? "ok" : hc->redis_done ? "error" : "timeout", "postgres",
				      hc->pg_ok ? "ok" : hc->pg_done ? "error" : "timeout", "executor_id",
				      d->executor_id);
		const char *fault = d->state(d->arg, j);
		bool ok = hc->redis_ok && hc->pg_ok && !fault;

		json_object_set_new(j, "status", json_string(ok ? "ok" : "unhealthy"));

		if (!ok) {
			char *what = xasprintf("%s%s%s", hc->redis_ok ? "" : "Redis", !hc->redis_ok && !hc->pg_ok ? " and " : "",
					       hc->pg_ok ? "" : "PostgreSQL");

			json_object_set_new(j, "error", *what ? json_sprintf("%s did not answer", what)
							      : json_sprintf("executor fault: %s", fault));
			free(what);
			/* Say why, when the queue knows: a refused password is not an outage. */
			if (!hc->redis_ok && queue_last_error(d->queue))
				json_object_set_new(j, "redis_error", json_string(queue_last_error(d->queue)));
		}
		if (fault)
			json_object_set_new(j, "fault", json_string(fault));
		{
			char *text = json_dumps(j, JSON_COMPACT);

			body = xasprintf("%s\n", text);
			free(text);
		}
		json_decref(j);
		return reply(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", body);
	}
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode code)
{
	struct health *hc = *state;

	if (!hc)
		return;
	if (hc->timeout)
		loop_timer_cancel(hc->h->host.loop, hc->timeout);
	hc->timeout = NULL;
	hc->conn = NULL;
	hc->answered = true;
	*state = NULL;
	health_unref(hc);
}

static void on_mhd_fd(struct loop *l, int fd, uint32_t events, void *arg)
{
	run_mhd(arg);
}

/* Connection timeouts need MHD_run even when no socket moves. */
static void on_tick(struct loop *l, void *arg)
{
	struct http *h = arg;

	run_mhd(h);
	h->tick = loop_timer(l, now_ms() + 1000, on_tick, h);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char *msg;

	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	msg[strcspn(msg, "\n")] = '\0';
	log_msg(LOG_WARN, "http.error", "%s", msg);
	free(msg);
}

/* "host:port" or "[v6 address]:port": the host a name or a numeric
 * address, the port a number.  A name is resolved at start (in --check and
 * before the loop runs, so the blocking lookup stalls nothing). */
static int listen_addr(const char *listen, struct addrinfo **ret, char **ret_err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	const char *colon = strrchr(listen, ':');
	char *host, *end;
	size_t n;
	unsigned long port;
	int r;

	if (!colon || colon == listen || !colon[1]) {
		*ret_err = xasprintf("TASKEXEC_HTTP_LISTEN: '%s' is not host:port or off", listen);
		return -1;
	}
	host = xstrndup(listen, (size_t)(colon - listen));
	n = strlen(host);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']') {
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	} else if (strchr(host, ':') || host[0] == '[') {
		*ret_err = xasprintf("TASKEXEC_HTTP_LISTEN: '%s': an IPv6 address goes in brackets: [::1]:9464", listen);
		free(host);
		return -1;
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || errno || port < 1 || port > 65535 || !isdigit((unsigned char)colon[1])) {
		*ret_err = xasprintf("TASKEXEC_HTTP_LISTEN: '%s': the port must be a number from 1 to 65535", listen);
		free(host);
		return -1;
	}
	r = getaddrinfo(host, colon + 1, &hints, ret);
	if (r)
		*ret_err = xasprintf("TASKEXEC_HTTP_LISTEN: '%s': cannot resolve host '%s': %s", listen, host,
				     r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	free(host);
	return r ? -1 : 0;
}

int http_listen_check(const char *listen, char **ret_err)
{
	struct addrinfo *ai = NULL;

	if (!strcmp(listen, "off"))
		return 0;
	if (listen_addr(listen, &ai, ret_err) < 0)
		return -1;
	freeaddrinfo(ai);
	return 0;
}

struct http *http_new(const struct http_host *d, const char *listen, char **ret_err)
{
	struct addrinfo *ai = NULL;
	struct http *h;
	int r;

	*ret_err = NULL;
	if (!strcmp(listen, "off"))
		return NULL;
	if (listen_addr(listen, &ai, ret_err) < 0)
		return NULL;
	h = xcalloc(1, sizeof(*h));
	h->host = *d;
	{
		json_t *id = json_string(d->executor_id);

		h->id_json = json_dumps(id, JSON_ENCODE_ANY);
		json_decref(id);
	}
	/* A name may resolve to several addresses (::1 and 127.0.0.1): the
	 * first one that binds serves.  libmicrohttpd takes an IPv6 address
	 * only when told so. */
	for (struct addrinfo *a = ai; a && !h->mhd; a = a->ai_next)
		h->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
						  (a->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0),
					  0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
					  MHD_OPTION_SOCK_ADDR, a->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)5,
					  MHD_OPTION_CONNECTION_LIMIT, (unsigned)64, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
					  (size_t)32768, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_END);
	freeaddrinfo(ai);
	if (!h->mhd) {
		*ret_err = xasprintf("TASKEXEC_HTTP_LISTEN: cannot listen on %s", listen);
		free(h->id_json);
		free(h);
		return NULL;
	}
	h->epfd = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
	r = loop_add(d->loop, h->epfd, EPOLLIN, on_mhd_fd, h);
	if (r < 0) {
		/* Unwatched, the endpoint would accept connections and never answer. */
		*ret_err = xasprintf("TASKEXEC_HTTP_LISTEN: cannot watch %s: %s", listen, strerror(-r));
		MHD_stop_daemon(h->mhd);
		free(h->id_json);
		free(h);
		return NULL;
	}
	h->tick = loop_timer(d->loop, now_ms() + 1000, on_tick, h);
	return h;
}

void http_free(struct http *h)
{
	if (!h)
		return;
	loop_del(h->host.loop, h->epfd);
	if (h->tick)
		loop_timer_cancel(h->host.loop, h->tick);
	MHD_stop_daemon(h->mhd);
	free(h->id_json);
	free(h);
}
