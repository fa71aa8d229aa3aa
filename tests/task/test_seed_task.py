# SPDX-License-Identifier: ISC
"""The seed task tasks.f5portalupdate.main:run, called in-process.

The sample exports shipped with the task give these row counts:
customer 42:   4 virtual servers + 3 pools + 6 members (7 listed, one twice)
               + 4 certificates (ca-bundle.crt skipped)            = 17
customer 7:    2 + 2 (one without members) + 2 + 2                  =  8
customer 1001: 2 + 1 + 3 + 1                                        =  7
"""

import datetime
import json
import os
import sqlite3
import subprocess

import pytest

from tasks.f5portalupdate import main
from tasks.f5portalupdate.steps.extract import extract
from tasks.f5portalupdate.steps.transform import transform

# conftest.py puts ROOT on sys.path; it is not imported here because every
# test directory has a conftest module of that name.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE_EXPORTS = os.path.join(ROOT, "tasks", "f5portalupdate", "sample_exports")
MALFORMED_EXPORTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "fixtures", "malformed")
ROWS = {42: 17, 7: 8, 1001: 7}
UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 26, 0, 0, tzinfo=UTC)


def query(db_path, sql, *args):
    db = sqlite3.connect(db_path)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def edit_json(path, change):
    with open(path) as f:
        document = json.load(f)
    change(document)
    with open(path, "w") as f:
        json.dump(document, f, indent=2)


def member_of(document, pool_name, member_name):
    pool = next(p for p in document["items"] if p["name"] == pool_name)
    return next(m for m in pool["membersReference"]["items"]
                if m["name"] == member_name)


# --- what a run reports --------------------------------------------------

def test_first_run_on_fresh_database_updates_every_row(configured):
    assert main.run(42) == {"updated_rows": 17, "customer_id": 42}
    assert query(configured, "SELECT count(*) FROM portal_rows "
                 "WHERE customer_id = 42") == [(17,)]


def test_second_run_on_same_export_updates_nothing(configured):
    main.run(42)
    assert main.run(42) == {"updated_rows": 0, "customer_id": 42}


def test_full_rebuild_rewrites_every_row_of_the_customer(configured):
    main.run(42)
    assert main.run(42, full_rebuild=True) == {"updated_rows": 17,
                                               "customer_id": 42}
    assert query(configured, "SELECT count(*) FROM portal_rows "
                 "WHERE customer_id = 42") == [(17,)]
    assert main.run(42) == {"updated_rows": 0, "customer_id": 42}


@pytest.mark.parametrize("customer_id", sorted(ROWS))
def test_every_sample_customer_loads_and_reloads_to_zero(configured, customer_id):
    assert main.run(customer_id)["updated_rows"] == ROWS[customer_id]
    assert main.run(customer_id)["updated_rows"] == 0


def test_full_rebuild_of_one_customer_leaves_the_others_alone(configured):
    main.run(42)
    main.run(7)
    assert main.run(7, full_rebuild=True)["updated_rows"] == 8
    assert main.run(42)["updated_rows"] == 0
    assert query(configured, "SELECT customer_id, count(*) FROM portal_rows "
                 "GROUP BY customer_id ORDER BY customer_id") == [(7, 8), (42, 17)]


def test_run_on_the_next_day_updates_nothing(configured):
    """days_to_expiry changes daily; it must not make rows look changed."""
    main.update(42, False, SAMPLE_EXPORTS, configured, now=NOW)
    next_day = NOW + datetime.timedelta(days=1, hours=3)
    counts = main.update(42, False, SAMPLE_EXPORTS, configured, now=next_day)
    assert counts["updated_rows"] == 0
    assert counts["unchanged"] == 17


def test_each_run_is_recorded(configured):
    main.run(42)
    main.run(42)
    main.run(42, full_rebuild=True)
    assert query(configured, "SELECT full_rebuild, inserted, changed, deleted, "
                 "unchanged, updated_rows FROM portal_sync_runs ORDER BY run_id") == [
        (0, 17, 0, 0, 0, 17), (0, 0, 0, 0, 17, 0), (1, 17, 0, 0, 0, 17)]


