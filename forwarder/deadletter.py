"""The dead-letter place: what could not be read or delivered, with the reason, for replay."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from forwarder.document import Document

OBJECTS = "objects.ndjson"
DOCUMENTS = "documents.ndjson"


class DeadLetter:
    """Appends one JSON line per item: ``objects.ndjson`` names unreadable objects (the
    object itself stays where it is: S3 keeps it, replay reads it again), ``documents.ndjson``
    holds rejected records whole."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        entry["dead_lettered_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            self.directory.mkdir(parents=True, exist_ok=True)
            with open(self.directory / file, "ab") as out:
                out.write(line)

    def object(self, source: str, reason: str) -> None:
        self._append(OBJECTS, {"source": source, "reason": reason})

    def record(self, source: str, reason: str, raw: bytes) -> None:
        """A record that could not be enriched (not an object): kept as the bytes it was."""
        self._append(DOCUMENTS, {"source": source, "reason": reason, "sink": None, "raw": raw.decode("utf-8", "replace")})

    def document(self, document: Document, sink: str, reason: str) -> None:
        self._append(
            DOCUMENTS,
            {"source": document.source, "reason": reason, "sink": sink, "record": document.record},
        )


class StderrDeadLetter(DeadLetter):
    """For batch commands: each item is reported on standard error, nothing is written."""

    def __init__(self) -> None:
        super().__init__(Path("."))
        self.count = 0

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        self.count += 1
        sink = f" ({entry['sink']})" if entry.get("sink") else ""
        print(f"forwarder: {entry['source']}{sink}: {entry['reason']}", file=sys.stderr)
