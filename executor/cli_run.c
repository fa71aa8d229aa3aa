/* SPDX-License-Identifier: ISC */
/* cli_run — `taskexec run`: one job, locally, in the sandbox; and the payload
 * builder that `taskexec submit` shares. */

#include "attempt.h"
#include "cli.h"
#include "cli_payload.h"
#include "job.h"
#include "log.h"
#include "outbuf.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

/* submit --at: ISO 8601 with a zone (Z or +HH:MM), since a time without one
 * means a different instant on the host of every producer. */
static int parse_at(const char *s, int64_t *ret_ms)
{
	struct tm tm = { 0 };
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	int64_t ms = 0, scale = 100, off = 0;
	int hh, mm, n = 0;

	if (!p)
		return -EINVAL;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ms += (*p - '0') * scale;
	if (!strcmp(p, "Z"))
		;
	else if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) == 2 && !p[1 + n] &&
		 n == 5 && hh < 24 && mm < 60)
		off = (*p == '-' ? -1 : 1) * (hh * 3600 + mm * 60) * (int64_t)1000;
	else
		return -EINVAL;
	*ret_ms = (int64_t)timegm(&tm) * 1000 + ms - off;
	return 0;
}

int cli_payload_parse(int argc, char **argv, struct cli_payload *p, bool submit)
{
	char **kv = xcalloc((size_t)argc + 1, sizeof(char *));
	size_t nkv = 0;
	int r = EXIT_USAGE;

	memset(p, 0, sizeof(*p));
	p->timeout = p->max_retries = -1;
	p->wait_timeout_ms = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;

		if (!strcmp(a, "--wait") && submit) {
			p->wait = true;
			continue;
		}
		if (!strncmp(a, "--", 2)) {
			if (i + 1 >= argc) {
				cli_usage_error("%s needs a value", a);
				goto out;
			}
			if (!strcmp(a, "--task-type"))
				slot = &p->task_type;
			else if (!strcmp(a, "--json"))
				slot = &p->json_file;
			else if (!strcmp(a, "--timeout"))
				slot = &p->timeout_s;
			else if (submit && !strcmp(a, "--idempotency-key"))
				slot = &p->idempotency_key;
			else if (submit && !strcmp(a, "--priority"))
				slot = &p->priority;
			else if (submit && !strcmp(a, "--max-retries"))
				slot = &p->max_retries_s;
			else if (submit && !strcmp(a, "--signing-key"))
				slot = &p->signing_key;
			else if (submit && !strcmp(a, "--at"))
				slot = &p->at_s;
			else if (submit && !strcmp(a, "--in"))
				slot = &p->in_s;
			else if (submit && !strcmp(a, "--wait-timeout"))
				slot = &p->wait_timeout_s;
			else {
				cli_usage_error("unknown option %s (see taskexec --help)", a);
				goto out;
			}
			*slot = argv[++i];
			continue;
		}
		if (!p->entry && !p->json_file && !strchr(a, '='))
			p->entry = a;
		else
			kv[nkv++] = argv[i];
	}
	if (p->json_file && (p->entry || nkv)) {
		cli_usage_error("--json takes the whole payload; give no ENTRY or k=v with it");
		goto out;
	}
	if (!p->json_file && !p->entry) {
		cli_usage_error("missing ENTRY (module.path:function or module.path:Class.method)");
		goto out;
	}
	if (p->timeout_s && parse_int(p->timeout_s, 1, 7 * 24 * 3600, &p->timeout) < 0) {
		/* --timeout is the job's deadline, so "submit --wait --timeout 1s"
		 * is a natural mistake: point at the option meant. */
		cli_usage_error("--timeout: '%s' is not a whole number of seconds (the job's deadline%s)", p->timeout_s,
				submit ? "; to bound --wait, give --wait-timeout DURATION" : "");
		goto out;
	}
	if (p->wait_timeout_s && !p->wait) {
		cli_usage_error("--wait-timeout bounds --wait; give both");
		goto out;
	}
	if (p->wait_timeout_s && parse_duration_ms(p->wait_timeout_s, &p->wait_timeout_ms) < 0) {
		cli_usage_error("--wait-timeout: '%s' is not a duration such as 30s, 5m or 2h", p->wait_timeout_s);
		goto out;
	}
	if (p->max_retries_s && parse_int(p->max_retries_s, 0, 100, &p->max_retries) < 0) {
		cli_usage_error("--max-retries: '%s' is not a whole number from 0 to 100", p->max_retries_s);
		goto out;
	}
	if (p->at_s && p->in_s) {
		cli_usage_error("give --at or --in, not both");
		goto out;
	}
	if (p->at_s && parse_at(p->at_s, &p->due_ms) < 0) {
		cli_usage_error("--at: '%s' is not a time like 2026-12-08T05:00:00Z or 2026-12-08T06:00:00+01:00",
				p->at_s);
		goto out;
	}
	if (p->in_s) {
		int64_t ms;

		if (parse_duration_ms(p->in_s, &ms) < 0) {
			cli_usage_error("--in: '%s' is not a duration such as 90s, 5m or 2h", p->in_s);
			goto out;
		}
		p->due_ms = wall_ms() + ms;
	}
	p->kv = kv;
	p->nkv = nkv;
	kv = NULL;
	r = 0;
