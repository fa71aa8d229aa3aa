/* SPDX-License-Identifier: ISC */
/* metrics — counters, gauges and histograms for /metrics (Prometheus text). */
#include "metrics.h"
#include "log.h"
#include "util.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TYPES 64
static const char *const job_events[] = { "started", "completed", "failed", "retried", "rejected" };
#define N_EVENTS ARRAY_SIZE(job_events)
static const double buckets[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800 };
#define N_BUCKETS ARRAY_SIZE(buckets)

struct histogram {
	uint64_t counts[N_BUCKETS];
	uint64_t count;
	double sum;
};

static const char *const gauges[] = { "slots_busy", "slots_total", "redis_up", "postgres_up",
				       "last_heartbeat_timestamp_seconds", "executor_fault", "redis_bad_keys" };
static const char *const gauge_help[] = { "Jobs holding a slot", "TASKEXEC_CONCURRENCY",
					  "1 while the Redis command connection is up (connected and authenticated)",
					  "1 while the PostgreSQL connection is up", "Time of the last heartbeat",
					  "1 while attempts cannot start for a fault of this executor",
					  "Keys of ours in Redis holding a value of the wrong type, skipped" };
static const char *const counters[] = { "executor_faults_total", "unstorable_total", "reconciled_total",
					 "redis_failovers_total", "postgres_failovers_total" };
static const char *const counter_help[] = {
	"Attempts that could not start for a fault of this executor (not charged to the job)",
	"Payloads and outcomes PostgreSQL refused for their data, recorded without it",
	"QUEUED jobs Redis had lost, pushed again from their stored payload",
	"Moves to another Redis master (Sentinel switch, cluster MOVED)",
	"Reconnects that landed on another PostgreSQL server than the last",
};
/* Which servers are in use, as info series (value 1, the address a label). */
static const char *const infos[] = { "redis_master", "postgres_primary" };
static const char *const info_help[] = { "The Redis master in use (host:port, or the socket path)",
					 "The PostgreSQL server in use (host:port)" };

struct metrics {
	char *executor_id;
	char *types[MAX_TYPES];
	uint64_t jobs[MAX_TYPES][N_EVENTS];
	uint64_t attempts[OUT_LAST + 1];
	struct histogram queue_latency, run_time[MAX_TYPES];
	double gauge[ARRAY_SIZE(gauges)], depth[4], oldest[3];
	double start_time;              /* process_start_time_seconds */
	uint64_t counter[ARRAY_SIZE(counters)];
	char *info[ARRAY_SIZE(infos)];
	double redis_malformed;
};


/* When this process started, in seconds since the epoch: the boot time of
 * /proc/stat plus field 22 of /proc/self/stat (clock ticks since boot).  Read
 * once: neither changes while we run.  0 where /proc is not readable. */
