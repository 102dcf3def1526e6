"""Sessions by the access key their issuance returned (every STS call that issues credentials),
and the chains they form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from forwarder.enrich.identity import FEDERATED, IDENTITY_CENTER, ROOT, THIN, Caller, account_of
from forwarder.state.base import StateStore

if TYPE_CHECKING:
    from forwarder.enrich.step import Step

MAX_HOPS = 64  # far beyond any real chain; stops a cycle in broken or crafted input
MAX_SESSION_SECONDS = 12 * 3600  # the longest an STS session can last


@dataclass(slots=True)
class Session:
    """Credentials STS issued, by their key: for what identity (``role_arn``), and who asked."""

    key: str
    # The identity the credentials act as: the role, the member account's root (AssumeRoot), the
    # federated user (GetFederationToken); None for GetSessionToken, whose caller acts as itself.
    role_arn: str | None
    caller_arn: str | None
    caller_type: str | None
    caller_account: str | None
    parent_key: str | None = None
    parent_role_arn: str | None = None
    parent_created: float | None = None
    source_identity: str | None = None  # the session's own: set by its issuance or inherited
    shared_event_id: str | None = None
    created: float | None = None
    expires_at: float | None = None
    requested_source_identity: str | None = None  # what the issuance asked for (requestParameters)
    caller_source_identity: str | None = None  # what the caller's own session carried
    caller_identity_provider: str | None = None
    caller_on_behalf_of: str | None = None
    caller_identity_store_arn: str | None = None
    # Where the issuing call came from: the behaviour baseline compares the key's calls with it.
    source_ip: str | None = None  # its sourceIPAddress as logged: an address, or the AWS service that asked
    agent_family: str | None = None
    vpc_endpoint_id: str | None = None

    @property
    def thin(self) -> bool:
        return self.caller_type == THIN

    @property
    def acts_as(self) -> str | None:
        """What a call with the key names as its session's issuer (or, for root, as itself)."""
        return self.role_arn or self.caller_arn

    def caller(self) -> Caller:
        return Caller(
            self.caller_arn,
            self.caller_type,
            self.caller_account,
            access_key_id=self.parent_key,
            issuer_arn=self.parent_role_arn,
            created=self.parent_created,
            source_identity=self.caller_source_identity,
            identity_provider=self.caller_identity_provider,
            on_behalf_of=self.caller_on_behalf_of,
            identity_store_arn=self.caller_identity_store_arn,
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
    origin_provider: str | None = None  # who names a federated or Identity Center origin
    source_identity: str | None = None  # the one the chain's last session carries
    source_identity_changed: bool = False

    def fields(self) -> dict[str, Any]:
        return {
            "origin": {
                "arn": self.origin_arn,
                "type": self.origin_type,
                "account_id": self.origin_account,
                "identity_provider": self.origin_provider,
            },
            "depth": len(self.hops),
            "hops": self.hops,
            "resolved": self.resolved,
            "source_identity_changed": self.source_identity_changed,
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
        # A key the store did not know is asked once per step (a step's calls often share it).
        if (session is None or session.thin) and not (self._steps and key in self._steps[-1].absent):
            data = self._store.get("session", key)
            if data is None:
                if self._steps:
                    self._steps[-1].absent.add(key)
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
        target[("session", session.key)] = (orjson.dumps(session), self._expiry(session))
        return True

    def put_caller(self, shared_event_id: str, caller: Caller, expires_at: float | None) -> None:
        step = self._steps[-1]
        step.callers[shared_event_id] = caller
        step.writes.values[("caller", shared_event_id)] = (orjson.dumps(caller), expires_at)

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
        self._store.expire("usage", moment)
        self._cache = {k: s for k, s in self._cache.items() if self._expiry(s) >= moment}
        self._resolved = {k: c for k, c in self._resolved.items() if k in self._cache}
        return dropped

    def _expiry(self, session: Session) -> float:
        # Credentials whose expiration was not logged live at most 12 hours.
        ends = session.expires_at if session.expires_at is not None else (session.created or 0.0) + MAX_SESSION_SECONDS
        return ends + self._margin

    def chain_of_call(self, caller: Caller) -> Chain:
        """The chain behind a call made with temporary credentials, as its ``userIdentity`` names them."""
        return self._behind(caller, None, None, set())

    def chain_of_issuance(
        self, caller: Caller, acts_as: str | None, source_identity: str | None, shared_event_id: str | None
    ) -> Chain:
        """The chain of an issuance: the caller's own chain, then the identity the credentials act
        as (``acts_as``; none for GetSessionToken), with the source identity the issuance asked for."""
        return self._extend(caller, acts_as, source_identity, shared_event_id, None, set())

    def _memo(self, key: str) -> Chain | None:
        chain = self._resolved.get(key)
        if chain is None:
            for step in self._steps:
                chain = step.resolved.get(key)
                if chain is not None:
                    break
        return chain

    def _walk(self, caller: Caller, seen: set[str]) -> Chain:
        key = caller.access_key_id
        assert key is not None
        session = self.get(key)
        acts_as = session.acts_as if session is not None else None
        if session is not None and caller.issuer_arn and acts_as and caller.issuer_arn != acts_as:
            session = None  # a reused or placeholder key (sample data does that): not this session's parent
        if session is None:
            return _unknown(caller, f"key:{key}")
        seen.add(key)
        chain = self._extend(session.caller(), session.role_arn, session.requested_source_identity,
                             session.shared_event_id, session.created, seen)
        if chain.resolved and self._steps:
            self._steps[-1].resolved[key] = chain
        return chain

    def _extend(
        self, caller: Caller, acts_as: str | None, requested: str | None, shared: str | None, created: float | None,
        seen: set[str],
    ) -> Chain:
        behind = self._behind(caller, shared, created, seen)
        inherited = behind.source_identity
        return replace(
            behind,
            hops=[*behind.hops, acts_as] if acts_as else list(behind.hops),
            source_identity=requested or inherited,
            # STS refuses to change a session's source identity down a chain: a change is an
            # attempt (denied) or a link that is not what it claims.
            source_identity_changed=behind.source_identity_changed or bool(requested and inherited and requested != inherited),
        )

    def _behind(self, caller: Caller, shared: str | None, created: float | None, seen: set[str]) -> Chain:
        """Who stands behind ``caller``: its session's chain when it acts with one, else itself."""
        if caller.chained:
            key = caller.access_key_id
            if key is None or key in seen or len(seen) >= MAX_HOPS:
                chain = _unknown(caller, None)
            else:
                chain = self._memo(key) or self._walk(caller, seen)
        elif caller.type == FEDERATED:
            # GetFederationToken takes long-term credentials only: the user or root that asked
            # (sessionIssuer) is the origin, and the federated user the one hop.
            issuer = caller.issuer_arn
            chain = Chain(issuer, caller.issuer_type, account_of(issuer), [caller.arn] if caller.arn else [], issuer is not None)
        elif caller.type == THIN:
            blocker = f"shared:{shared}" if shared else None
            chain = Chain(None, THIN, caller.account_id, [], False, blocker, created, caller.account_id)
        else:
            chain = Chain(caller.arn, caller.type, caller.account_id, [], caller.arn is not None,
                          origin_provider=caller.identity_provider)
        if caller.on_behalf_of:
            # An Identity Center user's session: that person stands behind it, whoever holds the role.
            chain = replace(chain, origin_arn=caller.on_behalf_of, origin_type=IDENTITY_CENTER, origin_account=None,
                            origin_provider=caller.identity_store_arn)
        return chain


def _unknown(caller: Caller, blocker: str | None) -> Chain:
    """The chain of a session whose issuance is not known (yet): what the call itself tells."""
    since, account = (caller.created, account_of(caller.issuer_arn)) if blocker else (None, None)
    if caller.type == ROOT and not caller.assumed_root:
        # Root's own temporary credentials (console, GetSessionToken) look like an AssumeRoot
        # session's: until an AssumeRoot names the key, root itself stands behind them.
        return Chain(caller.arn, caller.type, caller.account_id, [], False, blocker, since, account,
                     source_identity=caller.source_identity)
    hops = [caller.issuer_arn] if caller.issuer_arn else []
    return Chain(None, None, None, hops, False, blocker, since, account, source_identity=caller.source_identity)
