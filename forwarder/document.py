"""The enriched event as it travels from the enrichment to the sinks."""

from __future__ import annotations

from typing import Any

import orjson

from forwarder.record import Undecodable, decode, one_line


class Document:
    """One CloudTrail record plus its ``assumerole`` object (SCHEMA.md).

    ``record`` is the record exactly as AWS wrote it and is never mutated; ``raw`` holds its
    original bytes where the reader had them, so that serialising the document does not
    re-encode the (large, variable) record at all. A record that ships without enrichment
    (``select: all``) may be given as bytes only: it is decoded if a sink asks for it.

    Nothing here raises for a record that passed ``record.decode`` or ``record.check`` (bytes
    are trusted as the caller checked them: a one-line record without ``assumerole`` goes out
    as it came). Where a document still cannot be turned into JSON (bytes never checked that a
    sink wants as a dict, an ``assumerole`` holding what JSON cannot), ``record``, ``as_dict``
    and ``to_json`` raise Undecodable, for this document alone, and nothing else.
    """

    __slots__ = ("_record", "assumerole", "source", "raw")

    def __init__(
        self, record: dict[str, Any] | None, assumerole: dict[str, Any] | None, source: str, raw: bytes | None = None
    ) -> None:
        if record is None and raw is None:
            raise ValueError("a document needs its record or the record's bytes")
        self._record = record
        self.assumerole = assumerole
        self.source = source
        self.raw = raw

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            assert self.raw is not None
            self._record = decode(self.raw)
        return self._record

    def __repr__(self) -> str:
        # Not self.event_id: a repr (in a log line about this very document) must not decode.
        event_id = self._record.get("eventID") if self._record is not None else None
        return f"Document(source={self.source!r}, event_id={event_id!r})"

    @property
    def event_id(self) -> str | None:
        value = self.record.get("eventID")
        return value if isinstance(value, str) else None

    @property
    def event_time(self) -> str | None:
        record = self.record
        value = record.get("eventTime") or record.get("@timestamp")
        return value if isinstance(value, str) else None

    def as_dict(self) -> dict[str, Any]:
        """The document as one mapping: ``assumerole``, then the record's keys."""
        if self.assumerole is None:
            return self.record
        return {"assumerole": self.assumerole, **self.record}

    def to_json(self) -> bytes:
        """The document serialised once, on one line: the original record bytes with
        ``assumerole`` spliced in. Raises Undecodable if this document cannot be written."""
        try:
            return self._serialised()
        except orjson.JSONEncodeError as exc:
            raise Undecodable(f"the document cannot be written as JSON: {exc}") from None

    def _serialised(self) -> bytes:
        if self.assumerole is None:
            return self.raw if self.raw is not None and one_line(self.raw) else orjson.dumps(self.record)
        raw = self.raw
        if raw is not None and _spliceable(raw, self.record):
            # First, every original byte kept after it: a reader that looks only at the first
            # few kilobytes of an event (Splunk's automatic JSON extraction stops at 5,000
            # bytes, and CloudTrail records reach hundreds of KB) still finds the enrichment.
            return b"".join((b'{"assumerole":', orjson.dumps(self.assumerole), b",", raw[1:]))
        return orjson.dumps(self.as_dict())


def _spliceable(raw: bytes, record: dict[str, Any]) -> bool:
    # Pretty-printed input (tools' exports, documentation samples) would break one document
    # per line; an existing "assumerole" key would be duplicated.
    return raw[:1] == b"{" and one_line(raw) and bool(record) and "assumerole" not in record
