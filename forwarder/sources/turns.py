"""Objects fetched concurrently but enriched in the order they were listed.

A backfill or the S3 poller reads several objects at once; whichever fetch finishes first
would otherwise be enriched first, and an account's stream clock could run past a session's
hold-back window before the object holding the session was read (its child then ships
unresolved). A turn keeps the enrichment in key order while fetches and deliveries overlap.
"""

from __future__ import annotations

import threading
from types import TracebackType


class Turns:
    """Numbers 0, 1, 2...: the enrichment of number n waits until every earlier one is done
    (enriched, or finished without reaching its enrichment: skipped, dead-lettered, failed)."""

    def __init__(self) -> None:
        self._next = 0
        self._done: set[int] = set()
        self._changed = threading.Condition()

    def turn(self, number: int) -> Turn:
        return Turn(self, number)

    def _wait(self, number: int) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._next >= number)

    def _finish(self, number: int) -> None:
        with self._changed:
            self._done.add(number)
            while self._next in self._done:
                self._done.discard(self._next)
                self._next += 1
            self._changed.notify_all()


class Turn:
    """``with turn:`` around the enrichment; ``finish()`` once the object is done, whatever
    became of it (finishing twice is harmless)."""

    def __init__(self, turns: Turns, number: int) -> None:
        self._turns = turns
        self._number = number
        self._finished = False

    def __enter__(self) -> Turn:
        self._turns._wait(self._number)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.finish()

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._turns._finish(self._number)
