"""The enriched event as it travels from the enrichment to the sinks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(slots=True)
class Document:
    """One CloudTrail record plus its ``assumerole`` object (SCHEMA.md).

    ``record`` is the record exactly as AWS wrote it and is never mutated; ``raw`` holds its
    original bytes where the reader had them, so that serialising the document does not
    re-encode the (large, variable) record at all.
    """

    record: dict[str, Any]
    assumerole: dict[str, Any] | None
    source: str
    raw: bytes | None = None

    @property
    def event_id(self) -> str | None:
        value = self.record.get("eventID")
        return value if isinstance(value, str) else None

    @property
    def event_time(self) -> str | None:
        value = self.record.get("eventTime") or self.record.get("@timestamp")
        return value if isinstance(value, str) else None

    def as_dict(self) -> dict[str, Any]:
        """The document as one mapping: the record's keys, then ``assumerole``."""
        if self.assumerole is None:
            return self.record
        merged = dict(self.record)
        merged["assumerole"] = self.assumerole
        return merged

    def to_json(self) -> bytes:
        """The document serialised once: the original record bytes with ``assumerole`` spliced in."""
        if self.assumerole is None:
            return self.raw if self.raw is not None and b"\n" not in self.raw else orjson.dumps(self.record)
        if self.raw is not None and self._spliceable():
            # The raw bytes end with the record's closing brace (the reader guarantees no
            # trailing whitespace), so appending one key keeps every original byte.
            return b"".join((self.raw[:-1], b',"assumerole":', orjson.dumps(self.assumerole), b"}"))
        return orjson.dumps(self.as_dict())

    def _spliceable(self) -> bool:
        # Pretty-printed input (tools' exports, documentation samples) would break one
        # document per line; an existing "assumerole" key would be duplicated.
        assert self.raw is not None
        return bool(self.record) and b"\n" not in self.raw and "assumerole" not in self.record
