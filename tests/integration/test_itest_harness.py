# SPDX-License-Identifier: ISC
"""The integration harness itself: throwaway services, producer step, policy tweaks.

These need no taskexecd; they show the fixtures work before blaming the daemon.
"""
import json

from ithelpers import ini_set, job_payload


def test_services_answer_and_db_user_owns_database(services, db, rds):
    assert rds.ping()
    row = db.query("SELECT current_user AS u, current_database() AS d, "
                   "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS su")[0]
    assert row == {"u": "taskexec", "d": "taskexec", "su": True}


def test_push_does_the_producer_step_under_the_test_prefix(ctx, push, rds):
    p = job_payload()
    push(p, "high")
    assert [json.loads(x) for x in rds.lrange(ctx.key("queue", "high"), 0, -1)] == [p]
    assert rds.zrange(ctx.key("wake"), 0, -1, withscores=True) == [("w", 0.0)]
    assert ctx.key("queue", "high") == "{%s}:queue:high" % ctx.prefix


def test_redis_restart_keeps_aof_data(services, ctx, rds):
    rds.rpush(ctx.key("queue", "low"), "kept")
    services.restart_redis(pause=0.2)
    assert rds.lrange(ctx.key("queue", "low"), 0, -1) == ["kept"]


def test_pg_restart_keeps_data_and_db_helper_reconnects(services, db):
    db.query("CREATE TABLE IF NOT EXISTS public.itest_probe (x int)")
    db.query("INSERT INTO public.itest_probe VALUES (7)")
    services.restart_pg(pause=0.2)
    assert {"x": 7} in db.query("SELECT x FROM public.itest_probe")
    db.query("DROP TABLE public.itest_probe")


def test_ini_set_replaces_merges_and_adds_keys():
    text = "[job]\npriority = normal\nbackoff_base = 1s\n\n[paths]\nwrite = /a\n"
    out = ini_set(text, "job", "backoff_base", "200ms")
    out = ini_set(out, "paths", "write", "/m", merge_list=True)
    out = ini_set(out, "job", "max_timeout", "5m")
    out = ini_set(out, "env", "X", "1")
    assert out == ("[job]\npriority = normal\nbackoff_base = 200ms\nmax_timeout = 5m\n\n"
                   "[paths]\nwrite = /a, /m\n\n[env]\nX = 1\n")
