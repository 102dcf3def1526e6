"""One enriched document per line, to a file or standard output.

A write that fails part-way (a full disk) must not leave half a document for the next one to
be glued to. Nothing of a failed send is acknowledged, so its documents come again: in a
regular file the torn tail is cut back to where the failed write began; where nothing can be
cut (a pipe, a terminal), the next write starts on a fresh line.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections.abc import Sequence
from typing import BinaryIO

from forwarder.config import NdjsonSink as NdjsonConfig
from forwarder.document import Document
from forwarder.record import Undecodable
from forwarder.sinks.base import Delivery, Rejected, SinkError, SinkFatal


class NdjsonSink:
    name = "ndjson"

    def __init__(self, config: NdjsonConfig, stream: BinaryIO | None = None) -> None:
        self._path = config.path
        self._lock = threading.Lock()
        if stream is not None:
            self._out, self._owned = stream, False
        elif config.path == "-":
            stdout = sys.stdout.buffer
            # Unbuffered, so that after a failed write the sink knows what went out.
            self._out, self._owned = getattr(stdout, "raw", stdout), False
        else:
            try:
                # Readable too, to see whether an earlier process left a torn last line.
                self._out, self._owned = open(config.path, "ab+", buffering=0), True  # noqa: SIM115 - lives as long as the sink
            except OSError as exc:
                raise SinkError(f"ndjson sink: cannot open {config.path}: {exc.strerror or exc}") from None
        self._regular = _is_regular_file(self._out)
        # The next write must begin with a newline: the output ends inside a line (a process
        # killed mid-write, or a tail that could not be cut).
        self._torn = self._regular and not _ends_a_line(self._out)

    def send(self, documents: Sequence[Document]) -> Delivery:
        lines: list[bytes] = []
        rejected: list[Rejected] = []
        for document in documents:
            try:
                lines.append(document.to_json() + b"\n")
            except Undecodable as exc:  # refused alone, the rest is written
                rejected.append(Rejected(document, exc.reason))
        payload = b"".join(lines)
        with self._lock:
            try:
                self._write(b"\n" + payload if self._torn else payload)
            except BrokenPipeError:  # the reader is gone (`forwarder enrich ... | head`): no retry brings it back
                raise SinkFatal(f"ndjson sink: {self._path}: the reading end was closed") from None
            except OSError as exc:
                raise SinkError(f"ndjson sink: cannot write {self._path}: {exc.strerror or exc}") from None
        return Delivery(rejected)

    def _write(self, payload: bytes) -> None:
        view = memoryview(payload)
        sent = 0
        try:
            while sent < len(view):
                sent += self._out.write(view[sent:])  # a raw file may take only part of it
            self._out.flush()
        except OSError:
            self._after_failure(view, sent)
            raise
        self._torn = False

    def _after_failure(self, payload: memoryview, sent: int) -> None:
        if not sent:
            return
        if self._regular:
            try:
                end = self._out.tell()  # appending: just past the bytes this write put there
                # Cut only our own bytes: another process (a replay) may append to the same file.
                if os.fstat(self._out.fileno()).st_size == end:
                    self._out.truncate(end - sent)
                    return
            except OSError:
                pass
        self._torn = payload[sent - 1] != ord("\n")

    def close(self) -> None:
        if self._owned:
            self._out.close()


def _is_regular_file(out: BinaryIO) -> bool:
    try:
        return stat.S_ISREG(os.fstat(out.fileno()).st_mode)
    except (OSError, ValueError):  # no descriptor (an in-memory stream)
        return False


def _ends_a_line(out: BinaryIO) -> bool:
    try:
        size = os.fstat(out.fileno()).st_size
        return size == 0 or os.pread(out.fileno(), 1, size - 1) == b"\n"
    except OSError:  # not readable (standard output redirected with >>): nothing to go by
        return True
