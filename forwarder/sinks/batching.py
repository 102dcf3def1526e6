"""Documents of every object in work, gathered into one send: far fewer, fuller bulk requests.

Each object's thread calls ``send`` with its own documents and waits; a fixed set of workers
(never one per call) takes what has gathered, sends it to the sink in one call, and hands each
caller the verdicts on its own documents. A batch goes when it holds ``max_documents`` or
``max_bytes``, or when nothing new has come for ``linger`` seconds (the objects in work have
all arrived), and never waits longer than ``max_wait`` seconds in all.

The delivery promise is the sink's, unchanged: a caller returns once every one of its documents
was accepted or refused for good, and only then commits its object (pipeline.py); when the
sink fails, every caller whose documents were in that send gets the failure and acknowledges
nothing. A failure thus fails the objects it shared a request with: they are read again, and
their resent documents keep their ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from forwarder.document import Document
from forwarder.sinks.base import Delivery, Rejected, Sink


@dataclass(frozen=True, slots=True)
class Bounds:
    max_documents: int
    max_bytes: int
    linger: float = 0.01
    max_wait: float = 0.25


@dataclass(slots=True)
class _Entry:
    documents: Sequence[Document]
    size: int
    result: Future[Delivery]


def _size(documents: Sequence[Document]) -> int:
    # The record's own bytes: what serialising adds is small beside it, and counting it exactly
    # would mean serialising twice.
    return sum(len(document.raw) if document.raw is not None else 1024 for document in documents)


class Batching:
    """A ``Sink`` in front of ``sinks``, one per worker (the same one where it is thread-safe),
    thread-safe itself; ``close`` sends what is left, stops the workers and closes the sinks."""

    def __init__(self, sinks: Sequence[Sink], bounds: Bounds) -> None:
        self.sinks = list(sinks)
        self.name = self.sinks[0].name
        self.bounds = bounds
        self._waiting: list[_Entry] = []
        self._documents = 0
        self._bytes = 0
        self._first = self._last = 0.0
        self._closing = False
        self._changed = threading.Condition()
        self._workers = [threading.Thread(target=self._work, args=(sink,), name=f"{self.name}-send-{n}", daemon=True)
                         for n, sink in enumerate(self.sinks)]
        for worker in self._workers:
            worker.start()

    def send(self, documents: Sequence[Document]) -> Delivery:
        if not documents:
            return Delivery()
        entry = _Entry(documents, _size(documents), Future())
        with self._changed:
            if self._closing:
                raise RuntimeError(f"{self.name}: send after close")
            now = time.monotonic()
            if not self._waiting:
                self._first = now
            self._last = now
            self._waiting.append(entry)
            self._documents += len(documents)
            self._bytes += entry.size
            self._changed.notify()
        return entry.result.result()

    def _work(self, sink: Sink) -> None:
        while True:
            with self._changed:
                taken = self._take()
                if taken is None:
                    return
            self._send(sink, taken)

    def _take(self) -> list[_Entry] | None:
        """The next batch, once it is due (called holding the lock); None when closed and empty."""
        bounds = self.bounds
        while True:
            if self._waiting:
                now = time.monotonic()
                full = self._documents >= bounds.max_documents or self._bytes >= bounds.max_bytes
                quiet = now - self._last >= bounds.linger
                late = now - self._first >= bounds.max_wait
                if full or quiet or late or self._closing:
                    return self._cut()
                self._changed.wait(min(self._last + bounds.linger, self._first + bounds.max_wait) - now)
            elif self._closing:
                return None
            else:
                self._changed.wait()

    def _cut(self) -> list[_Entry]:
        """Whole callers' documents up to the bounds (at least one caller's, however large)."""
        taken: list[_Entry] = []
        documents = size = 0
        while self._waiting:
            entry = self._waiting[0]
            if taken and (documents + len(entry.documents) > self.bounds.max_documents
                          or size + entry.size > self.bounds.max_bytes):
                break
            taken.append(self._waiting.pop(0))
            documents += len(entry.documents)
            size += entry.size
        self._documents -= documents
        self._bytes -= size
        if self._waiting:
            self._first = time.monotonic()  # what stays behind starts its own wait
            self._changed.notify()  # another worker may take it at once
        return taken

    def _send(self, sink: Sink, taken: list[_Entry]) -> None:
        if len(taken) == 1:
            documents = taken[0].documents
        else:
            documents = [document for entry in taken for document in entry.documents]
        try:
            delivery = sink.send(documents)
        except BaseException as exc:  # noqa: BLE001 - each caller raises it as its own
            for entry in taken:
                entry.result.set_exception(exc)
            return
        if len(taken) == 1:
            taken[0].result.set_result(delivery)
            return
        refused: dict[int, Rejected] = {id(rejected.document): rejected for rejected in delivery.rejected}
        for entry in taken:
            mine = [refused[id(document)] for document in entry.documents if id(document) in refused] if refused else []
            entry.result.set_result(Delivery(rejected=mine))

    def close(self, timeout: float = 10.0) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            # A send stuck past the shutdown budget is the daemon's to report (its caller is stuck too).
            worker.join(max(0.0, deadline - time.monotonic()))
        for sink in {id(sink): sink for sink in self.sinks}.values():
            sink.close()
