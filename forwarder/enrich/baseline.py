"""The behaviour baseline beside the enrichment (forwarder/baseline): judges each step's documents, and stages what they teach.

Documents are noted as the step makes them and judged once at its end, in event-time order,
against one read of the store for the whole step (``StateStore.get_many``: one round trip),
layered with what the steps still in work staged and what this step learnt from its earlier
events. What they teach goes into the step's ``Writes.baseline`` only, as deltas that the store
merges inside the commit (forwarder/baseline/profile.py): a step that fails leaves no trace, and
one seen twice (in work and committed) counts once.

Keys of kind ``baseline``: ``g`` (the whole baseline), ``s|<subject>``, ``r|<role>``,
``p|<subject>|<role>``, ``k|<access key>`` (the networks other than its issuance's that a session's
calls came from, and whether its issuance is unknown: flagged once each), ``a|<account>`` (since
when the account's trail is read). Where a session was issued is the session's own
(forwarder/enrich/chains.py): the calls read it with their chain, and most steps read nothing
else here (calls from where their key was issued, no role assumption).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from forwarder.baseline import profile
from forwarder.baseline.geo import Geo
from forwarder.baseline.judge import (
    DAY, NO_ISSUANCE, Assumption, Call, Issuance, Rules, Views, elsewhere, flags, moved_reason, unknown_reason,
)
from forwarder.baseline.network import Origin, agent_family, origin
from forwarder.baseline.profile import Bounds, Profile, event_hash
from forwarder.config import Config
from forwarder.document import Document
from forwarder.enrich.assumption import ISSUANCE_EVENTS, ROLE_EVENTS, STS
from forwarder.enrich.chains import MAX_SESSION_SECONDS, Sessions
from forwarder.enrich.identity import account_of
from forwarder.enrich.policy import Policy
from forwarder.record import epoch, mapping, text
from forwarder.state.base import StateStore

if TYPE_CHECKING:
    from forwarder.enrich.step import Step

KIND = "baseline"
EVERYTHING = "g"
_KEPT = 65536  # issuances and account trails remembered in memory
_ASK_AGAIN = 64


@dataclass(slots=True)
class _Work:
    """One step's part: the documents to judge, then what they taught (staged until it commits)."""

    step: Step
    learnt: dict[str, Profile] = field(default_factory=dict)


