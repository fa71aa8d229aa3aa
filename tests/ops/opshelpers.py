# SPDX-License-Identifier: ISC
"""Plain helpers for tests/ops: polling, HTTP, and a strict Prometheus text parser."""
import http.client
import math
import re
import time

from testlib import spare_port, wait_for  # noqa: F401 (re-exported)


class Response:
    def __init__(self, status, headers, body, seconds):
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds

    def __repr__(self):
        return "<HTTP %s after %.2fs: %r>" % (self.status, self.seconds, self.body[:300])


def http_request(address, method, path, timeout=5.0):
    """One request to host:port; returns Response (any status, never raises on 4xx/5xx)."""
    host, _, port = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") else host     # [::1]:9464
    t0 = time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read().decode("utf-8", "replace")
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, body, time.monotonic() - t0)
    finally:
        conn.close()


# --------------------------------------------------------------------------
# Prometheus text exposition format 0.0.4, strictly.

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
_NAME_RE = re.compile(_NAME + r"\Z")
_HELP_RE = re.compile(r"# HELP (%s) (.*)\Z" % _NAME)
_TYPE_RE = re.compile(r"# TYPE (%s) (counter|gauge|histogram|summary|untyped)\Z" % _NAME)
_SAMPLE_RE = re.compile(r"(%s)(\{[^\n]*\})? (\S+)(?: (-?\d+))?\Z" % _NAME)
_LABEL_RE = re.compile(r'(%s)="((?:[^"\\\n]|\\[\\"n])*)"' % _LABEL)
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Inf|inf)\Z|NaN\Z")


class MetricsError(AssertionError):
    pass


def _parse_labels(text, lineno):
    """'{a="x",b="y"}' -> {'a': 'x', 'b': 'y'}, strictly."""
    inner = text[1:-1]
    labels = {}
    pos = 0
    while pos < len(inner):
        m = _LABEL_RE.match(inner, pos)
        if not m:
            raise MetricsError("line %d: bad label syntax at %r" % (lineno, inner[pos:]))
        name, value = m.group(1), m.group(2)
        if name in labels:
            raise MetricsError("line %d: label %s repeated" % (lineno, name))
        labels[name] = value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        pos = m.end()
        if pos < len(inner):
            if inner[pos] != ",":
                raise MetricsError("line %d: expected ',' between labels, got %r" % (lineno, inner[pos:]))
            pos += 1
    return labels


def _parse_value(text, lineno):
    if not _FLOAT_RE.match(text):
        raise MetricsError("line %d: %r is not a sample value" % (lineno, text))
    return float(text.replace("Inf", "inf"))


def _family_of(name, families):
    """The declared family a sample name belongs to, or None."""
    if name in families and families[name]["type"] not in ("histogram", "summary"):
        return name
    for suffix, kinds in (("_bucket", ("histogram",)), ("_sum", ("histogram", "summary")),
                          ("_count", ("histogram", "summary"))):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base in families and families[base]["type"] in kinds:
                return base
    if name in families and families[name]["type"] == "summary":
        return name
    return None


