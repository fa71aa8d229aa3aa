# SPDX-License-Identifier: ISC
"""The observability pack (packaging/observability) and the metrics it reads:
the dashboard and the alert rules parse, every metric they query is exposed
by a running daemon, and every metric exposed is documented in taskexecd(8)."""
import json
import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

from opshelpers import parse_prometheus, sample, wait_for
from testlib import REPO

PACK = REPO / "packaging" / "observability"
DASHBOARD = PACK / "taskexec-dashboard.json"
ALERTS = PACK / "taskexec-alerts.yml"
# Series Prometheus makes itself, not the daemon.
SCRAPE_SERIES = {"up"}
PROMQL_WORDS = {"sum", "max", "min", "by", "rate", "increase", "histogram_quantile", "time", "le", "and", "or",
                "on", "without", "label_values", "avg", "count", "ignoring"}


def scrape(d):
    r = d.get("/metrics")
    assert r.status == 200, r
    return parse_prometheus(r.body)


def metric_names(expr):
    """The metric names of a PromQL expression: identifiers that are not
    functions, keywords, label names (before =) or inside strings and
    durations."""
    expr = re.sub(r'"[^"]*"', '""', expr)           # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)           # range durations
    expr = re.sub(r"\{[^}]*\}", "", expr)            # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr)) - PROMQL_WORDS
    return {n for n in names if not re.fullmatch(r"\d.*", n)}


def family_of(name, families):
    for suffix in ("", "_bucket", "_sum", "_count"):
        if suffix and name.endswith(suffix) and name[:-len(suffix)] in families:
            return name[:-len(suffix)]
        if not suffix and name in families:
            return name
    return None


@pytest.fixture
def scraped(obs):
    """The families of a daemon that has run one job (so labelled series exist)."""
    d = obs.daemon(env={"TASKEXEC_LOG_LEVEL": "debug"})    # heartbeat lines are debug
    obs.submit("opstasks.talk:mark", task_type="ad_hoc")
    d.wait_event("heartbeat", where=lambda e: e.get("postgres") is True)
    return scrape(d)


def dashboard_exprs():
    doc = json.loads(DASHBOARD.read_text())
    exprs = []
    for p in doc["panels"]:
        assert p["title"] and p["type"] and p["gridPos"], p
        for t in p.get("targets", []):
            exprs.append(t["expr"])
    for v in doc["templating"]["list"]:
        if v.get("type") == "query":
            exprs.append(re.sub(r"^label_values\(([^,]+),.*\)$", r"\1", v["query"]))
    return exprs


def test_dashboard_parses_and_queries_only_exposed_metrics(scraped):
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    missing = {(n, e) for e in exprs for n in metric_names(e)
               if n not in SCRAPE_SERIES and family_of(n, scraped) is None}
    assert not missing, "the dashboard queries metrics /metrics does not expose: %s" % sorted(missing)
    used = {family_of(n, scraped) for e in exprs for n in metric_names(e)} - {None}
    for want in ("taskexec_queue_oldest_age_seconds", "taskexec_attempt_run_seconds", "process_cpu_seconds_total",
                 "taskexec_redis_up", "taskexec_postgres_up"):
        assert want in used, want


def test_alert_rules_parse_and_use_only_exposed_metrics(scraped):
    doc = yaml.safe_load(ALERTS.read_text())
    assert set(doc) == {"groups"}
    rules = [r for g in doc["groups"] for r in g["rules"]]
    for g in doc["groups"]:
        assert set(g) <= {"name", "interval", "rules", "limit"} and g["name"], g
    names = set()
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, r
        assert r["alert"] and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", r["alert"]) and r["alert"] not in names, r
        names.add(r["alert"])
        assert isinstance(r["expr"], str) and r["expr"].strip()
        assert r["expr"].count("(") == r["expr"].count(")"), r["expr"]
        if "for" in r:
            assert re.fullmatch(r"\d+[smhd]", r["for"]), r["for"]
        assert r["labels"]["severity"] in ("warning", "critical"), r
        assert r["annotations"]["summary"], r
        missing = [n for n in metric_names(r["expr"]) if n not in SCRAPE_SERIES and family_of(n, scraped) is None]
        assert not missing, "%s uses metrics /metrics does not expose: %s" % (r["alert"], missing)
    exprs = " ".join(r["expr"] for r in rules)
    for needed in ("up{", "taskexec_last_heartbeat_timestamp_seconds", "taskexec_redis_up", "taskexec_postgres_up",
                   "taskexec_queue_depth", "taskexec_queue_oldest_age_seconds", "taskexec_jobs_failed_total",
                   'outcome="violation"', "taskexec_executor_fault"):
        assert needed in exprs, "no alert on %s" % needed
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "rules", str(ALERTS)], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=60)
        assert r.returncode == 0, r.stdout


