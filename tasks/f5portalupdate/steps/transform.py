# SPDX-License-Identifier: ISC
"""Transform: turn a checked export into normalised, de-duplicated portal rows.

A row is ``{"kind": KIND, "key": NATURAL_KEY, "fields": {...}}`` with KIND one
of KINDS:

- ``virtual_server``, key its full path (``/Common/vs_www_https``): name,
  partition, full_path, address, port, protocol, pool, enabled, profiles,
  description.
- ``pool``, key its full path: name, partition, full_path,
  load_balancing_mode, monitor.
- ``pool_member``, key ``<pool full path>|<address>|<port>``: pool, name,
  address, port, state, session.
- ``certificate``, key its full path: name, partition, full_path,
  common_name, subject, issuer, expires_at (ISO 8601, UTC), fingerprint,
  key_type, key_size, and days_to_expiry.

days_to_expiry is whole days from ``now`` to expiry, rounded down (-1 the day
after a certificate expired).  It changes every day without the certificate
changing, so it is listed in VOLATILE_FIELDS and the load step keeps it out of
what it stores and compares.

Addresses are normalised (``2001:0db8::0010`` -> ``2001:db8::10``; a route
domain stays as ``%N``) so that the same endpoint always gives the same key.
An item listed twice with the same content is kept once; listed twice with
different content it makes the export malformed, because either copy could be
the wrong one.  Certificate bundles (``ca-bundle.crt``) are skipped: they hold
many certificates and one expiry date says nothing useful about them.
"""

import datetime
import ipaddress
import logging

from . import MalformedExportError

log = logging.getLogger(__name__)

KINDS = ("virtual_server", "pool", "pool_member", "certificate")
VOLATILE_FIELDS = frozenset({"days_to_expiry"})
EXPIRY_WARNING_DAYS = 30


def transform(export, now=None):
    """Portal rows for an export from extract(), ordered by kind and key.

    now (an aware datetime, default the current time) is the moment
    days_to_expiry counts from; tests pass a fixed one.
    """
    if now is None:
        now = datetime.datetime.now(datetime.timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=datetime.timezone.utc)
    files = export["files"]
    rows = Rows()

    vs_file = files["virtual_servers"]
    for index, item in enumerate(export["virtual_servers"]):
        where = f"items[{index}]"
        rows.add(vs_file, where, "virtual_server",
                 virtual_server_fields(vs_file, where, item))

    pool_file = files["pools"]
    for index, item in enumerate(export["pools"]):
        where = f"items[{index}]"
        pool = pool_fields(pool_file, where, item)
        rows.add(pool_file, where, "pool", pool)
        members = item.get("membersReference", {}).get("items", [])
        for member_index, member in enumerate(members):
            member_where = f"{where}.membersReference.items[{member_index}]"
            rows.add(pool_file, member_where, "pool_member",
                     member_fields(pool_file, member_where, pool["full_path"],
                                   member))

    cert_file = files["certificates"]
    for index, item in enumerate(export["certificates"]):
        if item.get("isBundle") in (True, "true"):
            continue
        where = f"items[{index}]"
        rows.add(cert_file, where, "certificate",
                 certificate_fields(cert_file, where, item, now))

    warn_about(export["customer_id"], rows)
    return rows.ordered()


class Rows:
    """Rows by (kind, key), refusing conflicting duplicates."""

    def __init__(self):
        self.by_key = {}

    def add(self, path, where, kind, fields):
        key = natural_key(kind, fields)
        seen = self.by_key.get((kind, key))
        if seen is None:
            self.by_key[(kind, key)] = (where, fields)
        elif seen[1] == fields:
            log.info("%s: %s repeats %s (%s %s); kept once",
                     path, where, seen[0], kind, key)
        else:
            raise MalformedExportError(
                path, where,
                f"{kind} {key} is listed again with different content "
                f"(first at {seen[0]})")

    def ordered(self):
        return [{"kind": kind, "key": key, "fields": fields}
                for (kind, key), (_, fields) in sorted(
                    self.by_key.items(),
                    key=lambda entry: (KINDS.index(entry[0][0]), entry[0][1]))]


def natural_key(kind, fields):
    if kind == "pool_member":
        return f"{fields['pool']}|{fields['address']}|{fields['port']}"
    return fields["full_path"]


def full_path(path, where, item):
    """The item's /partition[/subPath]/name."""
    for field in ("name", "partition"):
        if not item[field].strip():
            raise MalformedExportError(path, f"{where}.{field}", "empty")
    if item.get("fullPath"):
        return item["fullPath"]
    parts = [item["partition"], item.get("subPath"), item["name"]]
    return "/" + "/".join(part for part in parts if part)


def virtual_server_fields(path, where, item):
    field = f"{where}.destination"
    address, port = split_endpoint(path, field, item["destination"])
    profiles = item.get("profilesReference", {}).get("items", [])
    return {
        "name": item["name"],
        "partition": item["partition"],
        "full_path": full_path(path, where, item),
        "address": normal_address(path, field, address),
        "port": port,
        "protocol": item.get("ipProtocol"),
        "pool": item.get("pool") or None,
        "enabled": not item.get("disabled", False) and item.get("enabled", True),
        "profiles": sorted({profile["name"] for profile in profiles}),
        "description": item.get("description"),
    }


