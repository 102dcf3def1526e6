"""The dead-letter place: what could not be read or delivered, with the reason, for replay."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from forwarder.document import Document
from forwarder.record import Undecodable

OBJECTS = "objects.ndjson"
DOCUMENTS = "documents.ndjson"

# The entries hold whole CloudTrail records (access key ids, source addresses, ARNs): only the
# forwarder's user may read them. The umask can only take bits away from these modes.
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_directory(directory: Path) -> None:
    """Create ``directory`` and any missing parents owner-only. A directory that exists keeps
    its mode: the operator chose it."""
    missing: list[Path] = []
    while not directory.is_dir():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        try:
            path.mkdir(DIRECTORY_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else (a replay beside the daemon): theirs
        # An umask such as 0277 would leave a directory its own user cannot write in.
        os.chmod(path, DIRECTORY_MODE)


def append(path: Path, data: bytes) -> None:
    """Append whole lines to a dead-letter file, creating it (and its directory) owner-only.

    Several processes append to the same file (the daemon, ``forwarder dlq replay``), so a
    partial line left by a full disk is not cut off (that could cut another process's line
    written meanwhile): the next entry starts on a fresh line instead, and replay keeps the
    fragment as an unreadable entry rather than losing the entry glued to it."""
    make_directory(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


class DeadLetter:
    """Appends one JSON line per item: ``objects.ndjson`` names unreadable objects (the
    object itself stays where it is: S3 keeps it, replay reads it again), ``documents.ndjson``
    holds rejected records whole. An entry holds its source, the reason, the sink, the record
    (or its raw bytes) and the time: nothing from the configuration, so no secret."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        entry["dead_lettered_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = orjson.dumps(entry) + b"\n"
        with self._lock:
            append(self.directory / file, line)

    def object(self, source: str, reason: str) -> None:
        self._append(OBJECTS, {"source": source, "reason": reason})

    def record(self, source: str, reason: str, raw: bytes) -> None:
        """A record that could not be enriched (not an object): kept as the bytes it was."""
        self._append(DOCUMENTS, {"source": source, "reason": reason, "sink": None, "raw": raw.decode("utf-8", "replace")})

    def document(self, document: Document, sink: str, reason: str) -> None:
        entry = {"source": document.source, "reason": reason, "sink": sink}
        try:
            self._append(DOCUMENTS, {**entry, "record": document.record})
        except (Undecodable, orjson.JSONEncodeError):  # a record that cannot be written as JSON: its bytes, then
            raw = document.raw if document.raw is not None else b""
            self._append(DOCUMENTS, {**entry, "raw": raw.decode("utf-8", "replace")})


class StderrDeadLetter(DeadLetter):
    """For batch commands: each item is reported on standard error, nothing is written."""

    def __init__(self) -> None:
        super().__init__(Path("."))
        self.count = 0

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        self.count += 1
        sink = f" ({entry['sink']})" if entry.get("sink") else ""
        print(f"forwarder: {entry['source']}{sink}: {entry['reason']}", file=sys.stderr)


class ReportingDeadLetter(StderrDeadLetter):
    """For a batch into configured sinks: each item is kept in the dead-letter files for
    replay, as the daemon keeps them, and reported on standard error."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        DeadLetter._append(self, file, dict(entry))
        super()._append(file, entry)
