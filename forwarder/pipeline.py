"""One object through the forwarder: read, enrich, deliver to every sink, dead-letter the rest."""

from __future__ import annotations

import gc
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from forwarder.deadletter import DeadLetter
from forwarder.enrich.enricher import Batch, Enricher
from forwarder.reader import read_object
from forwarder.sinks.base import Sink, SinkError


@dataclass(slots=True)
class Outcome:
    source: str
    records: int = 0
    delivered: int = 0
    held: int = 0
    skipped: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    skipped_object: str | None = None


class Pipeline:
    """Thread-safe: enrichment runs under one lock (it is CPU-bound and stateful); delivery
    runs outside it, so one object's network wait does not stall the others."""

    def __init__(self, enricher: Enricher, sinks: Sequence[Sink], dead_letter: DeadLetter, max_object_bytes: int = 1 << 30) -> None:
        self.enricher = enricher
        self.sinks = list(sinks)
        self.dead_letter = dead_letter
        self.max_object_bytes = max_object_bytes
        self._lock = threading.Lock()

    def process(self, source: str, data: bytes) -> Outcome:
        """Read and deliver one object. Raises ObjectError (unreadable: the caller dead-letters
        it) or SinkError (not delivered: the caller must not acknowledge the object)."""
        log_object = read_object(source, data, self.max_object_bytes)
        outcome = Outcome(source)
        if log_object.skipped:
            outcome.skipped_object = log_object.skipped
            return outcome
        with self._lock:
            # The collector finds no cycles in parsed JSON; pausing it during the hot loop
            # roughly halves the parse cost (it would otherwise scan every new dict).
            gc.disable()
            try:
                batch = self.enricher.enrich_records(source, log_object.records)
            finally:
                gc.enable()
        return _outcome(outcome, batch, self.deliver(batch))

    def release_due(self) -> Outcome:
        with self._lock:
            batch = self.enricher.release_due()
        return _outcome(Outcome("held"), batch, self.deliver(batch))

    def forget_expired(self) -> int:
        with self._lock:
            return self.enricher.forget_expired()

    def flush(self) -> Outcome:
        with self._lock:
            batch = self.enricher.flush()
        return _outcome(Outcome("held"), batch, self.deliver(batch))

    def deliver(self, batch: Batch) -> int:
        """Send to every sink; return how many documents a sink rejected (now dead-lettered)."""
        rejected_count = 0
        for error in batch.errors:
            self.dead_letter.record(error.source, error.reason, error.raw)
        try:
            if batch.documents:
                for sink in self.sinks:
                    for rejected in sink.send(batch.documents).rejected:
                        self.dead_letter.document(rejected.document, sink.name, rejected.reason)
                        rejected_count += 1
        except SinkError:
            with self._lock:
                self.enricher.unsee(batch)  # or the object's records would be dropped as duplicates when read again
            self.enricher.store.unclaim(batch.released)
            raise
        if batch.released:
            self.enricher.store.done(batch.released)
        return rejected_count


def _outcome(outcome: Outcome, batch: Batch, rejected: int) -> Outcome:
    outcome.records = batch.total
    outcome.delivered = len(batch.documents)
    outcome.held = batch.held
    outcome.skipped = batch.skipped
    outcome.duplicates = batch.duplicates
    outcome.dead_lettered = len(batch.errors) + rejected
    return outcome
