"""The state store's interface, shared by the SQLite and Redis implementations."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class Held:
    """A record waiting for a missing link of its chain (a parent session, a full copy)."""

    wait_on: str  # what releases it: "key:<access key id>" or "shared:<sharedEventID>"
    account: str  # whose stream clock decides when the wait ends
    deadline: float | None  # event time (epoch seconds) after which it ships as it is; None: end of input
    source: str
    record: bytes
    id: str | None = None


class StateStore(Protocol):
    """Values by (kind, key) with an expiry in event time, plus the held-back records.

    Kinds in use: ``session`` (access key id -> session), ``caller`` (sharedEventID -> the
    caller of a cross-account call), ``stream`` (account -> event time reached),
    ``checkpoint`` (source position), ``org`` (discovered accounts).
    """

    def get(self, kind: str, key: str) -> bytes | None: ...

    def put(self, kind: str, key: str, value: bytes, expires_at: float | None = None) -> None: ...

    def expire(self, kind: str, before: float) -> int:
        """Drop the entries of ``kind`` that expired before ``before``; return how many."""
        ...

    def count(self, kind: str) -> int: ...

    def hold(self, held: Held) -> None: ...

    def release(self, wait_on: str) -> list[Held]:
        """Claim the records waiting on ``wait_on``; they stay stored until ``done``."""
        ...

    def release_due(self, account: str, stream_time: float) -> list[Held]:
        """Claim the records of ``account`` whose deadline is before ``stream_time``."""
        ...

    def release_all(self) -> list[Held]:
        """Claim every held record (end of a batch)."""
        ...

    def done(self, ids: Iterable[str]) -> None:
        """Forget claimed records once every sink has accepted them."""
        ...

    def unclaim(self, ids: Iterable[str]) -> None:
        """Give claimed records back (their delivery failed): they are released again later."""
        ...

    def held_count(self) -> int: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group the writes inside into one durable step (one object's enrichment)."""
        ...

    def close(self) -> None: ...
