"""The state store's interface, shared by the SQLite and Redis implementations."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class Held:
    """A record waiting for a missing link of its chain (a parent session, a full copy), or for
    the earlier events that may change its baseline verdict."""

    # What releases it: "key:<access key id>", "shared:<sharedEventID>"; "verdict:<eventID>"
    # waits for its deadline alone (a baseline verdict that earlier events may change).
    wait_on: str
    account: str  # whose stream clock decides when the wait ends
    deadline: float | None  # event time (epoch seconds) after which it ships as it is; None: end of input
    source: str
    record: bytes
    id: str | None = None


@dataclass(slots=True)
class Writes:
    """What one step (an object, a release of held records) makes durable, all or nothing.

    Nothing is written before the step is acknowledged: an object that fails anywhere leaves
    no trace in the store, so reading it again starts from the same state.
    """

    values: dict[tuple[str, str], tuple[bytes, float | None]] = field(default_factory=dict)
    # Written only where the key has no value yet (a thin copy of a session never replaces
    # the full one, whichever of two objects in work commits first).
    defaults: dict[tuple[str, str], tuple[bytes, float | None]] = field(default_factory=dict)
    clocks: dict[str, float] = field(default_factory=dict)  # kind "stream": only ever moves forward
    holds: list[Held] = field(default_factory=list)
    done: list[str] = field(default_factory=list)  # claimed held records, now delivered
    # Kind "usage": access key id -> this step's calls with it (forwarder.usage), merged into
    # what the store holds inside the commit, so steps and processes add up, never overwrite.
    usage: dict[str, bytes] = field(default_factory=dict)
    # The duplicate window: account -> eventID -> the account's stream position when it was
    # seen. Shared by every process on the store; forgotten a window behind the stream.
    seen: dict[str, dict[str, float]] = field(default_factory=dict)
    # Kind "baseline": key -> this step's delta (forwarder.baseline.profile), merged (a join, so
    # idempotent as well) into what the store holds inside the commit, as the usage is.
    baseline: dict[str, bytes] = field(default_factory=dict)

    def links(self) -> tuple[set[str], set[str]]:
        """(the links these writes register, the links their held records wait on), named as
        ``Held.wait_on`` names them: ``key:<access key id>``, ``shared:<sharedEventID>``."""
        registered = {f"{_LINKS[kind]}:{key}" for kind, key in (*self.values, *self.defaults) if kind in _LINKS}
        return registered, {held.wait_on for held in self.holds if held.wait_on.partition(":")[0] in _STORED_AS}

    def __bool__(self) -> bool:
        return bool(self.values or self.defaults or self.clocks or self.holds or self.done or self.usage or self.seen
                    or self.baseline)


_LINKS = {"session": "key", "caller": "shared"}  # the kinds whose arrival releases held records
_STORED_AS = {link: kind for kind, link in _LINKS.items()}


def stored_as(link: str) -> tuple[str, str]:
    """The (kind, key) under which the other side of ``link`` (``key:<id>``) is stored."""
    prefix, _, key = link.partition(":")
    return _STORED_AS[prefix], key


class StateError(Exception):
    """The state store failed (full, locked, unreachable): the step is not acknowledged."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient  # locked by another process, a connection lost: retried


class StateStore(Protocol):
    """Values by (kind, key) with an expiry in event time, plus the held-back records.

    Kinds in use: ``session`` (access key id -> session), ``caller`` (sharedEventID -> the
    caller of a cross-account call), ``usage`` (access key id -> the calls made with it),
    ``baseline`` (subject, role, pair, session key -> what was seen of it: forwarder.baseline),
    ``stream`` (account -> event time reached),
    ``checkpoint`` (source position), ``polled`` (objects read), ``org`` (discovered accounts).
    Every method raises ``StateError`` when the store cannot do it.
    """

    def get(self, kind: str, key: str) -> bytes | None: ...

    def get_many(self, kind: str, keys: Collection[str]) -> dict[str, bytes]:
        """The values of those of ``keys`` that ``kind`` holds: one read (one round trip) for an object."""
        ...

    def put(self, kind: str, key: str, value: bytes, expires_at: float | None = None) -> None: ...

    def commit(self, writes: Writes) -> set[str]:
        """Apply ``writes`` in one durable transaction. Returns the links whose held records may
        now be released although no enrichment saw them meet (another step or process stored the
        other side in the meantime): the caller releases them (``Enricher.committed``)."""
        ...

    def expire(self, kind: str, before: float) -> int:
        """Drop the entries of ``kind`` that expired before ``before``; return how many."""
        ...

    def seen(self, event_ids: Mapping[str, Collection[str]]) -> set[tuple[str, str]]:
        """Which of these (account -> eventIDs) are in the duplicate window, as (account, eventID):
        one read for a whole object."""
        ...

    def forget_seen(self, horizons: Mapping[str, float]) -> int:
        """Drop the eventIDs each account's stream saw before its horizon; return how many."""
        ...

    def count(self, kind: str) -> int: ...

    def scan(self, kind: str) -> Iterator[tuple[str, bytes]]:
        """Every (key, value) of ``kind``, in no promised order; an entry present for the whole
        scan comes at least once (Redis may give one twice while its hash grows). Read in
        short pieces: a scan holds no lock while its reader works."""
        ...

    def release(self, wait_on: str) -> list[Held]:
        """Claim the records waiting on ``wait_on``; they stay stored until a commit lists them done."""
        ...

    def release_due(self, account: str, stream_time: float) -> list[Held]:
        """Claim the records of ``account`` whose deadline is before ``stream_time``."""
        ...

    def release_stale(self, before: float) -> list[Held]:
        """Claim the records of any account whose deadline is before ``before`` (for an awaited
        account whose own stream never comes)."""
        ...

    def release_all(self) -> list[Held]:
        """Claim every held record (end of a batch)."""
        ...

    def unclaim(self, ids: Iterable[str]) -> None:
        """Give claimed records back (their delivery failed): they are released again later."""
        ...

    def held_count(self) -> int: ...

    def claims_elsewhere(self) -> bool:
        """Whether another process holds claims on held records (Redis); they lapse with their lease."""
        ...

    def close(self) -> None: ...