out:
	free(kv);
	return r;
}

/* Returns the payload text, or NULL with a one-line reason in *ret_err. */
char *cli_payload_build(const struct cli_payload *p, const char *default_type, char **ret_err)
{
	char id[37], *err = NULL, *module = NULL, *cls = NULL, *method = NULL, *out = NULL;
	json_t *doc = NULL, *params;

	if (p->json_file) {
		char *text = NULL;
		json_error_t jerr;
		int r = read_file(strcmp(p->json_file, "-") ? p->json_file : "/dev/stdin", JOB_MAX_BYTES, &text, NULL);

		if (r < 0) {
			*ret_err = xasprintf("--json %s: %s", p->json_file,
					     r == -EFBIG ? "payload over 1 MiB" : strerror(-r));
			return NULL;
		}
		doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
		free(text);
		if (!json_is_object(doc)) {
			*ret_err = xasprintf("payload: %s", doc ? "must be a JSON object" : jerr.text);
			json_decref(doc);
			return NULL;
		}
		if (!json_object_get(doc, "task_type") && default_type)
			json_object_set_new(doc, "task_type", json_string(default_type));
	} else {
		if (entry_parse(p->entry, &module, &cls, &method, &err) < 0) {
			*ret_err = err;
			return NULL;
		}
		params = json_object();
		if (kv_parse(p->kv, p->nkv, params, &err) < 0) {
			*ret_err = err;
			json_decref(params);
			goto out;
		}
		doc = json_pack("{s:s, s:s, s:s*, s:s, s:o}", "module_path", module, "method_name", method,
				"class_name", cls, "task_type", p->task_type ? p->task_type : default_type ? default_type : "",
				"parameters", params);
	}
	if (!json_object_get(doc, "job_id")) {
		make_job_id(id);
		json_object_set_new(doc, "job_id", json_string(id));
	}
	if (p->task_type)
		json_object_set_new(doc, "task_type", json_string(p->task_type));
	if (p->timeout > 0)
		json_object_set_new(doc, "timeout_seconds", json_integer(p->timeout));
	if (p->max_retries >= 0)
		json_object_set_new(doc, "max_retries", json_integer(p->max_retries));
	if (p->priority)
		json_object_set_new(doc, "priority", json_string(p->priority));
	if (p->idempotency_key)
		json_object_set_new(doc, "idempotency_key", json_string(p->idempotency_key));
	if (!json_object_get(doc, "enqueued_at")) {
		char ts[64];

		iso8601_ms(wall_ms(), ts);
		json_object_set_new(doc, "enqueued_at", json_string(ts));
	}
	out = json_dumps(doc, JSON_COMPACT);
out:
	json_decref(doc);
	free(module);
	free(cls);
	free(method);
	return out;
}

void cli_payload_free(struct cli_payload *p)
{
	free(p->kv);
}

/* ---- run ------------------------------------------------------------------ */

struct run_ctx {
	struct outcome *outcome;
	struct attempt *attempt;
};

/* The job's lines go to our stderr while the job runs.  Whoever reads it may
 * be slow or never read at all: a blocking write there would stall the loop
 * and with it the job's deadline.  So they go through an outbuf: a bounded
 * buffer, lines dropped (and counted) past it. */
#define ERR_BUF_MAX (1 << 20)

static struct outbuf *errout;   /* NULL: write to stderr directly */