def pool_fields(path, where, item):
    monitor = item.get("monitor", "").strip()
    return {
        "name": item["name"],
        "partition": item["partition"],
        "full_path": full_path(path, where, item),
        "load_balancing_mode": item.get("loadBalancingMode", "round-robin"),
        "monitor": monitor or None,
    }


def member_fields(path, where, pool, member):
    # The name gives the port ("10.1.0.5:8080", or "web01:8080" for a named
    # node); the address field gives the address either way.
    _, port = split_endpoint(path, f"{where}.name", member["name"])
    return {
        "pool": pool,
        "name": member["name"].rsplit("/", 1)[-1],
        "address": normal_address(path, f"{where}.address", member["address"]),
        "port": port,
        "state": member.get("state"),
        "session": member.get("session"),
    }


def certificate_fields(path, where, item, now):
    expires = expiry(path, where, item)
    return {
        "name": item["name"],
        "partition": item["partition"],
        "full_path": full_path(path, where, item),
        "common_name": common_name(item["subject"]),
        "subject": item["subject"],
        "issuer": item["issuer"],
        "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "fingerprint": item.get("fingerprint"),
        "key_type": item.get("keyType"),
        "key_size": item.get("certificateKeySize"),
        "days_to_expiry": (expires - now).days,
    }


def split_endpoint(path, field, text):
    """(address as written, port) of an F5 endpoint: "/Common/10.0.0.1:443",
    "10.1.0.5%2:8080", "/Common/2001:db8::10.443" (IPv6 takes a dot before the
    port), "web01:8080" (a named node)."""
    last = text.rsplit("/", 1)[-1]
    separator = "." if last.count(":") > 1 else ":"
    address, found, port_text = last.rpartition(separator)
    if not found or not address:
        raise MalformedExportError(
            path, field, f"expected [/partition/]address:port, got {text!r}")
    if port_text == "any":
        port = 0
    elif port_text.isascii() and port_text.isdigit() and int(port_text) <= 65535:
        port = int(port_text)
    else:
        raise MalformedExportError(
            path, field, f"bad port {port_text!r} in {text!r}")
    return address, port


def normal_address(path, field, text):
    """An IP address in canonical form, keeping a route domain suffix "%N"."""
    host, percent, route_domain = text.partition("%")
    try:
        if percent and not (route_domain.isascii() and route_domain.isdigit()):
            raise ValueError("bad route domain")
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise MalformedExportError(
            path, field, f"not an IP address: {text!r}") from None
    return address + percent + route_domain


def expiry(path, where, item):
    """When the certificate expires, as an aware UTC datetime.

    expirationDate (epoch seconds) wins; expirationString
    ("Jun  1 12:00:00 2026 GMT", what older exports carry) is the fallback.
    """
    utc = datetime.timezone.utc
    if "expirationDate" in item:
        try:
            return datetime.datetime.fromtimestamp(item["expirationDate"], utc)
        except (OverflowError, OSError, ValueError):
            raise MalformedExportError(
                path, f"{where}.expirationDate",
                f"not a valid time: {item['expirationDate']}") from None
    if "expirationString" in item:
        text = item["expirationString"]
        try:
            parsed = datetime.datetime.strptime(text, "%b %d %H:%M:%S %Y GMT")
        except ValueError:
            raise MalformedExportError(
                path, f"{where}.expirationString",
                f"expected like 'Jun  1 12:00:00 2026 GMT', got {text!r}") from None
        return parsed.replace(tzinfo=utc)
    raise MalformedExportError(
        path, f"{where}.expirationDate", "missing (and no expirationString)")


def common_name(subject):
    """The CN of an F5 subject "CN=www.example.com,O=Example\\, Inc.,C=US"."""
    attribute = []
    escaped = False
    for char in subject + ",":
        if escaped:
            attribute.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            name, equals, value = "".join(attribute).partition("=")
            if equals and name.strip().upper() == "CN":
                return value.strip()
            attribute = []
        else:
            attribute.append(char)
    return None


def warn_about(customer_id, rows):
    pools = {key for kind, key in rows.by_key if kind == "pool"}
    for (kind, key), (_, fields) in sorted(rows.by_key.items()):
        if kind == "virtual_server" and fields["pool"] and fields["pool"] not in pools:
            log.warning("customer %s: virtual server %s uses pool %s, "
                        "which is not in the export", customer_id, key,
                        fields["pool"])
        elif kind == "certificate":
            days = fields["days_to_expiry"]
            if days < 0:
                log.warning("customer %s: certificate %s expired %d day(s) ago "
                            "(%s)", customer_id, key, -days, fields["expires_at"])
            elif days < EXPIRY_WARNING_DAYS:
                log.warning("customer %s: certificate %s expires in %d day(s) "
                            "(%s)", customer_id, key, days, fields["expires_at"])