class Baseline:
    def __init__(self, config: Config, store: StateStore, policy: Policy, steps: Sequence[Step],
                 sessions: Sessions) -> None:
        settings = config.baseline
        self._store = store
        self._policy = policy
        self._steps = steps  # the enricher's steps in work
        self._sessions = sessions
        self._zone = ZoneInfo(settings.timezone or config.roles.human.business_hours.timezone)
        volume = settings.volume
        self.rules = Rules(settings.learning_days * DAY, settings.min_days_seen, volume.days, volume.floor,
                           volume.factor, volume.spread, volume.sample, str(self._zone))
        self._bounds = Bounds(settings.max_values, settings.retention_days * DAY, volume.days, volume.sample)
        # A session key is remembered as long as its credentials can be used, with the chains' margin.
        self._key_bounds = Bounds(settings.max_values, MAX_SESSION_SECONDS + config.chains.session_margin_seconds, 0, 1)
        self.geo = Geo(settings.mmdb)
        self._work: dict[int, _Work] = {}
        # A key's issuance, once its session is known: it never changes.
        self._issued: dict[str, tuple[Issuance, dict[str, Any]]] = {}
        # Keys whose session was not known, asked again once this process stages one, and every
        # _ASK_AGAIN steps (another process may have stored it since).
        self._absent: set[str] = set()
        self._settled = 0
        self._sources: dict[str, tuple[tuple[Origin, str | None, int | None], dict[str, Any]]] = {}
        # Since when an account's trail is read, as last read or committed here (for whether a step
        # moves it: a stale one only writes a moment again, which the merge takes once).
        self._trails: dict[str, Profile] = {}

    # -- the enricher's hooks ----------------------------------------------------------------

    def settle(self, step: Step, documents: Sequence[Document], final: set[int]) -> list[tuple[Document, int]]:
        """Judge the step's documents (those it enriched) and stage what they teach into its
        writes: the role assumptions, then the calls not from where their key was issued, each
        group in event-time order. Returns the documents whose verdict is not firm, with their event time: an earlier
        event read later could still change it (see ``judge.flags``); not those of ``final``
        (ids of documents whose wait is over)."""
        live = {id(s) for s in self._steps}  # a _Work holds its step alive: the id is that step's alone
        if any(number not in live for number in self._work):  # a step discarded: what it staged never counts
            self._work = {number: work for number, work in self._work.items() if number in live}
        if not documents:
            return []
        work = self._work.get(id(step))
        if work is None or work.step is not step:
            work = self._work[id(step)] = _Work(step)
        self._settled += 1
        if self._settled % _ASK_AGAIN == 0 or len(self._absent) >= _KEPT:
            self._absent.clear()
        else:
            self._absent.difference_update(step.sessions)
        issuances: list[_Item] = []
        calls: list[_Item] = []  # those not from where their key was issued: judged one by one
        earliest: dict[str, str] = {}  # account -> its earliest eventTime in the step
        for document in documents:
            assumerole = document.assumerole
            if assumerole is None:
                continue
            record = document.record
            when = record.get("eventTime") or record.get("@timestamp")
            if type(when) is not str:
                continue
            account = record.get("recipientAccountId")
            if type(account) is not str:
                account = ""
            if when < earliest.get(account, "~"):
                earliest[account] = when
            where, assumerole["source"] = self._located(text(record.get("sourceIPAddress")))  # one mapping per address
            if record.get("eventSource") == STS and record.get("eventName") in ISSUANCE_EVENTS:
                # A role assumption is behaviour; every issuance's whereabouts are its session's.
                item = _item(document, where, None) if record.get("eventName") in ROLE_EVENTS else None
                if item is not None:
                    issuances.append(item)
                continue
            session = assumerole.get("session")
            key = session.get("access_key_id") if type(session) is dict else None
            if type(key) is str and key:
                item = self._call(document, session, key, where)
                if item is not None:
                    calls.append(item)
        keys = {key for item in issuances for key in item.reads}
        for item in calls:  # the networks already flagged for the key; for an unknown issuance, its account's trail
            keys |= item.reads
            if issuer := _unresolved_issuer(item.assumerole, item.record):
                keys.add(f"a|{issuer}")
        keys |= {f"a|{account}" for account in earliest if account not in self._trails}
        # The store's values as read (a delta they cover is not written), and the views of them.
        stored, views = self._views(keys, step) if keys else ({}, {})
        # Since when each account's trail is read (for unknown issuances): its earliest event.
        for account, when in earliest.items():
            moment, key = epoch(when), f"a|{account}"
            read = views.get(key)
            if read is not None:
                _remember(self._trails, account, read.copy())
            trail = read or self._trails.get(account)
            if moment is not None and _moves(trail, int(moment)):
                moved = Profile.at(int(moment))
                _join_into(work.learnt, key, moved)  # known here once it commits
                if read is None and trail is not None:
                    views[key] = trail.copy()
                _join_into(views, key, moved)
        unsettled: list[tuple[Document, int]] = []
        self._judge(sorted(issuances, key=_order), views, work, final, unsettled)
        self._judge(sorted(calls, key=_order), views, work, final, unsettled)
        for key, learnt in work.learnt.items():
            bounds = self._key_bounds if key.startswith("k|") else self._bounds
            known = stored.get(key)
            if known is None or not known.covers(learnt, bounds.sample):
                step.writes.baseline[key] = profile.dump(learnt, bounds)
        return unsettled

    def _judge(self, items: Sequence[_Item], views: dict[str, Profile], work: _Work, final: set[int],
               unsettled: list[tuple[Document, int]]) -> None:
        # What an item teaches joins the views only where a later item of the step reads it.
        readers = Counter(key for item in items for key in item.reads)
        for item in items:
            readers.subtract(item.reads)
            item.judge(self, views)
            if not item.firm and id(item.document) not in final:
                unsettled.append((item.document, item.moment))
            for key, observed in item.taught.items():
                if readers[key] > 0:
                    _join_into(views, key, observed)
                known = work.learnt.get(key)
                if known is None:
                    work.learnt[key] = observed  # the item's own, held by nothing else: no copy
                else:
                    known.absorb(observed)

    def _call(self, document: Document, session: dict[str, Any], key: str,
              where: tuple[Origin, str | None, int | None]) -> _Used | None:
        """A call's fields at once when it comes from where its key was issued, or its issuance
        is unknown but its chain resolved (most calls); else the item to judge in event-time order."""
        issued, quiet = self.issuance(key)
        network, _, as_number = where
        if not elsewhere(issued, network.public, network.network, as_number, text(document.record.get("vpcEndpointId"))) \
                if issued is not None else (document.assumerole.get("chain") or {}).get("resolved"):
            # The same fields for all the calls with the key (nothing changes a document's fields).
            session.update(quiet)
            return None
        item = _item(document, where, key)
        return item if isinstance(item, _Used) else None

    def _located(self, source: str | None) -> tuple[tuple[Origin, str | None, int | None], dict[str, Any]]:
        """A ``sourceIPAddress`` as an origin with its country and AS number, and as ``source`` fields."""
        found = self._sources.get(source or "")
        if found is None:
            where = origin(source)
            country, as_number = self.geo.locate(where.ip) if where.ip and where.public else (None, None)
            fields = {"network": where.network, "country": country, "as_number": as_number}
            found = _remember(self._sources, source or "", ((where, country, as_number), fields))
        return found

    def forget_before(self, moment: float) -> int:
        return self._store.expire(KIND, moment)

    # -- reading ---------------------------------------------------------------------------------

    def _views(self, keys: set[str], step: Step) -> tuple[dict[str, Profile], dict[str, Profile]]:
        """The baseline as the store holds it, and as the views: with what the other steps in
        work staged (joined into copies, ``_join_into``: the values as read stay as read)."""
        stored: dict[str, Profile] = {}
        for key, value in self._store.get_many(KIND, keys).items():
            known = profile.readable(value)
            if known is not None:
                stored[key] = known
        views = dict(stored)
        for work in self._work.values():
            if work.step is not step:
                for key in keys & work.learnt.keys():
                    _join_into(views, key, work.learnt[key])
        return stored, views

    def issuance(self, key: str) -> tuple[Issuance | None, dict[str, Any]]:
        """Where ``key`` was issued, as its session remembers it, and the session fields of a call
        with it that raises no flag."""
        found = self._issued.get(key)
        if found is not None:
            return found
        session = self._sessions.get(key) if key not in self._absent else None
        if session is None or session.source_ip is None:
            self._absent.add(key)
            return None, _QUIET_UNKNOWN  # not remembered: its issuance may still be read
        (where, country, as_number), _ = self._located(session.source_ip)
        issued = Issuance(where.ip, where.network, country, as_number, session.vpc_endpoint_id, session.agent_family)
        return _remember(self._issued, key, (issued, _quiet(issued.fields())))

    def committed(self, step: Step) -> None:
        """The step's writes are durable: the account trails it moved are known as moved."""
        work = self._work.pop(id(step), None)
        if work is None or work.step is not step:
            return
        for key, learnt in work.learnt.items():
            if key.startswith("a|"):
                trail = self._trails.get(key[2:])
                if trail is None:
                    _remember(self._trails, key[2:], learnt.copy())
                else:
                    trail.absorb(learnt)

    def local(self, moment: int) -> datetime:
        return datetime.fromtimestamp(moment, UTC).astimezone(self._zone)

    def trail_read(self, account: str) -> bool:
        return self._policy.trail_read(account)