# --- changes in the export ------------------------------------------------

def test_changed_member_state_updates_exactly_that_row(export_copy, configured):
    main.run(42)
    pools = os.path.join(export_copy, "customer-42", "pools.json")
    edit_json(pools, lambda d: member_of(d, "pool_api", "10.20.1.22:8443")
              .update(state="up"))
    assert main.run(42) == {"updated_rows": 1, "customer_id": 42}
    assert query(configured, "SELECT state FROM pool_members WHERE customer_id = 42 "
                 "AND address = '10.20.1.22'") == [("up",)]
    assert main.run(42)["updated_rows"] == 0


def test_member_gone_from_export_is_deleted_and_counted(export_copy, configured):
    main.run(42)
    pools = os.path.join(export_copy, "customer-42", "pools.json")

    def drop_down_member(document):
        pool = next(p for p in document["items"] if p["name"] == "pool_api")
        members = pool["membersReference"]["items"]
        members[:] = [m for m in members if m["name"] != "10.20.1.22:8443"]

    edit_json(pools, drop_down_member)
    assert main.run(42)["updated_rows"] == 1
    assert query(configured, "SELECT address FROM pool_members WHERE "
                 "customer_id = 42 AND pool = '/Common/pool_api'") == [("10.20.1.21",)]


def test_new_virtual_server_and_renewed_certificate_count_two(export_copy, configured):
    main.run(42)
    customer = os.path.join(export_copy, "customer-42")

    def add_virtual_server(document):
        copy = dict(document["items"][0], name="vs_shop_https",
                    fullPath="/Common/vs_shop_https",
                    destination="/Common/10.10.0.20:443")
        document["items"].append(copy)

    def renew_api_certificate(document):
        cert = next(c for c in document["items"]
                    if c["name"] == "api.acme-retail.example.crt")
        cert["expirationDate"] += 90 * 86400

    edit_json(os.path.join(customer, "virtual_servers.json"), add_virtual_server)
    edit_json(os.path.join(customer, "certificates.json"), renew_api_certificate)
    assert main.run(42)["updated_rows"] == 2
    assert query(configured, "SELECT expires_at FROM certificates WHERE "
                 "full_path = '/Common/api.acme-retail.example.crt'") == [
        ("2027-03-08T12:00:00Z",)]


def test_empty_collection_without_items_is_accepted(export_copy, configured):
    certificates = os.path.join(export_copy, "customer-42", "certificates.json")
    edit_json(certificates, lambda d: d.pop("items"))
    assert main.run(42)["updated_rows"] == 13


# --- normalisation ---------------------------------------------------------

def rows_of(customer_id, now=NOW):
    return transform(extract(SAMPLE_EXPORTS, customer_id), now)


def test_duplicate_member_is_stored_once(configured):
    members = [r for r in rows_of(42) if r["kind"] == "pool_member"
               and r["fields"]["pool"] == "/Common/pool_www"]
    assert [m["fields"]["address"] for m in members] == [
        "10.20.0.11", "10.20.0.12", "10.20.0.13"]
    main.run(42)
    assert query(configured, "SELECT count(*) FROM pool_members WHERE "
                 "pool = '/Common/pool_www'") == [(3,)]


def test_conflicting_duplicate_member_is_refused(export_copy, configured):
    pools = os.path.join(export_copy, "customer-42", "pools.json")

    def disable_second_copy(document):
        pool = next(p for p in document["items"] if p["name"] == "pool_www")
        pool["membersReference"]["items"][3]["session"] = "user-disabled"

    edit_json(pools, disable_second_copy)
    with pytest.raises(ValueError) as raised:
        main.run(42)
    message = str(raised.value)
    assert pools in message
    assert "items[0].membersReference.items[3]" in message
    assert "first at items[0].membersReference.items[1]" in message


