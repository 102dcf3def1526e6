"""CloudTrail log objects as AWS writes them: gzip (or plain) JSON, ``{"Records": [...]}``.

The object is decoded once into the raw bytes of each record (msgspec), so the records that
are not selected are never turned into Python dicts, and the selected ones keep their bytes
exactly as AWS wrote them for output.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

import msgspec
from isal import isal_zlib

from forwarder.config import MAX_OBJECT_BYTES

GZIP_MAGIC = b"\x1f\x8b"
# Digest files prove integrity; Insights files describe anomalies, not API calls.
SKIPPED_NAME = re.compile(r"CloudTrail-Digest|CloudTrail-Insight")


class ObjectError(Exception):
    """An object that cannot be read at all: the message says which and why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class _Envelope(msgspec.Struct, gc=False):
    Records: list[msgspec.Raw]


class _Keys(msgspec.Struct, gc=False):
    # Only to tell a digest file (which has no Records) from a broken object.
    digestPublicKeyFingerprint: str | None = None
    digestStartTime: str | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_keys = msgspec.json.Decoder(_Keys).decode


@dataclass(slots=True)
class LogObject:
    name: str
    records: list[msgspec.Raw] | list[bytes]  # bytes where one broken record made the split bracket by bracket
    skipped: str | None = None  # why the whole object was skipped (digest, Insights)


def is_skipped_name(name: str) -> bool:
    return SKIPPED_NAME.search(name) is not None


def decompress(name: str, data: bytes, limit: int) -> bytes:
    if not data.startswith(GZIP_MAGIC):
        return data
    # wbits 47: gzip or zlib header, detected; max_length bounds what a gzip bomb can cost.
    inflater = isal_zlib.decompressobj(wbits=47)
    chunks: list[bytes] = []
    total = 0
    try:
        while data:
            chunk = inflater.decompress(data, limit + 1 - total)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise ObjectError(name, f"larger than {limit} bytes uncompressed (raise max_object_bytes to read it)")
            if inflater.eof:
                data = inflater.unused_data
                if data.startswith(GZIP_MAGIC):  # concatenated gzip members
                    inflater = isal_zlib.decompressobj(wbits=47)
                    continue
                break
            data = inflater.unconsumed_tail
            if not data:
                break
    except (zlib.error, isal_zlib.error) as exc:
        raise ObjectError(name, f"corrupt gzip data ({exc})") from None
    if not inflater.eof:
        raise ObjectError(name, "truncated gzip data (the stream ends before its end marker)")
    return b"".join(chunks)


# A JSON string (escapes included) or one structural character: enough to find where each
# element of the top-level array begins and ends without judging what is inside.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def split_records(text: bytes) -> list[bytes] | None:
    """Each element of the top-level ``"Records"`` array, found by strings and brackets alone
    (whether each is valid is its own decode's business); None if there is no such array."""
    depth, key, begin, records = 0, b"", None, []
    for token in _TOKENS.finditer(text):
        t = token.group()
        if begin is not None and depth == 2 and t in (b",", b"]"):
            element = text[begin:token.start()].strip()
            if element or t == b",":
                records.append(element)
            if t == b"]":
                return records
            begin = token.end()
            continue
        if t in (b"{", b"["):
            depth += 1
            if depth == 2 and key == b'"Records"' and t == b"[" and begin is None:
                begin = token.end()
        elif t in (b"}", b"]"):
            depth -= 1
        elif depth == 1 and t[:1] == b'"':
            key = t
    return None


def read_object(name: str, data: bytes, limit: int = MAX_OBJECT_BYTES) -> LogObject:
    """Split one CloudTrail object into its records' raw bytes; raise ObjectError if unreadable."""
    if is_skipped_name(name):
        return LogObject(name, [], skipped="digest or Insights file")
    if len(data) > limit:
        raise ObjectError(name, f"larger than {limit} bytes (raise max_object_bytes to read it)")
    text = decompress(name, data, limit)
    try:
        return LogObject(name, _decode_envelope(text).Records)
    except msgspec.ValidationError as exc:
        try:
            keys = _decode_keys(text)
        except msgspec.MsgspecError:
            keys = None
        if keys is not None and (keys.digestPublicKeyFingerprint or keys.digestStartTime):
            return LogObject(name, [], skipped="digest file")
        if "Records" in str(exc) and "missing required field" in str(exc):
            raise ObjectError(name, 'no "Records" list: not a CloudTrail log file') from None
        raise ObjectError(name, f'"Records" is not a list of records ({exc})') from None
    except (msgspec.DecodeError, RecursionError) as exc:
        # One broken record (a lone surrogate, nesting a thousand deep) must not take the others
        # with it: split by brackets and let each record's decode judge it alone.
        records = split_records(text)
        if records is not None:
            return LogObject(name, records)
        if not text.strip():
            raise ObjectError(name, "empty object") from None
        raise ObjectError(name, f"not JSON ({exc})") from None