def _item(document: Document, where: tuple[Origin, str | None, int | None], key: str | None) -> _Item | None:
    """A role assumption (``key`` None) or a call with ``key``, to judge."""
    record, assumerole = document.record, document.assumerole
    moment = epoch(record.get("eventTime") or record.get("@timestamp"))
    if assumerole is None or moment is None:
        return None
    origin_, country, as_number = where
    base = (int(moment), text(record.get("eventID")) or "", text(record.get("recipientAccountId")) or "",
            origin_.network, country, as_number, origin_.public, document)
    if key is not None:
        return _Used(*base, key)
    return _Issued(*base, agent_family(text(record.get("userAgent"))))


def _quiet(issued_from: dict[str, Any]) -> dict[str, Any]:
    return {"issued_from": issued_from, "new_network": False, "unknown_issuance": False, "reasons": ()}


_QUIET_UNKNOWN = _quiet(NO_ISSUANCE)


def _remember(kept: dict[str, Any], key: str, value: Any) -> Any:
    if len(kept) >= _KEPT and key not in kept:
        kept.clear()  # the next reads fill it again
    kept[key] = value
    return value


def _order(item: _Item) -> tuple[int, str]:
    return item.moment, item.order


def _unresolved_issuer(assumerole: dict[str, Any] | None, record: dict[str, Any]) -> str | None:
    """The account that issued the key of a call whose chain is unresolved (a key of unknown origin)."""
    if assumerole is None or (assumerole.get("chain") or {}).get("resolved"):
        return None
    return account_of(_issuer_arn(record)) or text(mapping(record.get("userIdentity")).get("accountId"))


