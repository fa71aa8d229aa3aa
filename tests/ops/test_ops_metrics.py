# SPDX-License-Identifier: ISC
"""GET /metrics: strict Prometheus text, and counters that move when jobs run."""
import time

import pytest

from opshelpers import MetricsError, parse_prometheus, sample

# What issue 4 asks /metrics to expose, by family and type.
REQUIRED = {
    "taskexec_build_info": "gauge",
    "taskexec_jobs_started_total": "counter",
    "taskexec_jobs_completed_total": "counter",
    "taskexec_jobs_failed_total": "counter",
    "taskexec_jobs_retried_total": "counter",
    "taskexec_attempts_total": "counter",
    "taskexec_queue_to_running_seconds": "histogram",
    "taskexec_attempt_run_seconds": "histogram",
    "taskexec_slots_busy": "gauge",
    "taskexec_queue_depth": "gauge",
    "taskexec_last_heartbeat_timestamp_seconds": "gauge",
}


def scrape(d):
    r = d.get("/metrics")
    assert r.status == 200, r
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    assert "version=0.0.4" in r.headers.get("content-type", ""), r.headers
    try:
        return parse_prometheus(r.body)
    except MetricsError as e:
        pytest.fail("/metrics is not valid Prometheus text: %s\n%s" % (e, r.body))


def test_metrics_parse_as_prometheus_text_with_the_required_families(ops):
    d = ops.daemon(env={"TASKEXEC_LOG_LEVEL": "debug"})    # heartbeat lines are debug
    d.wait_event("heartbeat", where=lambda e: e.get("postgres") is True)
    m = scrape(d)
    for name, kind in REQUIRED.items():
        assert name in m, "family %s missing; have %s" % (name, sorted(m))
        assert m[name]["type"] == kind, (name, m[name]["type"])
    version = ops.taskexecd("--version").stdout.split()[-1]
    assert sample(m, "taskexec_build_info", version=version) == 1
    assert sample(m, "taskexec_slots_total") == 1
    assert sample(m, "taskexec_redis_up") == 1 and sample(m, "taskexec_postgres_up") == 1
    hb = sample(m, "taskexec_last_heartbeat_timestamp_seconds")
    assert abs(time.time() - hb) < 3.5, "last heartbeat %.3f is not within 3 intervals of now %.3f" % (hb, time.time())
    for prio in ("high", "normal", "low"):
        assert ("taskexec_queue_depth", {"priority": prio}) in [(n, l) for n, l, _ in m["taskexec_queue_depth"]["samples"]]


def test_seed_job_moves_completed_counters_by_exactly_one(ops):
    d = ops.daemon()
    before = scrape(d)
    job = ops.submit("tasks.f5portalupdate.main:run", "customer_id=42", task_type="etl")
    # The daemon counts a job in the same step that logs its end.
    d.wait_event("job.completed", where=lambda e: e.get("job_id") == job)
    after = scrape(d)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)
    assert delta("taskexec_jobs_completed_total", task_type="etl") == 1
    assert delta("taskexec_jobs_started_total", task_type="etl") == 1
    assert delta("taskexec_attempts_total", outcome="completed") == 1
    assert delta("taskexec_jobs_failed_total", task_type="etl") == 0
    assert delta("taskexec_attempts_total", outcome="exception") == 0
    assert delta("taskexec_attempt_run_seconds_count", task_type="etl") == 1
    assert delta("taskexec_queue_to_running_seconds_count") == 1
    assert delta("taskexec_attempt_run_seconds_sum", task_type="etl") > 0


def test_failing_job_moves_failed_and_exception_counters(ops):
    d = ops.daemon()
    before = scrape(d)
    # An unknown customer: UnknownCustomerError, not retried, the job FAILED.
    job = ops.submit("tasks.f5portalupdate.main:run", "customer_id=999", task_type="etl", expect="FAILED")
    d.wait_event("job.failed", where=lambda e: e.get("job_id") == job)
    after = scrape(d)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)
    assert delta("taskexec_jobs_failed_total", task_type="etl") == 1
    assert delta("taskexec_attempts_total", outcome="exception") == 1
    assert delta("taskexec_jobs_completed_total", task_type="etl") == 0
    assert delta("taskexec_attempts_total", outcome="completed") == 0
    assert delta("taskexec_jobs_retried_total", task_type="etl") == 0


@pytest.mark.parametrize("text, why", [
    ("# TYPE a counter\na 1", "no final newline"),
    ("a 1\n", "no TYPE"),
    ("# TYPE a counter\na -1\n", "negative counter"),
    ("# TYPE a counter\n# TYPE a counter\na 1\n", "TYPE twice"),
    ("# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 1\n", "not contiguous"),
    ("# TYPE a gauge\na{x=\"1\"} 1\na{x=\"1\"} 2\n", "series twice"),
    ("# TYPE a gauge\na{x=1} 1\n", "unquoted label"),
    ("# TYPE a gauge\na one\n", "bad value"),
    ("# TYPE a gauge\n\na 1\n", "blank line"),
    ("# random comment\n# TYPE a gauge\na 1\n", "stray comment"),
    ("# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", "bucket decreases"),
    ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n", "+Inf != count"),
    ("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", "no +Inf"),
    ("# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
     "le not increasing"),
])
def test_prometheus_parser_is_strict(text, why):
    with pytest.raises(MetricsError):
        parse_prometheus(text)


def test_prometheus_parser_accepts_valid_text():
    text = ('# HELP a_total Things.\n# TYPE a_total counter\na_total{k="v\\"q"} 3\n'
            '# TYPE h histogram\nh_bucket{le="0.5"} 1\nh_bucket{le="+Inf"} 2\nh_sum 0.7\nh_count 2\n'
            '# TYPE g gauge\ng NaN\ng{x="1"} -Inf\n')
    m = parse_prometheus(text)
    assert sample(m, "a_total", k='v"q') == 3
    assert sample(m, "h_count") == 2