static void errout_open(struct loop *l)
{
	fflush(stderr);
	if (outbuf_new(STDERR_FILENO, ERR_BUF_MAX, &errout) == 0)
		outbuf_attach(errout, l);
}

/* Back to plain, blocking stderr: the job is over, what is left may wait. */
static void errout_close(void)
{
	uint64_t dropped;

	if (!errout)
		return;
	outbuf_attach(errout, NULL);
	(void)outbuf_drain(errout, -1);
	dropped = outbuf_dropped(errout);
	outbuf_free(errout);
	errout = NULL;
	if (dropped)
		fprintf(stderr, "taskexec: %llu lines of the job's output were dropped: standard error was not read\n",
			(unsigned long long)dropped);
}

/* Every line of job-controlled text goes out with a prefix of its own ("job: ",
 * "log: ", "trace: ") and its control characters escaped: no job line can
 * start with "taskexec: ", redraw the operator's terminal or hide behind a
 * carriage return, so the summary line cannot be forged (taskexec(1)). */
static void print_prefixed(const char *prefix, const char *line, size_t len)
{
	/* One buffer for every line, grown to the longest: a gigabyte of output
	 * must not cost an allocation a line. */
	static char *buf;
	static size_t cap;
	size_t plen = strlen(prefix), need = plen + TERM_ESCAPE_MAX(len) + 1, n;

	if (!buf || need > cap) {
		free(buf);
		cap = need;
		buf = xmalloc(cap);
	}
	memcpy(buf, prefix, plen + 1);
	n = plen + term_escape_into(buf + plen, line, len, 0);
	buf[n++] = '\n';
	if (errout)
		(void)outbuf_put(errout, buf, n);
	else
		fwrite(buf, 1, n, stderr);
}

static void on_line(void *ctx, int stream, const char *line, size_t len)
{
	print_prefixed("job: ", line, len);
}

static void on_event(void *ctx, const char *line, size_t len)
{
	json_t *ev = json_loadb(line, len, 0, NULL);
	const char *lvl = json_string_value(json_object_get(ev, "level"));
	const char *name = json_string_value(json_object_get(ev, "logger"));
	const char *msg = json_string_value(json_object_get(ev, "msg"));

	if (json_is_number(json_object_get(ev, "progress"))) {
		char *text = xasprintf("%.0f%%%s%s", json_number_value(json_object_get(ev, "progress")) * 100,
				       msg ? " " : "", msg ? msg : "");

		print_prefixed("progress: ", text, strlen(text));
		free(text);
	} else if (lvl && name && msg) {
		char *text = xasprintf("%s %s: %s", lvl, name, msg);

		print_prefixed("log: ", text, strlen(text));
		free(text);
	} else {
		print_prefixed("log: ", line, len);
	}
	json_decref(ev);
}

/* A traceback quotes the exception's message, which may hold newlines:
 * each of its lines gets the prefix. */
static void print_traceback(const char *tb)
{
	while (*tb) {
		size_t n = strcspn(tb, "\n");

		print_prefixed("trace: ", tb, n);
		tb += n + (tb[n] == '\n');
	}
}

static void on_done(void *ctx, struct outcome *o)
{
	struct run_ctx *rc = ctx;

	rc->outcome = o;
	rc->attempt = NULL;
}

/* The caller of `taskexec run` sees all the output: output_bytes bounds only the daemon's log. */
static const struct attempt_ops run_ops = { .line = on_line, .event = on_event, .done = on_done, .wait_cleanup = true };

static void on_signal(struct loop *l, int fd, uint32_t events, void *arg)
{
	struct run_ctx *rc = arg;
	struct signalfd_siginfo si;

	if (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si) && rc->attempt)
		attempt_stop(rc->attempt, OUT_CANCELLED);
}

/* jansson escapes only U+0000..U+001F; DEL and the C1 controls in the
 * job's error or traceback are escaped here, as equal JSON. */
static void print_summary(const struct outcome *o, const char *job_id)
{
	json_t *s = outcome_json(o, job_id);
	char *text = json_dumps(s, JSON_COMPACT);
	char *safe = term_escape_str(text, TERM_JSON);

	fprintf(stderr, "taskexec: summary %s\n", safe);
	free(safe);
	free(text);
	json_decref(s);
}