static double process_start_time(void)
{
	char buf[1024], *p;
	unsigned long long start = 0, btime = 0;
	FILE *f = fopen("/proc/stat", "re");
	size_t n;

	while (f && fgets(buf, sizeof(buf), f))
		if (sscanf(buf, "btime %llu", &btime) == 1)
			break;
	if (f)
		fclose(f);
	f = fopen("/proc/self/stat", "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields start after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || !btime ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &start) != 1)
		return 0;
	return (double)btime + (double)start / (double)sysconf(_SC_CLK_TCK);
}

struct metrics *metrics_new(const char *executor_id)
{
	struct metrics *m = xcalloc(1, sizeof(*m));

	m->executor_id = xstrdup(executor_id);
	m->start_time = process_start_time();
	return m;
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	for (int i = 0; i < MAX_TYPES && m->types[i]; i++)
		free(m->types[i]);
	for (size_t i = 0; i < ARRAY_SIZE(infos); i++)
		free(m->info[i]);
	free(m->executor_id);
	free(m);
}

/* The label slot of a task type, or -1: bounded label cardinality, types
 * beyond 64 are not counted. */
static int type_slot(struct metrics *m, const char *task_type)
{
	int t;

	if (!task_type || !*task_type)
		task_type = "unknown";
	for (t = 0; t < MAX_TYPES && m->types[t] && strcmp(m->types[t], task_type); t++)
		;
	if (t == MAX_TYPES)
		return -1;
	if (!m->types[t])
		m->types[t] = xstrdup(task_type);
	return t;
}

void metrics_task_type(struct metrics *m, const char *task_type)
{
	(void)type_slot(m, task_type);
}

void metrics_job(struct metrics *m, const char *task_type, const char *what)
{
	int t = type_slot(m, task_type), e;

	if (t < 0)
		return;
	for (e = 0; e < (int)N_EVENTS && strcmp(job_events[e], what); e++)
		;
	if (e < (int)N_EVENTS)
		m->jobs[t][e]++;
}

static void observe(struct histogram *h, double v)
{
	for (size_t i = 0; i < N_BUCKETS; i++)
		if (v <= buckets[i])
			h->counts[i]++;
	h->count++;
	h->sum += v;
}

void metrics_attempt(struct metrics *m, const char *task_type, enum outcome_kind k, double run_seconds)
{
	int t = type_slot(m, task_type);

	m->attempts[k]++;
	if (run_seconds >= 0 && t >= 0)
		observe(&m->run_time[t], run_seconds);
}

void metrics_queue_latency(struct metrics *m, double seconds)
{
	observe(&m->queue_latency, seconds < 0 ? 0 : seconds);
}

void metrics_set(struct metrics *m, const char *gauge, double v)
{
	for (size_t i = 0; i < ARRAY_SIZE(gauges); i++)
		if (!strcmp(gauges[i], gauge))
			m->gauge[i] = v;
	if (!strcmp(gauge, "redis_malformed_total"))
		m->redis_malformed = v;
}

bool metrics_info(struct metrics *m, const char *name, const char *value)
{
	for (size_t i = 0; i < ARRAY_SIZE(infos); i++) {
		bool changed;

		if (strcmp(infos[i], name) || !value)
			continue;
		changed = m->info[i] && strcmp(m->info[i], value);
		free(m->info[i]);
		m->info[i] = xstrdup(value);
		return changed;
	}
	return false;
}

void metrics_count(struct metrics *m, const char *counter)
{
	for (size_t i = 0; i < ARRAY_SIZE(counters); i++)
		if (!strcmp(counters[i], counter))
			m->counter[i]++;
}

void metrics_depths(struct metrics *m, long high, long normal, long low, long delayed)
{
	m->depth[0] = (double)high;
	m->depth[1] = (double)normal;
	m->depth[2] = (double)low;
	m->depth[3] = (double)delayed;
}

void metrics_queue_oldest(struct metrics *m, int prio, double age_seconds)
{
	if (prio >= 0 && prio < 3)
		m->oldest[prio] = age_seconds < 0 ? 0 : age_seconds;
}

/* One histogram's series; LABEL is "" or 'name="value",'. */
static void put_series(FILE *f, const char *name, const char *label, const struct histogram *h)
{
	size_t n = strlen(label);

	for (size_t i = 0; i < N_BUCKETS; i++)
		fprintf(f, "%s_bucket{%sle=\"%g\"} %llu\n", name, label, buckets[i], (unsigned long long)h->counts[i]);
	fprintf(f, "%s_bucket{%sle=\"+Inf\"} %llu\n", name, label, (unsigned long long)h->count);
	/* _sum and _count carry the label without its trailing comma. */
	if (n)
		fprintf(f, "%s_sum{%.*s} %.6f\n%s_count{%.*s} %llu\n", name, (int)n - 1, label, h->sum, name, (int)n - 1,
			label, (unsigned long long)h->count);
	else
		fprintf(f, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

/* process_* of the Prometheus client conventions, read from /proc/self when
 * scraped: a few small reads of a pseudo-file system that never blocks. */
static void put_process(FILE *f, const struct metrics *m)
{
	char buf[1024], *p;
	unsigned long long ut = 0, st = 0, rss = 0;
	long fds = 0;
	FILE *s = fopen("/proc/self/stat", "re");
	DIR *d;
	size_t n = 0;

	if (s) {
		n = fread(buf, 1, sizeof(buf) - 1, s);
		fclose(s);
	}
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (p)
		(void)sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	s = fopen("/proc/self/statm", "re");
	if (s) {
		if (fscanf(s, "%*u %llu", &rss) != 1)
			rss = 0;
		fclose(s);
	}
	d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *de;

		while ((de = readdir(d)))
			if (de->d_name[0] != '.')
				fds++;
		closedir(d);
		fds--;          /* the listing's own fd */
	}
	fprintf(f, "# HELP process_cpu_seconds_total User and system CPU time of taskexecd\n"
		   "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
		(double)(ut + st) / (double)sysconf(_SC_CLK_TCK));
	fprintf(f, "# HELP process_resident_memory_bytes Resident memory of taskexecd\n"
		   "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
		rss * (unsigned long long)sysconf(_SC_PAGESIZE));
	fprintf(f, "# HELP process_open_fds Open file descriptors of taskexecd\n"
		   "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds < 0 ? 0 : fds);
	fprintf(f, "# HELP process_max_fds RLIMIT_NOFILE of taskexecd\n"
		   "# TYPE process_max_fds gauge\nprocess_max_fds %ld\n", sysconf(_SC_OPEN_MAX));
	fprintf(f, "# HELP process_start_time_seconds When taskexecd started, in seconds since the epoch\n"
		   "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n", m->start_time);
}

char *metrics_render(const struct metrics *m)
{
	static const char *const helps[] = { "Attempts started", "Jobs that ended COMPLETED",
					     "Jobs that ended FAILED", "Retries scheduled",
					     "Payloads rejected without running" };
	static const char *const prios[] = { "high", "normal", "low" };
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		abort();
	fprintf(f, "# HELP taskexec_build_info Version of this taskexecd\n# TYPE taskexec_build_info gauge\n"
		   "taskexec_build_info{version=\"%s\"} 1\n", TASKEXEC_VERSION);
	for (size_t e = 0; e < N_EVENTS; e++) {
		fprintf(f, "# HELP taskexec_jobs_%s_total %s, by task type\n# TYPE taskexec_jobs_%s_total counter\n",
			job_events[e], helps[e], job_events[e]);
		for (int t = 0; t < MAX_TYPES && m->types[t]; t++)
			fprintf(f, "taskexec_jobs_%s_total{task_type=\"%s\"} %llu\n", job_events[e], m->types[t],
				(unsigned long long)m->jobs[t][e]);
	}
	fprintf(f, "# HELP taskexec_attempts_total Attempts by how they ended\n# TYPE taskexec_attempts_total counter\n");
	for (int k = 0; k <= OUT_LAST; k++)
		fprintf(f, "taskexec_attempts_total{outcome=\"%s\"} %llu\n", outcome_name((enum outcome_kind)k),
			(unsigned long long)m->attempts[k]);
	fprintf(f, "# HELP taskexec_queue_to_running_seconds From enqueued_at to RUNNING\n"
		   "# TYPE taskexec_queue_to_running_seconds histogram\n");
	put_series(f, "taskexec_queue_to_running_seconds", "", &m->queue_latency);
	fprintf(f, "# HELP taskexec_attempt_run_seconds Wall time of an attempt, by task type\n"
		   "# TYPE taskexec_attempt_run_seconds histogram\n");
	for (int t = 0; t < MAX_TYPES && m->types[t]; t++) {
		char *label = xasprintf("task_type=\"%s\",", m->types[t]);

		put_series(f, "taskexec_attempt_run_seconds", label, &m->run_time[t]);
		free(label);
	}
	for (size_t i = 0; i < ARRAY_SIZE(gauges); i++)
		fprintf(f, "# HELP taskexec_%s %s\n# TYPE taskexec_%s gauge\ntaskexec_%s %.3f\n", gauges[i], gauge_help[i],
			gauges[i], gauges[i], m->gauge[i]);
	for (size_t i = 0; i < ARRAY_SIZE(counters); i++)
		fprintf(f, "# HELP taskexec_%s %s\n# TYPE taskexec_%s counter\ntaskexec_%s %llu\n", counters[i],
			counter_help[i], counters[i], counters[i], (unsigned long long)m->counter[i]);
	for (size_t i = 0; i < ARRAY_SIZE(infos); i++) {
		if (!m->info[i])
			continue;
		fprintf(f, "# HELP taskexec_%s_info %s\n# TYPE taskexec_%s_info gauge\ntaskexec_%s_info{address=\"", infos[i],
			info_help[i], infos[i], infos[i]);
		/* Prometheus label escapes; an address has none, a socket path might. */
		for (const char *c = m->info[i]; *c; c++)
			fprintf(f, "%s%c", *c == '\\' || *c == '"' || *c == '\n' ? "\\" : "", *c == '\n' ? 'n' : *c);
		fputs("\"} 1\n", f);
	}
	fprintf(f, "# HELP taskexec_log_lines_dropped_total Log lines dropped: standard output was not read fast enough\n"
		   "# TYPE taskexec_log_lines_dropped_total counter\ntaskexec_log_lines_dropped_total %llu\n",
		(unsigned long long)log_lines_dropped());
	fprintf(f, "# HELP taskexec_redis_malformed_total Entries without a priority moved to {P}:garbage\n"
		   "# TYPE taskexec_redis_malformed_total counter\ntaskexec_redis_malformed_total %.0f\n",
		m->redis_malformed);
	fprintf(f, "# HELP taskexec_queue_depth Jobs waiting, as of the last heartbeat\n# TYPE taskexec_queue_depth gauge\n");
	for (int i = 0; i < 3; i++)
		fprintf(f, "taskexec_queue_depth{priority=\"%s\"} %.0f\n", prios[i], m->depth[i]);
	fprintf(f, "# HELP taskexec_delayed_retries Retries waiting for their time, as of the last heartbeat\n"
		   "# TYPE taskexec_delayed_retries gauge\ntaskexec_delayed_retries %.0f\n", m->depth[3]);
	fprintf(f, "# HELP taskexec_queue_oldest_age_seconds Age of the job at the head of each queue (0 when empty), "
		   "as of the last heartbeat\n# TYPE taskexec_queue_oldest_age_seconds gauge\n");
	for (int i = 0; i < 3; i++)
		fprintf(f, "taskexec_queue_oldest_age_seconds{priority=\"%s\"} %.3f\n", prios[i], m->oldest[i]);
	put_process(f, m);
	fclose(f);
	return text;
}