def test_days_to_expiry_counts_whole_days_from_now():
    certificates = {r["fields"]["name"]: r["fields"] for r in rows_of(42)
                    if r["kind"] == "certificate"}
    assert sorted(certificates) == [
        "api.acme-retail.example.crt", "default.crt",
        "legacy-mail.acme-retail.example.crt", "www.acme-retail.example.crt"]
    api = certificates["api.acme-retail.example.crt"]
    assert api["expires_at"] == "2026-12-08T12:00:00Z"
    assert api["days_to_expiry"] == 12
    expired = certificates["legacy-mail.acme-retail.example.crt"]
    assert expired["expires_at"] == "2026-10-31T23:59:59Z"
    assert expired["days_to_expiry"] == -26
    assert expired["common_name"] == "mail.acme-retail.example"
    later = {r["fields"]["name"]: r["fields"]["days_to_expiry"]
             for r in rows_of(42, NOW + datetime.timedelta(days=13))
             if r["kind"] == "certificate"}
    assert later["api.acme-retail.example.crt"] == -1


def test_stored_days_to_expiry_is_computed_when_read(configured):
    main.run(42)
    rows = query(configured, "SELECT expires_at, days_to_expiry FROM certificates "
                 "WHERE customer_id = 42")
    now = datetime.datetime.now(UTC)
    for expires_at, days in rows:
        expires = datetime.datetime.strptime(
            expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        assert days == (expires - now).days


def test_expiration_string_is_used_when_export_has_no_epoch():
    portal = next(r["fields"] for r in rows_of(7)
                  if r["key"] == "/Common/portal.northwind.example.crt")
    assert portal["expires_at"] == "2027-03-03T08:00:00Z"
    assert portal["days_to_expiry"] == 97


def test_endpoints_are_normalised():
    vs7 = {r["key"]: r["fields"] for r in rows_of(7) if r["kind"] == "virtual_server"}
    assert (vs7["/Common/vs_portal_https_v6"]["address"],
            vs7["/Common/vs_portal_https_v6"]["port"]) == ("2001:db8:7::10", 443)
    rows = rows_of(1001)
    main_vs = next(r["fields"] for r in rows if r["kind"] == "virtual_server"
                   and r["fields"]["name"] == "serviceMain")
    assert main_vs["full_path"] == "/Tenant1001/app_shop/serviceMain"
    assert (main_vs["address"], main_vs["port"]) == ("10.30.0.5%2", 443)
    assert main_vs["pool"] == "/Tenant1001/app_shop/web_pool"
    members = {r["fields"]["name"]: r["fields"] for r in rows
               if r["kind"] == "pool_member"}
    assert (members["web03:80"]["address"], members["web03:80"]["port"]) == (
        "10.31.0.7%2", 80)


def test_pool_without_members_is_still_a_pool():
    pools = [r["key"] for r in rows_of(7) if r["kind"] == "pool"]
    assert pools == ["/Common/pool_maintenance", "/Common/pool_portal"]


# --- bad input -------------------------------------------------------------

def test_unknown_customer_is_a_clear_error(configured):
    with pytest.raises(LookupError) as raised:
        main.run(99)
    assert str(raised.value) == (
        f"unknown customer 99: no export under {SAMPLE_EXPORTS} "
        "(looked for customer-99/)")


@pytest.mark.parametrize("customer_id", [0, -42, "42", True, 42.0, None])
def test_customer_id_must_be_a_positive_integer(configured, customer_id):
    with pytest.raises(ValueError) as raised:
        main.run(customer_id)
    assert str(raised.value) == (
        f"customer_id must be a positive integer, got {customer_id!r}")


def test_full_rebuild_must_be_a_boolean(configured):
    with pytest.raises(ValueError, match="full_rebuild must be true or false, "
                       "got 'yes'"):
        main.run(42, full_rebuild="yes")


@pytest.mark.parametrize("variable", ["F5PORTAL_SOURCE_DIR", "F5PORTAL_DB"])
def test_missing_configuration_names_the_variable(configured, monkeypatch, variable):
    monkeypatch.delenv(variable)
    with pytest.raises(RuntimeError, match=f"^{variable} is not set"):
        main.run(42)


def test_database_directory_must_exist(configured, monkeypatch, tmp_path):
    monkeypatch.setenv("F5PORTAL_DB", str(tmp_path / "nowhere" / "portal.db"))
    with pytest.raises(RuntimeError) as raised:
        main.run(42)
    assert str(raised.value) == (
        f"F5PORTAL_DB={tmp_path}/nowhere/portal.db: directory "
        f"{tmp_path}/nowhere does not exist")


def test_relative_source_dir_is_refused(configured, monkeypatch):
    monkeypatch.setenv("F5PORTAL_SOURCE_DIR", "sample_exports")
    with pytest.raises(RuntimeError, match="F5PORTAL_SOURCE_DIR=sample_exports: "
                       "must be an absolute path"):
        main.run(42)


@pytest.mark.parametrize("customer_id, file_name, message", [
    (501, "pools.json", "not valid JSON: Unterminated string starting at: line 19"),
    (502, "virtual_servers.json",
     "items[1].destination: missing (in /Common/vs_api_https)"),
    (503, "certificates.json", "items[0].expirationDate: expected a number, "
     "got a string (in /Common/www.example.crt)"),
    (504, "pools.json", "items[0].membersReference.items[0].name: "
     "bad port 'http' in '10.20.0.11:http'"),
    (505, "virtual_servers.json", "items: expected an array, got an object"),
])
def test_malformed_export_names_file_and_field(configured, monkeypatch,
                                               customer_id, file_name, message):
    monkeypatch.setenv("F5PORTAL_SOURCE_DIR", MALFORMED_EXPORTS)
    with pytest.raises(ValueError) as raised:
        main.run(customer_id)
    path = os.path.join(MALFORMED_EXPORTS, f"customer-{customer_id}", file_name)
    assert str(raised.value).startswith(f"{path}: {message}")
    assert query(configured, "SELECT count(*) FROM sqlite_master") == [(0,)]


def test_malformed_export_leaves_earlier_rows_untouched(export_copy, configured):
    main.run(42)
    with open(os.path.join(export_copy, "customer-42", "pools.json"), "w") as f:
        f.write('{"items": [')
    with pytest.raises(ValueError, match="pools.json: not valid JSON"):
        main.run(42)
    assert query(configured, "SELECT count(*) FROM portal_rows") == [(17,)]


def test_database_from_a_newer_task_version_is_refused(configured):
    main.run(42)
    db = sqlite3.connect(configured)
    db.execute("PRAGMA user_version = 2")
    db.close()
    with pytest.raises(RuntimeError, match="portal schema version 2 is newer "
                       "than this task supports"):
        main.run(42)


def test_bad_input_errors_are_not_retryable(configured):
    """taskexec does not retry a NonRetryableError (taskexec_task)."""
    from tasks.f5portalupdate.steps import NonRetryableError
    for call in (lambda: main.run(99), lambda: main.run(0)):
        with pytest.raises(NonRetryableError):
            call()


# --- fit for the sandbox -----------------------------------------------------

def test_package_has_no_private_names():
    """taskexec refuses module path components that start with '_'."""
    for directory, dirs, files in os.walk(os.path.join(ROOT, "tasks")):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in dirs + [f for f in files if f.endswith(".py")]:
            assert not name.startswith("_") or name == "__init__.py", (
                os.path.join(directory, name))


def test_runs_in_an_isolated_interpreter_without_site(configured):
    """The sandbox runs `python3 -I -S`: no site-packages, no PYTHON* vars."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); "
            "from tasks.f5portalupdate.main import run; "
            "print(json.dumps(run(42)))")
    result = subprocess.run(["/usr/bin/python3", "-I", "-S", "-B", "-c", code, ROOT],
                            capture_output=True, text=True, timeout=60,
                            env={"F5PORTAL_SOURCE_DIR": SAMPLE_EXPORTS,
                                 "F5PORTAL_DB": configured,
                                 "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"updated_rows": 17, "customer_id": 42}