def _moves(start: Profile | None, moment: int) -> bool:
    """Whether a value read only for its start (the whole baseline's, an account trail's) is to be
    written for ``moment``: when it begins earlier, or to keep the value from expiring (once a
    day: its retention runs from its latest observation). Not for every step: a merge each."""
    return start is None or moment < start.first or moment > start.last + DAY


def _join_into(profiles: dict[str, Profile], key: str, observed: Profile) -> None:
    """Views and a step's own deltas grow unbounded: the store's merge cuts them to the bounds.
    A new profile, not a change to the one there (a view may be the value as the store holds it)."""
    known = profiles.get(key)
    joined = (known or observed).copy()
    if known is not None:
        joined.absorb(observed)
    profiles[key] = joined


@dataclass(slots=True)
class _Item:
    moment: int
    order: str
    account: str
    network: str | None
    country: str | None
    as_number: int | None
    public: bool
    document: Document
    taught: dict[str, Profile] = field(default_factory=dict, init=False)
    firm: bool = field(default=True, init=False)  # no earlier event read later can change the fields
    reads: set[str] = field(default_factory=set, init=False)  # the values its judgement reads

    @property
    def record(self) -> dict[str, Any]:
        return self.document.record

    @property
    def assumerole(self) -> dict[str, Any]:
        assert self.document.assumerole is not None  # only enriched documents are judged
        return self.document.assumerole

    def judge(self, baseline: Baseline, views: dict[str, Profile]) -> None:
        """Set the document's fields and ``firm``; what it teaches goes into ``taught``."""
        raise NotImplementedError


@dataclass(slots=True)
class _Issued(_Item):
    """A role assumption: judged against the baseline, and what it teaches it."""

    agent: str | None = None
    _pair: tuple[str, str] | None = field(default=None, init=False)
    _keys: tuple[str, str, str] = field(default=("", "", ""), init=False)  # the pair's, its subject's, its role's

    def __post_init__(self) -> None:
        fields = self.assumerole
        role = (fields.get("role") or {}).get("arn")
        subject = subject_of(fields)
        if subject and role:
            self._pair = (subject, role)
            self._keys = (f"p|{subject}|{role}", f"s|{subject}", f"r|{role}")
            self.reads = {EVERYTHING, *self._keys}

    def judge(self, baseline: Baseline, views: dict[str, Profile]) -> None:
        fields = self.assumerole
        if self._pair is None:
            fields["baseline"] = None
            return
        subject, role = self._pair
        pair, of_subject, of_role = self._keys
        local = baseline.local(self.moment)
        seen = Assumption(subject, role, self.moment, local.toordinal(), local, self.network, self.country,
                          self.as_number, self.agent, text(self.record.get("awsRegion")), event_hash(self.order),
                          bool((fields.get("role") or {}).get("service_linked")))
        everything = views.get(EVERYTHING)
        fields["baseline"], self.firm = flags(seen, Views(views.get(pair), views.get(of_subject), views.get(of_role), everything),
                                              baseline.rules)
        # Only successful assumptions are behaviour, and each call once: its primary copy.
        if fields.get("failed") or not fields.get("primary", True):
            return
        self._teach(seen, everything)

    def _teach(self, seen: Assumption, everything: Profile | None) -> None:
        m, day = seen.moment, str(seen.day)
        where = {"day": day, "net": seen.network, "cc": seen.country, "how": seen.hour}
        pair = _once(m, where | {"ua": seen.agent, "reg": seen.region, "as": str(seen.as_number) if seen.as_number else None})
        pair.count(seen.day, self.order, m)
        of_pair, of_subject, of_role = self._keys
        self.taught.update({of_pair: pair, of_subject: _once(m, where | {"role": seen.role}),
                            of_role: _once(m, {"day": day, "subj": seen.subject})})
        if _moves(everything, m):
            self.taught[EVERYTHING] = Profile.at(m)