def test_every_exposed_metric_is_documented_in_taskexecd_8(scraped):
    man = (REPO / "man" / "taskexecd.8").read_text()
    undocumented = [f for f in scraped if f not in man]
    assert not undocumented, "not in taskexecd(8): %s" % undocumented


def test_attempt_run_time_is_labelled_by_task_type(obs):
    d = obs.daemon()
    obs.submit("opstasks.talk:mark", task_type="ad_hoc")
    obs.submit("opstasks.talk:mark", task_type="event_driven")
    m = scrape(d)
    assert sample(m, "taskexec_attempt_run_seconds_count", task_type="ad_hoc") == 1
    assert sample(m, "taskexec_attempt_run_seconds_count", task_type="event_driven") == 1
    assert sample(m, "taskexec_attempt_run_seconds_bucket", task_type="ad_hoc", le="+Inf") == 1
    assert sample(m, "taskexec_attempts_total", outcome="completed") == 2


def test_oldest_queued_job_age_grows_while_it_waits(obs):
    d = obs.daemon()
    m = scrape(d)
    for prio in ("high", "normal", "low"):
        assert sample(m, "taskexec_queue_oldest_age_seconds", priority=prio) == 0
    # One slot: the nap holds it, the next job waits at the head of normal.
    obs.submit("opstasks.talk:nap", "seconds=6", task_type="ad_hoc", wait=False)
    d.wait_event("job.started")
    obs.submit("opstasks.talk:mark", task_type="ad_hoc", wait=False)
    age = wait_for(lambda: (lambda v: v if v >= 2 else None)(
        sample(scrape(d), "taskexec_queue_oldest_age_seconds", priority="normal")), 8,
        "the oldest normal job's age to pass 2 s")
    assert age < 10
    assert sample(scrape(d), "taskexec_queue_oldest_age_seconds", priority="high") == 0
    # Claimed once the nap ends: the queue is empty again, the gauge 0 at the next beat.
    wait_for(lambda: sample(scrape(d), "taskexec_queue_oldest_age_seconds", priority="normal") == 0, 15,
             "the gauge to return to 0")
    wait_for(lambda: len(d.events("job.completed")) == 2, 15, "both jobs to complete")


def test_process_metrics_describe_the_daemon(obs):
    d = obs.daemon()
    m = scrape(d)
    start = sample(m, "process_start_time_seconds")
    assert d.started - 5 <= start <= time.time(), (start, d.started)
    assert sample(m, "process_resident_memory_bytes") > 1 << 20
    fds = sample(m, "process_open_fds")
    assert 5 <= fds <= len(os.listdir("/proc/%d/fd" % d.pid)) + 2, fds
    assert sample(m, "process_max_fds") >= fds
    assert 0 <= sample(m, "process_cpu_seconds_total") < 60
    assert m["process_cpu_seconds_total"]["type"] == "counter"


def test_make_install_puts_the_pack_under_usr_share_taskexec(tmp_path):
    r = subprocess.run(["make", "-s", "-C", str(REPO), "install", "DESTDIR=%s" % tmp_path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    for f in ("taskexec-dashboard.json", "taskexec-alerts.yml"):
        p = tmp_path / "usr/share/taskexec/observability" / f
        assert p.read_bytes() == (PACK / f).read_bytes(), p
        assert (p.stat().st_mode & 0o777) == 0o644
    spec = (REPO / "packaging" / "rpm" / "taskexec.spec").read_text()
    assert "%{_datadir}/taskexec/" in spec
