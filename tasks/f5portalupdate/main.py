# SPDX-License-Identifier: ISC
"""Refresh one customer's F5 BIG-IP inventory in the portal database.

    run(customer_id: int, full_rebuild: bool = False)
        -> {"updated_rows": int, "customer_id": int}

Configuration comes from the environment, which the ``etl`` policy sets:

F5PORTAL_SOURCE_DIR
    Absolute path of the directory of exports; customer N's export is
    ``customer-N/`` in it (see steps/extract.py for its files).
F5PORTAL_DB
    Absolute path of the portal's SQLite database; its directory must exist
    and be writable.  The schema is created when missing.

Bad parameters, missing configuration, an unknown customer and a malformed
export raise errors that taskexec does not retry (see steps/__init__.py).
"""

import datetime
import logging
import os

from .steps import ConfigurationError, InvalidParameterError
from .steps.extract import extract
from .steps.load import load
from .steps.transform import transform

log = logging.getLogger(__name__)

SOURCE_DIR_VARIABLE = "F5PORTAL_SOURCE_DIR"
DB_VARIABLE = "F5PORTAL_DB"
MAX_CUSTOMER_ID = 2**63 - 1  # SQLite's INTEGER


def run(customer_id: int, full_rebuild: bool = False) -> dict:
    """Extract, transform and load customer_id's export; see the module doc."""
    check_parameters(customer_id, full_rebuild)
    source_dir = configured_path(SOURCE_DIR_VARIABLE,
                                 "the directory of F5 exports")
    db_path = configured_path(DB_VARIABLE, "the portal SQLite database")
    if not os.path.isdir(source_dir):
        raise ConfigurationError(
            f"{SOURCE_DIR_VARIABLE}={source_dir}: not a directory")
    db_dir = os.path.dirname(db_path)
    if not os.path.isdir(db_dir):
        raise ConfigurationError(
            f"{DB_VARIABLE}={db_path}: directory {db_dir} does not exist")
    if os.path.isdir(db_path):
        raise ConfigurationError(f"{DB_VARIABLE}={db_path}: is a directory")
    counts = update(customer_id, full_rebuild, source_dir, db_path)
    return {"updated_rows": counts["updated_rows"], "customer_id": customer_id}


def update(customer_id, full_rebuild, source_dir, db_path, now=None):
    """The whole run without the environment: returns load()'s counts.

    now (an aware datetime) fixes the clock for days_to_expiry and the
    timestamps written; tests pass one.
    """
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    export = extract(source_dir, customer_id)
    rows = transform(export, now)
    counts = load(db_path, customer_id, rows, full_rebuild, now)
    log.info("customer %s: %d rows from %s; %s%d inserted, %d changed, "
             "%d deleted, %d unchanged", customer_id, len(rows),
             export["directory"], "full rebuild: " if full_rebuild else "",
             counts["inserted"], counts["changed"], counts["deleted"],
             counts["unchanged"])
    return counts


def check_parameters(customer_id, full_rebuild):
    # bool is an int in Python; customer_id=true is a mistake, not customer 1.
    if (not isinstance(customer_id, int) or isinstance(customer_id, bool)
            or not 1 <= customer_id <= MAX_CUSTOMER_ID):
        raise InvalidParameterError(
            f"customer_id must be a positive integer, got {customer_id!r}")
    if not isinstance(full_rebuild, bool):
        raise InvalidParameterError(
            f"full_rebuild must be true or false, got {full_rebuild!r}")


def configured_path(variable, what):
    value = os.environ.get(variable, "")
    if not value:
        raise ConfigurationError(
            f"{variable} is not set: it names {what} (the etl policy sets it)")
    if not os.path.isabs(value):
        raise ConfigurationError(
            f"{variable}={value}: must be an absolute path")
    return value
