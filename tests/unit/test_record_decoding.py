"""A record's bytes decoded once, or refused alone with the reason: what no encoder downstream
could write back (or write at all) never reaches a sink as a document."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from cloudtrail import assume, user

from forwarder.document import Document
from forwarder.reader import read_object
from forwarder.record import MAX_DEPTH, Undecodable, check, decode
from paths import DATA, REPO

NOON = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)
GOOD = orjson.dumps(assume(user("111111111111", "alice"), "arn:aws:iam::111111111111:role/Deploy", NOON))


def with_duration(token: bytes) -> bytes:
    """A real-shaped record whose requestParameters.durationSeconds is written as ``token``."""
    assert GOOD.count(b'"durationSeconds":3600') == 1
    return GOOD.replace(b'"durationSeconds":3600', b'"durationSeconds":' + token)


def nested(depth: int) -> bytes:
    """A record ``depth`` levels deep counting itself, objects and arrays in turn, as text."""
    inner = depth - 1
    opening = b"".join(b"[" if n % 2 else b'{"a":' for n in range(inner))
    closing = b"".join(b"]" if n % 2 else b"}" for n in reversed(range(inner)))
    return b'{"eventID":"deep","a":' + opening + b"1" + closing + b"}"


def refused(raw: bytes) -> str:
    with pytest.raises(Undecodable) as decoded:
        decode(raw)
    with pytest.raises(Undecodable) as checked:
        check(raw)
    assert checked.value.reason == decoded.value.reason == str(decoded.value)
    return decoded.value.reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"eventID":"\xff"}', "invalid UTF-8 at byte 12"),
        (GOOD.replace(b"alice", b"al\xffce", 1), f"invalid UTF-8 at byte {GOOD.index(b'alice') + 2}"),
        (GOOD.replace(b"alice", b"al\xed\xa0\x80ce", 1), "invalid UTF-8 at byte "),  # a surrogate, UTF-8 encoded
        (GOOD.replace(b"alice", b"al\\ud800ce", 1), "a lone UTF-16 surrogate escape"),
        (GOOD.replace(b"alice", b"al\\udc00ce", 1), "a lone UTF-16 surrogate escape"),
        (b'{"eventID":"x","a":"\\ud800"}', "a lone UTF-16 surrogate escape"),
        (with_duration(b"1e400"), "a number no double holds"),
        (with_duration(b"-1e400"), "a number no double holds"),
        (with_duration(b"9" * 5000), "a number no double holds"),
        (with_duration(str(2**70).encode()), f"integer {2**70} at requestParameters.durationSeconds is outside the 64-bit range"),
        (with_duration(str(2**64).encode()), "outside the 64-bit range"),
        (with_duration(str(-(2**63) - 1).encode()), "outside the 64-bit range"),
        (b'{"a":[{"b":[1,' + str(2**70).encode() + b"]}]}", "at a[0].b[1] is outside the 64-bit range"),
        (nested(MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels (at a.a[0].a[0]"),
        (nested(1_000), f"nested deeper than {MAX_DEPTH} levels"),
        (nested(100_000), f"nested deeper than {MAX_DEPTH} levels"),
        (b"[1]", "a record is a JSON object, not an array"),
        (b'"eventID"', "a record is a JSON object, not a string"),
        (b"null", "a record is a JSON object, not null"),
        (b"42", "a record is a JSON object, not a number"),
        (b'{"a":NaN}', "not JSON"),
        (b'{"a":1', "not JSON"),
    ],
    ids=[
        "invalid-utf8", "invalid-utf8-in-a-record", "utf8-encoded-surrogate", "lone-high-surrogate", "lone-low-surrogate", "lone-surrogate-at-end",
        "1e400", "-1e400", "5000-digits", "2**70", "2**64", "-2**63-1", "path-in-arrays", "one-level-too-deep",
        "1000-deep", "100000-deep", "array", "string", "null", "number", "NaN", "truncated",
    ],
)
def test_an_undecodable_record_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    assert reason in refused(raw)


def test_the_edges_of_what_is_accepted() -> None:
    for token in (str(2**64 - 1), str(-(2**63)), "1.7976931348623157e308", "1e-400", "-0.0"):
        assert decode(with_duration(token.encode()))["requestParameters"]["durationSeconds"] == orjson.loads(token)
    assert decode(GOOD.replace(b"alice", b"al\\ud83d\\ude00ce", 1))["userIdentity"]["arn"].endswith("/al\U0001f600ce")
    deepest = nested(MAX_DEPTH)
    check(deepest)
    document = Document(None, None, "t", deepest)
    assert orjson.loads(document.to_json()) == orjson.loads(deepest) == document.as_dict()


def sample_records() -> list[bytes]:
    """Every record of the project's demo and of the public samples, as the reader splits them."""
    paths = sorted((REPO / "forwarder" / "samples").rglob("*.json.gz"))
    if DATA.exists():
        paths += sorted(DATA.rglob("*.json"))
    records: list[bytes] = []
    for path in paths:
        data = path.read_bytes()
        records += [bytes(raw) for raw in read_object(str(path), data).records]
    assert records
    return records


