# SPDX-License-Identifier: ISC
"""Return values: what a task returns must reach the caller exactly."""
import math

RESULTS = {
    "nested": {"a": [1, {"b": [None, True, False]}], "c": {}, "d": [[], [[]]], "e": ""},
    "unicode": {"fr": "é", "ja": "日本", "emoji": "🎉👍🏽", "key é日本🎉": "value"},
    "escapes": ["quote \" backslash \\ slash /", "nl\ncr\rtab\tbs\bff\f", "\x01\x1f\x7f", "\u2028\u2029"],
    "floats": [0.1, 1e300, -1e-300, 5e-324, 1.5, -2.25, 1e16, 123456789.123456789, math.pi, 2.0],
    "negative_zero": -0.0,
    "int64_edges": [2**63 - 1, -(2**63), 0, -1],
    "bools_none": [True, False, None],
    "keys": {2: "int", 1.5: "float", True: "true", False: "false", None: "none", "s": "str"},
    "tuples": (1, (2, (3, "x")), ()),
    "scalar_int": 42,
    "scalar_str": "just a string",
    "scalar_true": True,
    "scalar_none": None,
    "scalar_float": 0.1,
    "empty_list": [],
    "empty_dict": {},
    # Beyond 64 bits: Python's json writes them as plain integers.
    "big_int": 2**70,
    "big_ints": {"pos": 2**64, "neg": -(2**70), "huge": 10**40},
    # A NUL is a valid character of a str and of a JSON string ("\u0000").
    "nul_char": ["a\x00b", {"k": "\x00"}],
    "backslash_u0000": ["\\u0000", "x\\\\u0000"],
}


def value(name):
    return RESULTS[name]


def same_object_twice():
    # Shared (not circular) references are fine for json.dumps.
    shared = [1, 2]
    return {"x": shared, "y": shared}


# ---- not JSON-serialisable ------------------------------------------------

class Opaque:
    pass


def a_set():
    return {1, 2, 3}


def an_object():
    return {"ok": [1, Opaque()]}


def some_bytes():
    return b"raw"


def a_nan():
    return {"v": [1.0, float("nan")]}


def an_inf():
    return float("inf")


def a_negative_inf():
    return [float("-inf")]


def a_circular_list():
    loop = [1]
    loop.append(loop)
    return loop


def a_circular_dict():
    loop = {}
    loop["self"] = {"again": loop}
    return loop


def a_tuple_key():
    return {(1, 2): "pair"}


# ---- size ---------------------------------------------------------------

def sized(total, fill="x", floats=0):
    """A dict whose compact UTF-8 JSON (as json.dumps writes it) is exactly
    `total` bytes: padding made of `fill` after `floats` copies of 0.1."""
    import json

    doc = {"floats": [0.1] * floats, "pad": ""}
    used = len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    room = total - used
    unit = len(fill.encode("utf-8"))
    doc["pad"] = fill * (room // unit) + "x" * (room % unit)
    assert len(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) == total
    return doc


def deeply_nested(depth):
    """Lists nested deeper than json.dumps can encode (RecursionError)."""
    doc = []
    for _ in range(depth):
        doc = [doc]
    return doc