def _once(moment: int, facets: dict[str, str | None]) -> Profile:
    """What one observation teaches: each of ``facets``' values (those it has) first seen at
    ``moment``, and last seen on its (UTC) day: the last second of that day, so that the same
    values seen again that day change nothing and are not written again (``Profile.covers``).
    A judgement reads only when values were first seen; retention and eviction, the last day."""
    until = moment - moment % DAY + DAY - 1
    return Profile(moment, until, {facet: {value: [moment, until]} for facet, value in facets.items() if value})


@dataclass(slots=True)
class _Used(_Item):
    """A call made with a session's key: compared with where the key was issued."""

    key: str = ""

    def __post_init__(self) -> None:
        self.reads = {f"k|{self.key}"}

    @property
    def _issuer(self) -> str | None:
        """The session's role (or the user, or root, whose temporary credentials they are)."""
        return _issuer_arn(self.record)

    def judge(self, baseline: Baseline, views: dict[str, Profile]) -> None:
        session = self.assumerole["session"]
        issued, quiet = baseline.issuance(self.key)
        reasons: list[str] = []
        session.update(quiet, reasons=reasons)
        known = views.get(f"k|{self.key}")
        call = Call(self.key, self._issuer, self.moment, self.network, self.public, self.country, self.as_number,
                    text(self.record.get("vpcEndpointId")))
        if issued is not None:
            if call.network and elsewhere(issued, call.public, call.network, call.as_number, call.vpc_endpoint_id):
                taught = self.taught.setdefault(f"k|{self.key}", Profile.at(self.moment))
                taught.see("net", call.network, self.moment)
                if known is None or not known.seen_before("net", call.network, self.moment):
                    session["new_network"], self.firm = True, False
                    reasons.append(moved_reason(call, issued))
            return
        if (self.assumerole.get("chain") or {}).get("resolved"):
            return  # the chain is known (a link kept elsewhere): not a key of unknown origin
        issuer = _unresolved_issuer(self.assumerole, self.record)
        read = views.get(f"a|{issuer}") if issuer else None
        created = epoch(mapping(mapping(mapping(self.record.get("userIdentity")).get("sessionContext"))
                                .get("attributes")).get("creationDate"))
        # Issued after the account's trail was first read: its issuance should have been read too.
        latest_issue = int(created) if created is not None else self.moment - MAX_SESSION_SECONDS
        if issuer is None or read is None or read.first >= latest_issue or not baseline.trail_read(issuer):
            return
        taught = self.taught.setdefault(f"k|{self.key}", Profile.at(self.moment))
        taught.see("unk", "1", self.moment)
        if known is None or not known.seen_before("unk", "1", self.moment):  # once per key
            session["unknown_issuance"], self.firm = True, False
            reasons.append(unknown_reason(call, issuer, read.first))


def subject_of(assumerole: dict[str, Any]) -> str | None:
    """Who the baseline learns an assumption under: the chain's origin where it is resolved, else
    the caller; a role session by its role (``job-77`` and ``job-78`` are one automation)."""
    chain = assumerole.get("chain") or {}
    origin_arn = (chain.get("origin") or {}).get("arn")
    if chain.get("resolved") and origin_arn:
        return str(origin_arn)
    hops = chain.get("hops") or []
    caller = assumerole.get("caller") or {}
    if caller.get("type") == "AssumedRole" and len(hops) >= 2:
        return str(hops[-2])  # the role of the calling session, as its sessionIssuer names it
    if caller.get("arn"):
        return str(caller["arn"])
    return f"account {caller['account_id']}" if caller.get("account_id") else None


def _issuer_arn(record: dict[str, Any]) -> str | None:
    identity = mapping(record.get("userIdentity"))
    return text(mapping(mapping(identity.get("sessionContext")).get("sessionIssuer")).get("arn")) or text(identity.get("arn"))
