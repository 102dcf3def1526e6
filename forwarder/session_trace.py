"""Who stands behind a session key, read back from the daemon's state store hop by hop.

Each session (kind ``session``) names its caller, and the key the caller signed with
(``parent_key``): while the caller acts with a session (``Caller.chained``), the chain is walked
along those keys, to the first identity that is no session. A role owner's thin copy of a
cross-account call names only the caller's account; the caller's full identity is then kind
``caller`` by ``sharedEventID``.
The hops are this walk's, for what each one shows (times, accounts, callers); the origin is
chain resolution's own (forwarder/enrich/chains.py), so it is the one on the enriched events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

from forwarder.enrich.chains import MAX_HOPS, MAX_SESSION_SECONDS, Session, Sessions
from forwarder.enrich.identity import SESSION, Caller
from forwarder.state.base import StateStore


@dataclass(slots=True)
class Hop:
    session: Session
    caller: Caller  # who assumed the role: for a thin copy, the caller's copy of the call where it was read


@dataclass(slots=True)
class Trace:
    hops: list[Hop]  # from the role the origin assumed to the asked key's own session
    origin: Caller | None  # None: a link is missing (``missing`` says which)
    missing: str | None = None

    @property
    def session(self) -> Session:
        return self.hops[-1].session


@dataclass(slots=True)
class Clock:
    """The moment against which a session is live, and where it comes from."""

    at: float
    by: str  # "stream": the point the forwarder's stream has reached; "wall"; "given"

    def live(self, session: Session) -> bool:
        return (session.created or 0.0) <= self.at < _ends(session)


def _ends(session: Session) -> float:
    # Credentials whose expiration was not logged live at most 12 hours (as chains.py assumes).
    return session.expires_at if session.expires_at is not None else (session.created or 0.0) + MAX_SESSION_SECONDS


class Reader:
    """The store's sessions and cross-account callers, each read once."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._chains = Sessions(store, 0, ())
        self._sessions: dict[str, Session | None] = {}
        self._callers: dict[str, Caller | None] = {}

    def session(self, key: str) -> Session | None:
        if key not in self._sessions:
            data = self.store.get("session", key)
            self._sessions[key] = _session(data) if data is not None else None
        return self._sessions[key]

    def all_sessions(self) -> list[Session]:
        """Every stored session, read in one scan (and kept for the walks that follow)."""
        for key, data in self.store.scan("session"):
            self._sessions[key] = _session(data)
        return [session for session in self._sessions.values() if session is not None]

    def caller(self, shared_event_id: str) -> Caller | None:
        if shared_event_id not in self._callers:
            data = self.store.get("caller", shared_event_id)
            self._callers[shared_event_id] = Caller(**orjson.loads(data)) if data is not None else None
        return self._callers[shared_event_id]

    def clock(self) -> Clock:
        """The most advanced account's stream (the daemon forgets sessions by it): sessions are
        judged in event time, so a backfill or a replay of old data shows them as they were
        then. Before any stream is read, the wall clock."""
        reached = [float(value) for _, value in self.store.scan("stream")]
        return Clock(max(reached), "stream") if reached else Clock(time.time(), "wall")

    def trace(self, key: str) -> Trace | None:
        """The chain behind ``key``; None when no issuance of it is in the store."""
        session = self.session(key)
        if session is None:
            return None
        walked = self._walk(session)
        # A call made with the key, as its userIdentity would name it: resolved by the same rules
        # as the enrichment (federated users, root sessions, Identity Center users included).
        chain = self._chains.chain_of_call(Caller(None, SESSION, None, access_key_id=key, issuer_arn=session.acts_as))
        if not chain.resolved:
            return Trace(walked.hops, None, walked.missing or "a link of the chain is not in the store")
        origin = Caller(chain.origin_arn, chain.origin_type, chain.origin_account, identity_provider=chain.origin_provider)
        return Trace(walked.hops, origin)

    def _walk(self, session: Session) -> Trace:
        hops: list[Hop] = []
        seen: set[str] = set()
        while True:
            seen.add(session.key)
            caller = session.caller()
            if session.thin:
                full = self.caller(session.shared_event_id) if session.shared_event_id else None
                if full is None:
                    hops.append(Hop(session, caller))
                    return Trace(hops[::-1], None, f"the caller's copy of the cross-account call has not been read: "
                                                   f"only its account {caller.account_id} is known")
                caller = full
            hops.append(Hop(session, caller))
            if not caller.chained:
                return Trace(hops[::-1], caller)
            if caller.access_key_id is None:
                return Trace(hops[::-1], None, "the calling session's access key was not logged")
            parent = self.session(caller.access_key_id)
            if parent is not None and caller.issuer_arn and parent.acts_as and caller.issuer_arn != parent.acts_as:
                parent = None  # a reused or placeholder key: not this session's parent
            if parent is None:
                return Trace(hops[::-1], None, f"the session of {caller.issuer_arn or 'an unknown role'} with key "
                                               f"{caller.access_key_id} is not in the store (its role assumption "
                                               "has not been read, or it was forgotten after it expired)")
            if parent.key in seen:
                return Trace(hops[::-1], None, f"the chain loops back to key {parent.key}")
            if len(hops) >= MAX_HOPS:
                return Trace(hops[::-1], None, f"the chain goes on beyond {MAX_HOPS} hops")
            session = parent


def _session(data: bytes) -> Session:
    return Session(**orjson.loads(data))
