"""The behaviour baseline beside the enrichment (forwarder/baseline): judges each step's documents, and stages what they teach.

Documents are noted as the step makes them and judged once at its end, in event-time order,
against one read of the store for the whole step (``StateStore.get_many``: one round trip),
layered with what the steps still in work staged and what this step learnt from its earlier
events. What they teach goes into the step's ``Writes.baseline`` only, as deltas that the store
merges inside the commit (forwarder/baseline/profile.py): a step that fails leaves no trace, and
one seen twice (in work and committed) counts once.

Keys of kind ``baseline``: ``g`` (the whole baseline), ``s|<subject>``, ``r|<role>``,
``p|<subject>|<role>``, ``k|<access key>`` (where a session was issued, and the networks its
calls came from), ``a|<account>`` (since when the account's trail is read).
"""

from __future__ import annotations

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
from forwarder.enrich.chains import MAX_SESSION_SECONDS
from forwarder.enrich.identity import account_of
from forwarder.enrich.policy import Policy
from forwarder.record import epoch, mapping, text
from forwarder.state.base import StateStore

if TYPE_CHECKING:
    from forwarder.enrich.step import Step

KIND = "baseline"
EVERYTHING = "g"


@dataclass(slots=True)
class _Work:
    """One step's part: the documents to judge, then what they taught (staged until it commits)."""

    step: Step
    learnt: dict[str, Profile] = field(default_factory=dict)


