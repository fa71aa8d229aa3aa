# SPDX-License-Identifier: ISC
"""Load: upsert portal rows into the portal's SQLite database.

All rows live in one table, ``portal_rows``, keyed by (customer_id, kind,
natural_key), with the row's content as canonical JSON and a SHA-256 of it.
Views ``virtual_servers``, ``pools``, ``pool_members`` and ``certificates``
give the portal typed columns; ``certificates.days_to_expiry`` is computed
when read, so it is right on any day without a run.

A run is one transaction.  Without full_rebuild a row counts as updated when
it is inserted, when its content hash changed, or when it is deleted because
the export no longer has it; a second run on the same export updates 0.  With
full_rebuild the customer's rows are deleted and every row of the export is
inserted again, and all of those count.  Each run is recorded in
``portal_sync_runs``.
"""

import hashlib
import json
import os
import sqlite3

from . import ConfigurationError
from .transform import VOLATILE_FIELDS

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS portal_rows (
    customer_id  INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    natural_key  TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (customer_id, kind, natural_key)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS portal_sync_runs (
    run_id       INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL,
    finished_at  TEXT NOT NULL,
    full_rebuild INTEGER NOT NULL,
    inserted     INTEGER NOT NULL,
    changed      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL,
    unchanged    INTEGER NOT NULL,
    updated_rows INTEGER NOT NULL
);

CREATE VIEW IF NOT EXISTS virtual_servers AS
SELECT customer_id,
       natural_key                        AS full_path,
       json_extract(data, '$.name')        AS name,
       json_extract(data, '$.partition')   AS partition,
       json_extract(data, '$.address')     AS address,
       json_extract(data, '$.port')        AS port,
       json_extract(data, '$.protocol')    AS protocol,
       json_extract(data, '$.pool')        AS pool,
       json_extract(data, '$.enabled')     AS enabled,
       json_extract(data, '$.profiles')    AS profiles,
       json_extract(data, '$.description') AS description,
       updated_at
  FROM portal_rows WHERE kind = 'virtual_server';

CREATE VIEW IF NOT EXISTS pools AS
SELECT customer_id,
       natural_key                                AS full_path,
       json_extract(data, '$.name')                AS name,
       json_extract(data, '$.partition')           AS partition,
       json_extract(data, '$.load_balancing_mode') AS load_balancing_mode,
       json_extract(data, '$.monitor')             AS monitor,
       updated_at
  FROM portal_rows WHERE kind = 'pool';

CREATE VIEW IF NOT EXISTS pool_members AS
SELECT customer_id,
       json_extract(data, '$.pool')    AS pool,
       json_extract(data, '$.name')    AS name,
       json_extract(data, '$.address') AS address,
       json_extract(data, '$.port')    AS port,
       json_extract(data, '$.state')   AS state,
       json_extract(data, '$.session') AS session,
       updated_at
  FROM portal_rows WHERE kind = 'pool_member';

CREATE VIEW IF NOT EXISTS certificates AS
SELECT customer_id, full_path, name, partition, common_name, subject, issuer,
       expires_at, fingerprint, key_type, key_size,
       CASE WHEN seconds_left >= 0 THEN seconds_left / 86400
            ELSE -((86399 - seconds_left) / 86400) END AS days_to_expiry,
       updated_at
  FROM (SELECT customer_id,
               natural_key                        AS full_path,
               json_extract(data, '$.name')        AS name,
               json_extract(data, '$.partition')   AS partition,
               json_extract(data, '$.common_name') AS common_name,
               json_extract(data, '$.subject')     AS subject,
               json_extract(data, '$.issuer')      AS issuer,
               json_extract(data, '$.expires_at')  AS expires_at,
               json_extract(data, '$.fingerprint') AS fingerprint,
               json_extract(data, '$.key_type')    AS key_type,
               json_extract(data, '$.key_size')    AS key_size,
               CAST(strftime('%s', json_extract(data, '$.expires_at')) AS INTEGER)
                 - CAST(strftime('%s', 'now') AS INTEGER) AS seconds_left,
               updated_at
          FROM portal_rows WHERE kind = 'certificate');
"""


def load(db_path, customer_id, rows, full_rebuild, now):
    """Upsert rows (from transform()) for customer_id into the database at
    db_path, creating its schema when missing.

    Returns counts: inserted, changed, deleted, unchanged and updated_rows.
    """
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = {"inserted": 0, "changed": 0, "deleted": 0, "unchanged": 0}
    # isolation_level=None: this function issues BEGIN and COMMIT itself, so
    # the schema, the upserts and the run record are one transaction.
    db = sqlite3.connect(db_path, timeout=60, isolation_level=None)
    try:
        # Jobs of this type run under uids of their own and share the write
        # path through its group: sqlite makes a new database 0644 whatever
        # the umask, so make it (and, after it, its journal) group-writable.
        if os.stat(db_path).st_uid == os.getuid():
            os.chmod(db_path, 0o664)
        db.execute("BEGIN IMMEDIATE")
        ensure_schema(db, db_path)
        if full_rebuild:
            db.execute("DELETE FROM portal_rows WHERE customer_id = ?",
                       (customer_id,))
            stored = {}
        else:
            stored = {(kind, key): digest for kind, key, digest in db.execute(
                "SELECT kind, natural_key, content_hash FROM portal_rows "
                "WHERE customer_id = ?", (customer_id,))}
        for row in rows:
            data, digest = content(row)
            previous = stored.pop((row["kind"], row["key"]), None)
            if previous is None:
                db.execute(
                    "INSERT INTO portal_rows (customer_id, kind, natural_key, "
                    "content_hash, data, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (customer_id, row["kind"], row["key"], digest, data,
                     stamp, stamp))
                counts["inserted"] += 1
            elif previous != digest:
                db.execute(
                    "UPDATE portal_rows SET content_hash = ?, data = ?, "
                    "updated_at = ? WHERE customer_id = ? AND kind = ? "
                    "AND natural_key = ?",
                    (digest, data, stamp, customer_id, row["kind"], row["key"]))
                counts["changed"] += 1
            else:
                counts["unchanged"] += 1
        for kind, key in stored:
            db.execute(
                "DELETE FROM portal_rows WHERE customer_id = ? AND kind = ? "
                "AND natural_key = ?", (customer_id, kind, key))
            counts["deleted"] += 1
        counts["updated_rows"] = (counts["inserted"] + counts["changed"]
                                  + counts["deleted"])
        db.execute(
            "INSERT INTO portal_sync_runs (customer_id, finished_at, "
            "full_rebuild, inserted, changed, deleted, unchanged, updated_rows) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (customer_id, stamp, int(full_rebuild), counts["inserted"],
             counts["changed"], counts["deleted"], counts["unchanged"],
             counts["updated_rows"]))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    finally:
        db.close()
    return counts


def ensure_schema(db, db_path):
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise ConfigurationError(
            f"{db_path}: portal schema version {version} is newer than this "
            f"task supports ({SCHEMA_VERSION})")
    if version < SCHEMA_VERSION:
        # Statement by statement: executescript() would COMMIT the open
        # transaction first.
        for statement in SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def content(row):
    """(canonical JSON of the row's stored fields, its SHA-256 in hex)."""
    fields = {name: value for name, value in row["fields"].items()
              if name not in VOLATILE_FIELDS}
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    digest = hashlib.sha256(f"{row['kind']}\n{data}".encode()).hexdigest()
    return data, digest
