"""One enriched document per line, to a file or standard output."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import BinaryIO

from forwarder.config import NdjsonSink as NdjsonConfig
from forwarder.document import Document
from forwarder.sinks.base import Delivery, SinkError


class NdjsonSink:
    name = "ndjson"

    def __init__(self, config: NdjsonConfig, stream: BinaryIO | None = None) -> None:
        self._path = config.path
        self._lock = threading.Lock()
        if stream is not None:
            self._out, self._owned = stream, False
        elif config.path == "-":
            self._out, self._owned = sys.stdout.buffer, False
        else:
            try:
                self._out, self._owned = open(config.path, "ab"), True  # noqa: SIM115 - lives as long as the sink
            except OSError as exc:
                raise SinkError(f"ndjson sink: cannot open {config.path}: {exc.strerror or exc}") from None

    def send(self, documents: Sequence[Document]) -> Delivery:
        payload = b"".join([doc.to_json() + b"\n" for doc in documents])
        try:
            with self._lock:
                self._out.write(payload)
                self._out.flush()
        except OSError as exc:
            raise SinkError(f"ndjson sink: cannot write {self._path}: {exc.strerror or exc}") from None
        return Delivery()

    def close(self) -> None:
        if self._owned:
            self._out.close()