class Baseline:
    def __init__(self, config: Config, store: StateStore, policy: Policy, steps: Sequence[Step]) -> None:
        settings = config.baseline
        self._store = store
        self._policy = policy
        self._steps = steps  # the enricher's steps in work
        self._zone = ZoneInfo(settings.timezone or config.roles.human.business_hours.timezone)
        volume = settings.volume
        self.rules = Rules(settings.learning_days * DAY, settings.min_days_seen, volume.days, volume.floor,
                           volume.factor, volume.spread, volume.sample, str(self._zone))
        self._bounds = Bounds(settings.max_values, settings.retention_days * DAY, volume.days, volume.sample)
        # A session key is remembered as long as its credentials can be used, with the chains' margin.
        self._key_bounds = Bounds(settings.max_values, MAX_SESSION_SECONDS + config.chains.session_margin_seconds, 0, 1)
        self.geo = Geo(settings.mmdb)
        self._work: dict[int, _Work] = {}
        self._issued: dict[str, tuple[Issuance | None, dict[str, Any]]] = {}  # per settle: a key's issuance

    # -- the enricher's hooks ----------------------------------------------------------------

    def settle(self, step: Step, documents: Sequence[Document], final: set[int]) -> list[tuple[Document, int]]:
        """Judge the step's documents (those it enriched) and stage what they teach into its
        writes: the issuances first (a key's calls all come after it), each group in event-time
        order. Returns the documents whose verdict is not firm, with their event time: an earlier
        event read later could still change it (see ``judge.flags``); not those of ``final``
        (ids of documents whose wait is over)."""
        self._work = {number: work for number, work in self._work.items()
                      if any(work.step is s for s in self._steps)}
        if not documents:
            return []
        work = self._work.get(id(step))
        if work is None or work.step is not step:
            work = self._work[id(step)] = _Work(step)
        issuances: list[_Item] = []
        calls: list[tuple[Document, str, tuple[Origin, str | None, int | None]]] = []
        earliest: dict[str, str] = {}  # account -> its earliest eventTime in the step
        for document in documents:
            record, assumerole = document.record, document.assumerole
            when = record.get("eventTime") or record.get("@timestamp")
            if assumerole is None or type(when) is not str:
                continue
            account = text(record.get("recipientAccountId")) or ""
            if when < earliest.get(account, "~"):
                earliest[account] = when
            where = self._source(record, assumerole)
            if record.get("eventSource") == STS and record.get("eventName") in ISSUANCE_EVENTS:
                item = _item(document, where, None)
                if item is not None:
                    issuances.append(item)
                continue
            session = assumerole.get("session")
            key = session.get("access_key_id") if type(session) is dict else None
            if type(key) is str and key:
                calls.append((document, key, where))
        keys = {key for item in issuances if isinstance(item, _Issued) for key in item.keys}
        keys |= {f"k|{key}" for _, key, _ in calls}
        keys |= {f"a|{account}" for account in earliest}
        keys |= {f"a|{issuer}" for document, _, _ in calls if (issuer := _unresolved_issuer(document.assumerole, document.record))}
        views = self._views(keys, step)
        # Since when each account's trail is read (for unknown issuances): its earliest event.
        for account, when in earliest.items():
            moment = epoch(when)
            if moment is not None and _moves(views.get(f"a|{account}"), int(moment)):
                for into in (views, work.learnt):
                    _join_into(into, f"a|{account}", Profile.at(int(moment)))
        self._issued = {}
        unsettled: list[tuple[Document, int]] = []
        self._judge(sorted(issuances, key=_order), views, work, final, unsettled)
        self._judge(sorted(filter(None, (self._call(call, views) for call in calls)), key=_order), views, work,
                    final, unsettled)
        for key, learnt in work.learnt.items():
            step.writes.baseline[key] = profile.dump(learnt, self._key_bounds if key.startswith("k|") else self._bounds)
        return unsettled

    def _judge(self, items: list[_Item], views: dict[str, Profile], work: _Work, final: set[int],
               unsettled: list[tuple[Document, int]]) -> None:
        for item in items:
            item.judge(self, views)
            if not item.firm and id(item.document) not in final:
                unsettled.append((item.document, item.moment))
            for key, observed in item.taught.items():
                _join_into(views, key, observed)
                known = work.learnt.get(key)
                if known is None:
                    work.learnt[key] = observed  # the item's own, held by nothing else: no copy
                else:
                    known.absorb(observed)
                self._issued.pop(key, None)

    def _call(self, call: tuple[Document, str, tuple[Origin, str | None, int | None]],
              views: dict[str, Profile]) -> _Item | None:
        """A call's fields at once when it comes from where its key was issued, or its issuance
        is unknown but its chain resolved (most calls); else the item to judge in event-time order."""
        document, key, (where, _, _) = call
        issued, issued_from = self.issuance(key, views)
        if (not where.public or where.network == issued.network) if issued is not None else (
                (document.assumerole.get("chain") or {}).get("resolved")):  # resolved: no key of unknown origin
            # One issued_from mapping for all the step's calls with the key: no one changes a document's fields.
            document.assumerole["session"].update(issued_from=issued_from, new_network=False, unknown_issuance=False,
                                                  reasons=[])
            return None
        return _item(document, call[2], key)

    def _source(self, record: dict[str, Any], assumerole: dict[str, Any]) -> tuple[Origin, str | None, int | None]:
        where = origin(text(record.get("sourceIPAddress")))
        country, as_number = self.geo.locate(where.ip) if where.ip and where.public else (None, None)
        assumerole["source"] = {"network": where.network, "country": country, "as_number": as_number}
        return where, country, as_number

    def forget_before(self, moment: float) -> int:
        return self._store.expire(KIND, moment)

    # -- reading ---------------------------------------------------------------------------------

    def _views(self, keys: set[str], step: Step) -> dict[str, Profile]:
        """The baseline as the store holds it, with what the other steps in work staged."""
        views: dict[str, Profile] = {}
        for key, value in self._store.get_many(KIND, keys).items():
            stored = profile.readable(value)
            if stored is not None:
                views[key] = stored
        for work in self._work.values():
            if work.step is not step:
                for key in keys & work.learnt.keys():
                    _join_into(views, key, work.learnt[key])
        return views

    def issuance(self, key: str, views: dict[str, Profile]) -> tuple[Issuance | None, dict[str, Any]]:
        """Where ``key`` was issued, and its ``issued_from`` fields: read once per step and key."""
        found = self._issued.get(key)
        if found is None:
            issued = Issuance.of(views.get(f"k|{key}"))
            found = self._issued[key] = (issued, issued.fields() if issued else NO_ISSUANCE)
        return found

    def local(self, moment: int) -> datetime:
        return datetime.fromtimestamp(moment, UTC).astimezone(self._zone)

    def trail_read(self, account: str) -> bool:
        return self._policy.trail_read(account)


