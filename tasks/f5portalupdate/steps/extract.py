# SPDX-License-Identifier: ISC
"""Extract: read one customer's F5 BIG-IP export and check its structure.

An export is a directory ``<source_dir>/customer-<id>/`` holding three files,
each the unmodified JSON body of an iControl REST collection request:

- ``virtual_servers.json``: ``GET /mgmt/tm/ltm/virtual?expandSubcollections=true``
- ``pools.json``: ``GET /mgmt/tm/ltm/pool?expandSubcollections=true``
- ``certificates.json``: ``GET /mgmt/tm/sys/file/ssl-cert``

This step checks that every field the later steps read is present and has the
right JSON type, and nothing more; what the values mean is transform's job.
Every complaint names the file and the field.
"""

import json
import os

from . import MalformedExportError, UnknownCustomerError

# (section, file name, the "kind" iControl REST gives the collection)
SECTIONS = (
    ("virtual_servers", "virtual_servers.json",
     "tm:ltm:virtual:virtualcollectionstate"),
    ("pools", "pools.json", "tm:ltm:pool:poolcollectionstate"),
    ("certificates", "certificates.json",
     "tm:sys:file:ssl-cert:ssl-certcollectionstate"),
)

# Fields each item must (True) or may (False) carry, with their JSON type.
# Fields not listed here are ignored: exports carry dozens more.
COMMON_FIELDS = (
    ("name", "string", True),
    ("partition", "string", True),
    ("subPath", "string", False),
    ("fullPath", "string", False),
)
ITEM_FIELDS = {
    "virtual_servers": COMMON_FIELDS + (
        ("destination", "string", True),
        ("pool", "string", False),
        ("ipProtocol", "string", False),
        ("enabled", "boolean", False),
        ("disabled", "boolean", False),
        ("description", "string", False),
        ("profilesReference", "object", False),
    ),
    "pools": COMMON_FIELDS + (
        ("loadBalancingMode", "string", False),
        ("monitor", "string", False),
        ("membersReference", "object", False),
    ),
    "certificates": COMMON_FIELDS + (
        ("subject", "string", True),
        ("issuer", "string", True),
        ("expirationDate", "number", False),
        ("expirationString", "string", False),
        ("fingerprint", "string", False),
        ("keyType", "string", False),
        ("certificateKeySize", "integer", False),
        ("isBundle", "boolean or string", False),
    ),
}
PROFILE_FIELDS = (("name", "string", True),)
MEMBER_FIELDS = (
    ("name", "string", True),
    ("address", "string", True),
    ("state", "string", False),
    ("session", "string", False),
)


def export_directory(source_dir, customer_id):
    """The directory that holds customer_id's export."""
    return os.path.join(source_dir, f"customer-{customer_id}")


def extract(source_dir, customer_id):
    """Load and check customer_id's export under source_dir.

    Returns a dict with "customer_id", "directory", "files" (section -> path)
    and one list of raw items per section ("virtual_servers", "pools",
    "certificates").  Raises UnknownCustomerError when there is no export for
    the customer and MalformedExportError when a file is not what it should be.
    """
    directory = export_directory(source_dir, customer_id)
    if not os.path.isdir(directory):
        raise UnknownCustomerError(
            f"unknown customer {customer_id}: no export under {source_dir} "
            f"(looked for customer-{customer_id}/)")
    export = {"customer_id": customer_id, "directory": directory, "files": {}}
    for section, file_name, kind in SECTIONS:
        path = os.path.join(directory, file_name)
        items = read_collection(path, kind)
        for index, item in enumerate(items):
            check_item(path, section, f"items[{index}]", item)
        export["files"][section] = path
        export[section] = items
    return export


def read_collection(path, kind):
    """The "items" of the iControl REST collection stored in path."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MalformedExportError(
            path, None, "missing: an export holds "
            + ", ".join(name for _, name, _ in SECTIONS)) from None
    try:
        document = json.loads(raw)
    except ValueError as e:
        raise MalformedExportError(path, None, f"not valid JSON: {e}") from None
    if not isinstance(document, dict):
        raise MalformedExportError(
            path, None, f"expected a JSON object, got {json_type(document)}")
    found_kind = document.get("kind")
    if found_kind is not None and found_kind != kind:
        raise MalformedExportError(
            path, "kind", f"expected {kind!r}, got {found_kind!r}")
    if "items" not in document:
        # iControl REST leaves "items" out of an empty collection.
        if found_kind == kind:
            return []
        raise MalformedExportError(path, "items", "missing")
    items = document["items"]
    if not isinstance(items, list):
        raise MalformedExportError(
            path, "items", f"expected an array, got {json_type(items)}")
    return items


def check_item(path, section, where, item):
    check_fields(path, where, item, ITEM_FIELDS[section])
    if section == "virtual_servers" and "profilesReference" in item:
        check_subcollection(path, f"{where}.profilesReference",
                            item["profilesReference"], PROFILE_FIELDS)
    if section == "pools" and "membersReference" in item:
        check_subcollection(path, f"{where}.membersReference",
                            item["membersReference"], MEMBER_FIELDS)


def check_subcollection(path, where, reference, fields):
    # A subcollection without "items" is empty (a pool with no members).
    items = reference.get("items", [])
    if not isinstance(items, list):
        raise MalformedExportError(
            path, f"{where}.items", f"expected an array, got {json_type(items)}")
    for index, item in enumerate(items):
        check_fields(path, f"{where}.items[{index}]", item, fields)


def check_fields(path, where, item, fields):
    if not isinstance(item, dict):
        raise MalformedExportError(
            path, where, f"expected an object, got {json_type(item)}")
    for name, expected, required in fields:
        if name not in item:
            if required:
                raise MalformedExportError(
                    path, f"{where}.{name}", "missing" + described(item))
            continue
        value = item[name]
        if not has_type(value, expected):
            raise MalformedExportError(
                path, f"{where}.{name}",
                f"expected {article(expected)}, got {json_type(value)}"
                + described(item))


def described(item):
    """' (in <name>)' to help find the item in a large file, when it has one."""
    name = item.get("fullPath") or item.get("name")
    return f" (in {name})" if isinstance(name, str) and name else ""


def has_type(value, expected):
    if expected == "string":
        return isinstance(value, str)
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "boolean or string":
        return isinstance(value, (bool, str))
    if expected == "object":
        return isinstance(value, dict)
    raise AssertionError(expected)


def json_type(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def article(type_name):
    return ("an " if type_name[0] in "aeiou" else "a ") + type_name