static int reject(const char *job_id, const char *msg)
{
	struct outcome *o = outcome_new(OUT_REJECTED, NULL);
	char *safe;

	o->error = xasprintf("rejected: %s", msg);
	safe = term_escape_str(o->error, 0);
	fprintf(stderr, "taskexec: %s\n", safe);
	free(safe);
	print_summary(o, job_id);
	outcome_free(o);
	return EXIT_USAGE;
}

int cli_run(int argc, char **argv)
{
	struct cli_payload cp;
	struct config c;
	struct policy_set ps = { 0 };
	struct policy_vars vars;
	struct sandbox sb;
	struct job j = { 0 };
	struct job_plan plan;
	struct run_ctx rc = { 0 };
	struct launch launch;
	struct loop *loop = NULL;
	char *payload = NULL, *err = NULL, *envelope = NULL;
	size_t envelope_len;
	sigset_t mask;
	int sfd = -1, r;

	/* The settings we read may hold passwords; the job may run as our uid. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if ((r = cli_payload_parse(argc, argv, &cp, false)))
		return r;
	if (cli_config(&c) < 0) {
		cli_payload_free(&cp);
		return EXIT_USAGE;
	}
	r = EXIT_USAGE;
	payload = cli_payload_build(&cp, "ad_hoc", &err);
	if (!payload) {
		r = reject(NULL, err);
		goto out;
	}
	vars = (struct policy_vars){ c.state_dir, c.tasks_path[0] };
	if (policy_load_dir(c.policy_dir, &vars, &ps, &err) < 0) {
		fprintf(stderr, "taskexec: policies: %s", err);
		goto out;
	}
	if (job_parse(payload, strlen(payload), &j, &err) < 0 || job_prepare(&j, &c, &ps, &plan, &err) < 0) {
		r = reject(j.job_id && job_id_valid(j.job_id) ? j.job_id : NULL, err);
		goto out;
	}
	if (sandbox_init(&sb, &c, &err) < 0) {
		fprintf(stderr, "taskexec: sandbox: %s\n", err);
		r = EXIT_FAILED;
		goto out;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = loop_new(&loop);
	if (r == 0) {
		sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
		r = sfd < 0 ? -errno : loop_add(loop, sfd, EPOLLIN, on_signal, &rc);
	}
	if (r < 0) {
		fprintf(stderr, "taskexec: event loop: %s\n", strerror(-r));
		sandbox_free(&sb);
		r = EXIT_FAILED;
		goto out;
	}
	errout_open(loop);
	envelope = job_envelope(&j, 1, &c, plan.policy, &envelope_len);
	launch = (struct launch){ .policy = plan.policy, .roots = c.tasks_path, .packages = c.allowed_modules, .input = envelope,
				  .input_len = envelope_len, .job_id = j.job_id };
	rc.attempt = attempt_start(loop, &sb, &launch, plan.timeout_ms, c.result_max, &run_ops, &rc, &err);
	if (!rc.attempt) {
		/* The summary says it too: a launch refused before the child
		 * existed is the executor's fault, like one that failed after. */
		struct outcome *o = outcome_new(OUT_EXECUTOR_FAULT, NULL);

		errout_close();
		o->error = xasprintf("launch failed: %s", err);
		fprintf(stderr, "taskexec: launch: %s\n", err);
		print_summary(o, j.job_id);
		outcome_free(o);
		r = EXIT_FAILED;
	} else {
		while (!rc.outcome)
			loop_run_once(loop, -1);
		errout_close();
		if (rc.outcome->kind == OUT_COMPLETED) {
			char *safe = term_escape_str(rc.outcome->result, TERM_JSON);

			printf("%s\n", safe);
			free(safe);
			r = EXIT_DONE;
		} else {
			/* "error: " first: an exception type or message is the job's
			 * text and could otherwise read "summary {...}". */
			char *safe = term_escape_str(rc.outcome->error, 0);

			if (rc.outcome->traceback)
				print_traceback(rc.outcome->traceback);
			fprintf(stderr, "taskexec: error: %s\n", safe);
			free(safe);
			r = EXIT_FAILED;
		}
		print_summary(rc.outcome, j.job_id);
		outcome_free(rc.outcome);
	}
	sandbox_free(&sb);
out:
	loop_free(loop);
	close_nointr(sfd);
	free(envelope);
	free(payload);
	free(err);
	job_free(&j);
	policy_set_free(&ps);
	config_free(&c);
	cli_payload_free(&cp);
	return r;
}
