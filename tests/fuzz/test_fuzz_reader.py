"""The reader on anything an S3 object can hold: a LogObject or an ObjectError, nothing else.

An ObjectError is what the source dead-letters by name; any other exception escapes it and
leaves the object's message to come back forever (a poison message)."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import given
from hypothesis import strategies as st
from json_strategies import FUZZ, encode, json_values, nested

from forwarder.reader import LogObject, ObjectError, read_object

NAMES = st.one_of(
    st.just("s3://trail/AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/x.json.gz"),
    st.just("s3://trail/AWSLogs/111111111111/CloudTrail-Digest/us-east-1/2026/03/31/x.json.gz"),
    st.text(max_size=30),
)
# From tiny (every object is too large) to the daemon's default.
LIMITS = st.sampled_from([16, 1024, 1 << 20, 1 << 30])


def _read(name: str, data: bytes, limit: int) -> LogObject | None:
    """``read_object``, with ObjectError as the one allowed way to refuse."""
    try:
        result = read_object(name, data, limit)
    except ObjectError as exc:
        assert exc.reason, "an ObjectError says why"
        return None
    assert isinstance(result, LogObject)
    return result


@st.composite
def gzipped(draw: st.DrawFn, body: st.SearchStrategy[bytes]) -> bytes:
    """``body`` as a delivery can arrive: gzip, zlib, several gzip members, or cut short."""
    data = draw(body)
    form = draw(st.sampled_from(["gzip", "zlib", "members", "truncated", "garbage tail"]))
    if form == "zlib":
        return b"\x1f\x8b" + zlib.compress(data)  # a gzip magic in front of something else
    if form == "members":
        half = len(data) // 2
        return gzip.compress(data[:half]) + gzip.compress(data[half:])
    packed = gzip.compress(data)
    if form == "truncated":
        return packed[: draw(st.integers(min_value=0, max_value=len(packed) - 1))]
    if form == "garbage tail":
        return packed + draw(st.binary(min_size=1, max_size=20))
    return packed


records_envelopes = st.builds(lambda records: encode({"Records": records}), st.lists(json_values, max_size=5))
any_json = st.builds(encode, json_values)
deep = st.builds(lambda depth: nested(depth).token, st.integers(min_value=100, max_value=5000))
deep_record = st.builds(lambda depth: b'{"Records":[' + nested(depth).token + b"]}",
                        st.integers(min_value=100, max_value=5000))


@FUZZ
@given(NAMES, st.binary(max_size=2000), LIMITS)
def test_arbitrary_bytes(name: str, data: bytes, limit: int) -> None:
    _read(name, data, limit)


@FUZZ
@given(NAMES, st.one_of(any_json, records_envelopes, deep, deep_record), LIMITS)
def test_arbitrary_json(name: str, data: bytes, limit: int) -> None:
    _read(name, data, limit)


@FUZZ
@given(NAMES, gzipped(st.one_of(any_json, records_envelopes, deep_record, st.binary(max_size=500))), LIMITS)
def test_gzip_of_arbitrary_json(name: str, data: bytes, limit: int) -> None:
    _read(name, data, limit)


@FUZZ
@given(st.lists(st.dictionaries(st.text(max_size=5), json_values, max_size=3), max_size=8))
def test_a_readable_object_yields_each_of_its_records(records: list[dict[str, object]]) -> None:
    """Whatever the records hold, an object that is read at all is read whole: as many records
    out as went in, none dropped silently."""
    read = _read("s3://trail/AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/x.json.gz",
                 gzip.compress(encode({"Records": records})), 1 << 30)
    if read is not None:
        assert len(read.records) == len(records)