def parse_prometheus(text):
    """Parse text strictly; returns {family: {"type", "help", "samples": [(name, labels, value)]}}.

    Raises MetricsError for: a missing final newline, blank or unknown comment
    lines, a HELP or TYPE given twice, a TYPE after the family's samples, a
    sample whose family has no TYPE, a family's samples split by another
    family's, a series given twice, bad names, labels or values, a negative
    counter, and histograms whose buckets are not increasing in le and
    non-decreasing in count, lack +Inf, or whose +Inf bucket is not _count.
    """
    if not text.endswith("\n"):
        raise MetricsError("the exposition does not end with a newline")
    families = {}
    seen_series = set()
    closed = set()          # families whose samples are over (another family's came after)
    current = None
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            raise MetricsError("line %d: blank line" % lineno)
        if line.startswith("#"):
            m = _HELP_RE.match(line)
            if m:
                fam = families.setdefault(m.group(1), {"type": None, "help": None, "samples": []})
                if fam["help"] is not None:
                    raise MetricsError("line %d: second HELP for %s" % (lineno, m.group(1)))
                if fam["samples"]:
                    raise MetricsError("line %d: HELP for %s after its samples" % (lineno, m.group(1)))
                fam["help"] = m.group(2)
                continue
            m = _TYPE_RE.match(line)
            if m:
                fam = families.setdefault(m.group(1), {"type": None, "help": None, "samples": []})
                if fam["type"] is not None:
                    raise MetricsError("line %d: second TYPE for %s" % (lineno, m.group(1)))
                if fam["samples"]:
                    raise MetricsError("line %d: TYPE for %s after its samples" % (lineno, m.group(1)))
                fam["type"] = m.group(2)
                continue
            raise MetricsError("line %d: comment that is neither HELP nor TYPE: %r" % (lineno, line))
        m = _SAMPLE_RE.match(line)
        if not m:
            raise MetricsError("line %d: not a sample: %r" % (lineno, line))
        name, label_text, value_text = m.group(1), m.group(2), m.group(3)
        labels = _parse_labels(label_text, lineno) if label_text else {}
        value = _parse_value(value_text, lineno)
        family = _family_of(name, families)
        if family is None or families[family]["type"] is None:
            raise MetricsError("line %d: sample %s belongs to no family declared with TYPE" % (lineno, name))
        if family != current:
            if family in closed:
                raise MetricsError("line %d: samples of %s are not contiguous" % (lineno, family))
            if current is not None:
                closed.add(current)
            current = family
        key = (name, tuple(sorted(labels.items())))
        if key in seen_series:
            raise MetricsError("line %d: series %s%s given twice" % (lineno, name, labels))
        seen_series.add(key)
        ftype = families[family]["type"]
        if ftype == "counter" and not (value >= 0):
            raise MetricsError("line %d: counter %s is %r" % (lineno, name, value))
        if ftype == "histogram" and name.endswith("_bucket") and "le" not in labels:
            raise MetricsError("line %d: histogram bucket without le" % lineno)
        families[family]["samples"].append((name, labels, value))
    for fname, fam in families.items():
        if fam["type"] is None:
            raise MetricsError("family %s has HELP but no TYPE" % fname)
        if fam["type"] == "histogram":
            _check_histogram(fname, fam["samples"])
    return families


def _check_histogram(fname, samples):
    groups = {}
    for name, labels, value in samples:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "sum": None, "count": None})
        if name == fname + "_bucket":
            g["buckets"].append((_parse_value(labels["le"], 0), value))
        elif name == fname + "_sum":
            g["sum"] = value
        elif name == fname + "_count":
            g["count"] = value
    if not groups:
        raise MetricsError("histogram %s has no samples" % fname)
    for rest, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        counts = [c for _, c in g["buckets"]]
        if not les or not math.isinf(les[-1]):
            raise MetricsError("histogram %s%s: no +Inf bucket last" % (fname, dict(rest)))
        if any(b <= a for a, b in zip(les, les[1:])):
            raise MetricsError("histogram %s%s: le not increasing: %s" % (fname, dict(rest), les))
        if any(b < a for a, b in zip(counts, counts[1:])):
            raise MetricsError("histogram %s%s: bucket counts decrease: %s" % (fname, dict(rest), counts))
        if g["count"] is None or g["sum"] is None:
            raise MetricsError("histogram %s%s: _sum or _count missing" % (fname, dict(rest)))
        if counts[-1] != g["count"]:
            raise MetricsError("histogram %s%s: +Inf bucket %s != _count %s"
                               % (fname, dict(rest), counts[-1], g["count"]))


def sample(families, name, **labels):
    """The value of series name{labels} (0.0 when the series is absent but its family is declared)."""
    family = _family_of(name, families)
    if family is None:
        raise KeyError("no family for %s" % name)
    for n, l, v in families[family]["samples"]:
        if n == name and l == labels:
            return v
    return 0.0