def _item(document: Document, where: tuple[Origin, str | None, int | None], key: str | None) -> _Item | None:
    """An issuance (``key`` None) or a call with ``key``, to judge."""
    record, assumerole = document.record, document.assumerole
    moment = epoch(record.get("eventTime") or record.get("@timestamp"))
    if assumerole is None or moment is None:
        return None
    origin_, country, as_number = where
    base = (int(moment), text(record.get("eventID")) or "", text(record.get("recipientAccountId")) or "",
            origin_.network, country, as_number, origin_.public, document)
    if key is not None:
        return _Used(*base, key)
    event = text(record.get("eventName"))
    return _Issued(*base, event in ROLE_EVENTS, origin_.ip, agent_family(text(record.get("userAgent"))))


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
    """Views and a step's own deltas grow unbounded: the store's merge cuts them to the bounds."""
    known = profiles.get(key)
    if known is None:
        profiles[key] = observed.copy()
    else:
        known.absorb(observed)


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
    """A credential issuance: a role assumption is judged against the baseline and teaches it;
    every issuance teaches its key where it was issued."""

    roles: bool = False
    ip: str | None = None
    agent: str | None = None
    _pair: tuple[str, str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        fields = self.assumerole
        role = (fields.get("role") or {}).get("arn")
        subject = subject_of(fields)
        self._pair = (subject, role) if self.roles and subject and role else None

    @property
    def keys(self) -> set[str]:
        """The values its judgement reads."""
        if not self._pair:
            return set()
        subject, role = self._pair
        return {EVERYTHING, f"s|{subject}", f"r|{role}", f"p|{subject}|{role}"}

    def judge(self, baseline: Baseline, views: dict[str, Profile]) -> None:
        fields = self.assumerole
        session = fields.get("session") or {}
        key = session.get("access_key_id")
        if key and not fields.get("failed"):
            issued = Profile.at(self.moment)
            for name, value in (("ip", self.ip), ("net", self.network), ("cc", self.country), ("ua", self.agent),
                                ("as", str(self.as_number) if self.as_number else None),
                                ("vpce", text(self.record.get("vpcEndpointId")))):
                if value:
                    issued.fix(name, value, self.moment)
            self.taught[f"k|{key}"] = issued
        if not self.roles:
            return
        if self._pair is None:
            fields["baseline"] = None
            return
        subject, role = self._pair
        local = baseline.local(self.moment)
        seen = Assumption(subject, role, self.moment, local.toordinal(), local, self.network, self.country,
                          self.as_number, self.agent, text(self.record.get("awsRegion")), event_hash(self.order),
                          bool((fields.get("role") or {}).get("service_linked")))
        fields["baseline"], self.firm = flags(seen, Views(views.get(f"p|{subject}|{role}"), views.get(f"s|{subject}"),
                                                          views.get(f"r|{role}"), views.get(EVERYTHING)), baseline.rules)
        # Only successful assumptions are behaviour, and each call once: its primary copy.
        if fields.get("failed") or not fields.get("primary", True):
            return
        self._teach(seen, views.get(EVERYTHING))

    def _teach(self, seen: Assumption, everything: Profile | None) -> None:
        pair, subject, role = Profile.at(seen.moment), Profile.at(seen.moment), Profile.at(seen.moment)
        pair.count(seen.day, self.order, seen.moment)
        for observed in (pair, subject, role):
            observed.see("day", str(seen.day), seen.moment)
        for facet, value in (("net", seen.network), ("cc", seen.country), ("how", seen.hour), ("ua", seen.agent),
                             ("reg", seen.region), ("as", str(seen.as_number) if seen.as_number else None)):
            if value:
                pair.see(facet, value, seen.moment)
        for facet, value in (("role", seen.role), ("net", seen.network), ("cc", seen.country), ("how", seen.hour)):
            if value:
                subject.see(facet, value, seen.moment)
        role.see("subj", seen.subject, seen.moment)
        self.taught.update({f"p|{seen.subject}|{seen.role}": pair, f"s|{seen.subject}": subject, f"r|{seen.role}": role})
        if _moves(everything, seen.moment):
            self.taught[EVERYTHING] = Profile.at(seen.moment)


@dataclass(slots=True)
class _Used(_Item):
    """A call made with a session's key: compared with where the key was issued."""

    key: str = ""

    @property
    def _issuer(self) -> str | None:
        """The session's role (or the user, or root, whose temporary credentials they are)."""
        return _issuer_arn(self.record)

    def judge(self, baseline: Baseline, views: dict[str, Profile]) -> None:
        session = self.assumerole["session"]
        issued, issued_from = baseline.issuance(self.key, views)
        reasons: list[str] = []
        session.update(issued_from=issued_from, new_network=False, unknown_issuance=False, reasons=reasons)
        known = views.get(f"k|{self.key}")
        call = Call(self.key, self._issuer, self.moment, self.network, self.public, self.country, self.as_number,
                    text(self.record.get("vpcEndpointId")))
        if issued is not None:
            if elsewhere(call, issued) and call.network:
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
