"""Hypothesis strategies for the fuzz suite: JSON as it can really arrive, and templates with
any field, at any depth, replaced by it.

"JSON as it can arrive" is more than what Python's json module writes: numbers no float holds
(``1e400``, 400-digit integers), lone surrogates written as ``\\ud800`` escapes, bytes that are
not UTF-8 inside a string, nesting far deeper than any record. Such tokens are ``Raw`` values,
written out byte for byte by ``encode``; everything else is an ordinary Python value.

The examples are derandomized (the same ones on every run, so a failure in CI is a failure on
the developer's machine), and no example database is kept (``.hypothesis/`` holds only caches,
and ignores itself in git).
``FUZZ_RANDOM=1`` explores new examples; ``FUZZ_EXAMPLES=N`` changes how many.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    database=None,
    # Records are big examples by hypothesis's measure; that is what they are.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Raw:
    """A JSON token written exactly as given (it may be valid JSON no Python value encodes to)."""

    token: bytes

    def __repr__(self) -> str:
        return f"Raw({self.token[:60]!r}{'...' if len(self.token) > 60 else ''})"


def encode(value: Any) -> bytes:
    """JSON bytes of ``value``: any-size integers, ``Raw`` tokens as they are, strings as UTF-8
    (or with ``\\u`` escapes where they hold lone surrogates, which UTF-8 cannot carry)."""
    if isinstance(value, Raw):
        return value.token
    if value is None:
        return b"null"
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return repr(value).encode()  # the strategies give only finite floats
    if isinstance(value, str):
        try:
            return json.dumps(value, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return json.dumps(value).encode()
    if isinstance(value, list):
        return b"[" + b",".join(encode(item) for item in value) + b"]"
    if isinstance(value, dict):
        return b"{" + b",".join(encode(str(key)) + b":" + encode(item) for key, item in value.items()) + b"}"
    raise TypeError(f"no JSON for {type(value).__name__}")


def nested(depth: int, leaf: bytes = b"1") -> Raw:
    """Lists and objects ``depth`` deep, as text: no recursion needed to write it."""
    opening = b"".join(b"[" if n % 2 else b'{"a":' for n in range(depth))
    closing = b"".join(b"]" if n % 2 else b"}" for n in reversed(range(depth)))
    return Raw(opening + leaf + closing)


# Where parsers of times and numbers break: the ends of datetime's range (with offsets that push
# them over), CloudTrail's own formats and others' (epoch seconds, day-first dates), blanks.
ODD_STRINGS = [
    "", " ", "\n", "\t\r\n", "\x00", "null", "true", "0", "-1", "1e400", "NaN", "Infinity",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "0000-00-00T00:00:00Z",
    "2026-03-31T25:61:61Z", "2026-02-30T00:00:00Z", "31/03/2026", "1774915200", "Mar 31, 2026, 13:00:00 PM",
    "Feb 30, 2026, 1:00:00 AM", "2026-03-31T07:00:00.123456789Z", "2026-03-31 07:00:00.000000000",
    "arn:aws:iam::111111111111:role/", "arn:aws:iam::", "arn:", "::::::", "AROA", "ASIA", "AKIA",
    "arn:aws:sts::111111111111:assumed-role/Ops/session/extra/slashes",
    "\u202etxt.exe", "\ufeffBOM", "\u2028\u2029", "e\u0301", "\U0001f600" * 3, "\uffff",
]
ODD_NUMBERS: list[Any] = [
    2**63 - 1, 2**63, -(2**63) - 1, 2**64, 2**70, -(2**70), 10**400,
    Raw(b"1e400"), Raw(b"-1e400"), Raw(b"1e-400"), Raw(b"-0"), Raw(b"0e0"), Raw(b"1E+2"), Raw(b"1" + b"0" * 400 + b".5"),
    1e308, 5e-324, -0.0,
]
# Bytes no UTF-8 decoder accepts, inside a string: a raw 0xff, a cut sequence, an encoded surrogate.
BAD_UTF8 = [Raw(b'"\xff"'), Raw(b'"ab\xc3"'), Raw(b'"\xed\xa0\x80"'), Raw(b'"\xc0\xaf"'), Raw(b'"ok\x80ok"')]
LONE_SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
# Keys CloudTrail records and notifications use, so that added keys collide with real ones.
KEYS = [
    "eventID", "eventTime", "eventName", "eventSource", "eventType", "userIdentity", "type", "arn",
    "accountId", "accessKeyId", "principalId", "sessionContext", "sessionIssuer", "attributes",
    "creationDate", "requestParameters", "responseElements", "credentials", "expiration", "roleArn",
    "durationSeconds", "sourceIdentity", "sharedEventID", "recipientAccountId", "errorCode", "@timestamp",
    "assumerole", "Records", "s3", "bucket", "object", "key", "name", "Message", "detail", "detail-type",
]

scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(ODD_STRINGS),
    st.builds(lambda size: "x" * size, st.integers(min_value=1000, max_value=100_000)),
    st.sampled_from(ODD_NUMBERS),
    st.sampled_from(BAD_UTF8),
    LONE_SURROGATES,
)

json_values: st.SearchStrategy[Any] = st.one_of(
    st.recursive(
        scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=4),
        ),
        max_leaves=10,
    ),
    st.builds(nested, st.integers(min_value=50, max_value=3000)),
)


def _slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside ``value``, at any depth (the root itself excluded)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield (*path, key)
        yield from _slots(item, (*path, key))


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        document = document[key]
    return document


@st.composite
def mutated(draw: st.DrawFn, template: Any, values: st.SearchStrategy[Any] = json_values,
            max_changes: int = 3) -> Any:
    """``template`` with 1 to ``max_changes`` changes, each anywhere in it: a value replaced by
    ``values``, removed, or a key added beside it."""
    document = copy.deepcopy(template)
    for _ in range(draw(st.integers(min_value=1, max_value=max_changes))):
        slots = list(_slots(document))
        if not slots:
            break
        path = draw(st.sampled_from(slots))
        parent = _parent(document, path)
        action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add"]))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "remove":
            del parent[path[-1]]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(KEYS))] = draw(values)
        else:
            parent.insert(path[-1], draw(values))
    return document
