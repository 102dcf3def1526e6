"""Sessions by the access key their role assumption issued, and the chains they form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import orjson

from forwarder.enrich.identity import SESSION, THIN, Caller, account_of
from forwarder.state.base import StateStore

if TYPE_CHECKING:
    from forwarder.enrich.step import Step

MAX_HOPS = 64  # far beyond any real chain; stops a cycle in broken or crafted input
MAX_SESSION_SECONDS = 12 * 3600  # the longest an STS session can last


@dataclass(slots=True)
class Session:
    key: str
    role_arn: str | None
    caller_arn: str | None
    caller_type: str | None
    caller_account: str | None
    parent_key: str | None = None
    parent_role_arn: str | None = None
    parent_created: float | None = None
    source_identity: str | None = None
    shared_event_id: str | None = None
    created: float | None = None
    expires_at: float | None = None

    @property
    def thin(self) -> bool:
        return self.caller_type == THIN

    def caller(self) -> Caller:
        return Caller(
            self.caller_arn,
            self.caller_type,
            self.caller_account,
            access_key_id=self.parent_key,
            issuer_arn=self.parent_role_arn,
            created=self.parent_created,
            source_identity=self.source_identity,
        )


@dataclass(slots=True)
class Chain:
    origin_arn: str | None
    origin_type: str | None
    origin_account: str | None
    hops: list[str]
    resolved: bool
    # The missing link, when there is one worth waiting for: "key:<id>" (a parent session
    # not seen yet) or "shared:<sharedEventID>" (the caller's full copy of a cross-account call).
    blocker: str | None = None
    blocker_since: float | None = None  # event time of the missing link, for the hold-back bound
    # Whose trail brings the missing link, so whose stream decides when waiting is over: the
    # role's account for a session's issuance, the caller's for its full copy of a call.
    blocker_account: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "origin": {"arn": self.origin_arn, "type": self.origin_type, "account_id": self.origin_account},
            "depth": len(self.hops),
            "hops": self.hops,
            "resolved": self.resolved,
        }


class Sessions:
    """The session store's view for chain resolution, with resolved chains memoised.

    Reads look at the steps in work (newest first) before what is committed; writes go into
    the current step (the last one) and reach the store when it commits. A resolved chain
    never changes (every link is known and keys are unique), so it is memoised for good once
    its step is committed; an unresolved one is looked up again each time, since its missing
    link may have arrived since.
    """

    def __init__(self, store: StateStore, margin_seconds: float, steps: Sequence[Step]) -> None:
        self._store = store
        self._margin = margin_seconds
        self._steps = steps
        self._cache: dict[str, Session] = {}
        self._resolved: dict[str, Chain] = {}

    def get(self, key: str) -> Session | None:
        for step in reversed(self._steps):
            staged = step.sessions.get(key)
            if staged is not None:
                return staged
        session = self._cache.get(key)
        # A thin copy is read again: the full one may have been stored since (by another process).
        if session is None or session.thin:
            data = self._store.get("session", key)
            if data is None:
                return session
            session = Session(**orjson.loads(data))
            self._cache[key] = session
        return session

    def put(self, session: Session) -> bool:
        """Stage a session; a thin copy never replaces the caller's full one. True if staged."""
        known = self.get(session.key)
        if known is not None and session.thin and not known.thin:
            return False
        step = self._steps[-1]
        step.sessions[session.key] = session
        # Written only where there is none yet if thin: a step in work elsewhere may commit
        # the full copy first.
        target = step.writes.defaults if session.thin else step.writes.values
        target[("session", session.key)] = (orjson.dumps(asdict(session)), self._expiry(session))
        return True

    def put_caller(self, shared_event_id: str, caller: Caller, expires_at: float | None) -> None:
        step = self._steps[-1]
        step.callers[shared_event_id] = caller
        step.writes.values[("caller", shared_event_id)] = (orjson.dumps(asdict(caller)), expires_at)

    def get_caller(self, shared_event_id: str) -> Caller | None:
        for step in reversed(self._steps):
            staged = step.callers.get(shared_event_id)
            if staged is not None:
                return staged
        data = self._store.get("caller", shared_event_id)
        return Caller(**orjson.loads(data)) if data is not None else None

    def committed(self, step: Step) -> None:
        for key, session in step.sessions.items():
            known = self._cache.get(key)
            if not (session.thin and known is not None and not known.thin):
                self._cache[key] = session
        self._resolved.update(step.resolved)

    def forget_before(self, moment: float) -> int:
        """Forget the sessions (and cross-account callers) whose expiry, margin included, is
        before ``moment``; return how many sessions went."""
        dropped = self._store.expire("session", moment)
        self._store.expire("caller", moment)
        self._cache = {k: s for k, s in self._cache.items() if self._expiry(s) >= moment}
        self._resolved = {k: c for k, c in self._resolved.items() if k in self._cache}
        return dropped

    def _expiry(self, session: Session) -> float:
        # Credentials whose expiration was not logged live at most 12 hours.
        ends = session.expires_at if session.expires_at is not None else (session.created or 0.0) + MAX_SESSION_SECONDS
        return ends + self._margin

    def chain_of_key(self, key: str, issuer_arn: str | None, created: float | None) -> Chain:
        """The chain behind calls made with ``key``; ``issuer_arn``/``created`` describe the
        session as the call itself reports it (``sessionContext``), for when it is unknown."""
        cached = self._memo(key)
        if cached is not None:
            return cached
        chain = self._walk(key, issuer_arn, created, set())
        if chain.resolved and self._steps:
            self._steps[-1].resolved[key] = chain
        return chain

    def _memo(self, key: str) -> Chain | None:
        chain = self._resolved.get(key)
        if chain is None:
            for step in self._steps:
                chain = step.resolved.get(key)
                if chain is not None:
                    break
        return chain

    def chain_of_caller(self, caller: Caller, role_arn: str | None, shared_event_id: str | None) -> Chain:
        """The chain of an assumption: the caller's own chain, then the assumed role."""
        return self._extend(caller, role_arn, shared_event_id, None, set())

    def _walk(self, key: str, issuer_arn: str | None, created: float | None, seen: set[str]) -> Chain:
        session = self.get(key)
        if session is not None and issuer_arn and session.role_arn and issuer_arn != session.role_arn:
            session = None  # a reused or placeholder key (sample data does that): not this session's parent
        if session is None:
            hops = [issuer_arn] if issuer_arn else []
            return Chain(None, None, None, hops, False, f"key:{key}", created, account_of(issuer_arn))
        seen.add(key)
        return self._extend(session.caller(), session.role_arn, session.shared_event_id, session.created, seen)

    def _extend(
        self, caller: Caller, role_arn: str | None, shared: str | None, created: float | None, seen: set[str]
    ) -> Chain:
        if caller.type == SESSION:
            if caller.access_key_id is None or caller.access_key_id in seen or len(seen) >= MAX_HOPS:
                parent = Chain(None, None, None, [caller.issuer_arn] if caller.issuer_arn else [], False)
            else:
                cached = self._memo(caller.access_key_id)
                parent = cached or self._walk(caller.access_key_id, caller.issuer_arn, caller.created, seen)
            hops = [*parent.hops, role_arn] if role_arn else list(parent.hops)
            return Chain(
                parent.origin_arn,
                parent.origin_type,
                parent.origin_account,
                hops,
                parent.resolved,
                parent.blocker,
                parent.blocker_since,
                parent.blocker_account,
            )
        hops = [role_arn] if role_arn else []
        if caller.type == THIN:
            return Chain(
                None, THIN, caller.account_id, hops, False, f"shared:{shared}" if shared else None, created,
                caller.account_id,
            )
        return Chain(caller.arn, caller.type, caller.account_id, hops, caller.arn is not None)