def test_good_records_decode_exactly_as_orjson_reads_them() -> None:
    for raw in sample_records():
        decoded = decode(raw)
        assert decoded == orjson.loads(raw) and repr(decoded) == repr(orjson.loads(raw))  # types too: 1 is not 1.0
        check(raw)


def test_documents_of_good_records_serialise_as_one_line_each() -> None:
    for raw in sample_records():
        record = decode(raw)
        for document in (Document(None, None, "t", raw), Document(record, {"n": 1}, "t", raw)):
            line = document.to_json()
            assert b"\n" not in line and b"\r" not in line
            assert orjson.loads(line) == document.as_dict()
        assert Document(None, None, "t", raw).to_json() == (raw if b"\n" not in raw else orjson.dumps(record))


def test_a_carriage_return_is_a_line_break_too() -> None:
    raw = orjson.dumps({"eventID": "crlf", "a": 1}, option=orjson.OPT_INDENT_2).replace(b"\n", b"\r\n")
    check(raw)
    for document in (Document(None, None, "t", raw), Document(decode(raw), {"n": 1}, "t", raw)):
        assert b"\r" not in document.to_json() and orjson.loads(document.to_json())["eventID"] == "crlf"


def test_what_a_document_cannot_write_is_undecodable_for_that_document_only() -> None:
    unchecked = Document(None, None, "s3://bucket/key", with_duration(b"1e400"))
    assert "key" in repr(unchecked)  # a log line about it does not decode it
    for use in (lambda: unchecked.record, unchecked.as_dict, lambda: unchecked.event_id):
        with pytest.raises(Undecodable, match="no double holds"):
            use()
    indented = orjson.dumps(orjson.loads(GOOD), option=orjson.OPT_INDENT_2)
    pretty = Document(None, None, "t", indented.replace(b'"durationSeconds": 3600', b'"durationSeconds": 1e400'))
    with pytest.raises(Undecodable, match="no double holds"):
        pretty.to_json()  # one line needs a parse
    broken = Document(decode(GOOD), {"session": {"duration_seconds": 2**70}}, "t", GOOD)
    with pytest.raises(Undecodable, match="64-bit"):
        broken.to_json()
    fine = Document(decode(GOOD), {"session": {"duration_seconds": 3600}}, "t", GOOD)
    assert orjson.loads(fine.to_json())["assumerole"] == {"session": {"duration_seconds": 3600}}


def test_one_bad_record_leaves_the_others_of_its_object_readable(tmp_path: Path) -> None:
    # The reader splits without decoding numbers: decode sees each record's bytes as the object had them.
    body = b'{"Records":[' + GOOD + b"," + with_duration(b"1e400") + b"]}"
    path = tmp_path / "mixed.json.gz"
    path.write_bytes(gzip.compress(body))
    first, second = read_object(str(path), path.read_bytes()).records
    assert decode(bytes(first)) == orjson.loads(GOOD)
    assert "no double holds" in refused(bytes(second))
