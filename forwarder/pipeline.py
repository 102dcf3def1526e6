"""One object through the forwarder: read, enrich, deliver to every sink, dead-letter the rest,
then commit what enrichment learnt together with the object's acknowledgement.

What a failure leaves behind is decided here, once, for every kind of failure: enrichment
writes only into a step (``forwarder.enrich.step``), and the step reaches the store only
after every sink accepted its documents. Any exception before that (a sink, the state store,
an encoder, a defect) discards the step, so the object read again starts from the same state.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TypeVar

from forwarder.config import MAX_OBJECT_BYTES
from forwarder.deadletter import DeadLetter
from forwarder.errors import defect
from forwarder.enrich.enricher import Batch, Enricher
from forwarder.reader import ObjectError, read_object
from forwarder.sinks.base import Sink, SinkError, SinkFatal
from forwarder.state.base import StateError, Writes

_T = TypeVar("_T")


class NotDelivered(Exception):
    """An object (or a release of held records) was not delivered and nothing of it was kept:
    it must not be acknowledged, and reading it again is safe. ``kind`` says whose fault:
    ``sink``, ``state``, ``dead_letter``, ``source`` (the object could not be fetched) or ``defect``."""

    def __init__(self, reason: str, kind: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.transient = transient  # expected to pass by itself (S3 busy, a reset): a warning, not an error


class MustStop(NotDelivered):
    """No retry can fix it (a refused token, a missing template): the forwarder must stop."""


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
    and the commit run outside it, so one object's network wait does not stall the others."""

    def __init__(self, enricher: Enricher, sinks: Sequence[Sink], dead_letter: DeadLetter, max_object_bytes: int = MAX_OBJECT_BYTES) -> None:
        self.enricher = enricher
        self.store = enricher.store
        self.sinks = list(sinks)
        self.dead_letter = dead_letter
        self.max_object_bytes = max_object_bytes
        self._lock = threading.Lock()

    def process(self, source: str, data: bytes, acknowledge: Writes | None = None,
                turn: AbstractContextManager[object] | None = None) -> Outcome:
        """Read and deliver one object; ``acknowledge`` (a source's mark that the object is done)
        commits with it; ``turn``, where given, is held around the enrichment alone (objects
        enriched in a source's order, delivered concurrently). Raises ObjectError (unreadable:
        the caller dead-letters it) or NotDelivered (the caller must not acknowledge the object)."""
        try:
            log_object = read_object(source, data, self.max_object_bytes)
        except ObjectError:
            raise
        except Exception as exc:  # noqa: BLE001 - a defect meeting this object: it is dead-lettered by name, the rest flows
            raise ObjectError(source, f"could not be read: {defect(exc)}") from None
        outcome = Outcome(source)
        if log_object.skipped:
            outcome.skipped_object = log_object.skipped
            self.acknowledge(acknowledge)
            return outcome
        with turn or nullcontext(), self._lock:
            # The collector finds no cycles in parsed JSON; pausing it during the hot loop
            # roughly halves the parse cost (it would otherwise scan every new dict).
            gc.disable()
            try:
                batch = _guarded(lambda: self.enricher.enrich_records(source, log_object.records))
            finally:
                gc.enable()
        return self._finish(outcome, batch, acknowledge)

    def process_entries(self, entries: Sequence[tuple[str, bytes]]) -> Outcome:
        """Records from several places as one step (a replay of dead-lettered records)."""
        with self._lock:
            batch = _guarded(lambda: self.enricher.enrich_entries(entries))
        return self._finish(Outcome("replay"), batch, None)

    def release_due(self) -> Outcome:
        with self._lock:
            batch = _guarded(self.enricher.release_due)
        return self._finish(Outcome("held"), batch, None)

    def flush(self) -> Outcome:
        with self._lock:
            batch = _guarded(self.enricher.flush)
        return self._finish(Outcome("held"), batch, None)

    def forget_expired(self) -> int:
        with self._lock:
            return _guarded(self.enricher.forget_expired)

    def acknowledge(self, writes: Writes | None) -> None:
        """Commit a source's acknowledgement that needs no enrichment (a skipped or dead-lettered object)."""
        if writes:
            _guarded(lambda: self.store.commit(writes))

    def _finish(self, outcome: Outcome, batch: Batch, acknowledge: Writes | None) -> Outcome:
        step = batch.step
        try:
            rejected = self._deliver(batch)
            if acknowledge:
                step.writes.values.update(acknowledge.values)
            woken = self.store.commit(step.writes)
        except BaseException as exc:
            with self._lock:
                self.enricher.discard(step)
            failure = _failure(exc)
            if failure is exc:
                raise
            raise failure from exc
        with self._lock:
            self.enricher.committed(step, woken)
        outcome.records = batch.total
        outcome.delivered = len(batch.documents)
        outcome.held = batch.held
        outcome.skipped = batch.skipped
        outcome.duplicates = batch.duplicates
        outcome.dead_lettered = len(batch.errors) + rejected
        return outcome

    def _deliver(self, batch: Batch) -> int:
        """Send to every sink; return how many documents a sink rejected (now dead-lettered)."""
        rejected_count = 0
        if batch.documents:
            for sink in self.sinks:
                for rejected in sink.send(batch.documents).rejected:
                    self.dead_letter.document(rejected.document, sink.name, rejected.reason)
                    rejected_count += 1
        # After the sinks: a sink failing and the object coming again does not write these twice.
        for error in batch.errors:
            self.dead_letter.record(error.source, error.reason, error.raw)
        return rejected_count


def _guarded(call: Callable[[], _T]) -> _T:
    try:
        return call()
    except (NotDelivered, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        raise _failure(exc) from exc


def _failure(exc: BaseException) -> BaseException:
    """What the source is told: whose fault, in one line, and whether to stop."""
    if isinstance(exc, NotDelivered | KeyboardInterrupt | SystemExit):
        return exc
    if isinstance(exc, SinkFatal):
        return MustStop(str(exc), "sink")
    if isinstance(exc, SinkError):
        return NotDelivered(str(exc), "sink")
    if isinstance(exc, StateError):
        return NotDelivered(str(exc), "state", transient=exc.transient)
    if isinstance(exc, OSError):  # the dead letter's disk: named by the OS error
        return NotDelivered(f"{exc.filename or 'dead letter'}: {exc.strerror or exc}", "dead_letter")
    return NotDelivered(defect(exc), "defect")
