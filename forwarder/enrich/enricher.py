"""Turns records into enriched documents: selection, duplicates, chains, and the hold-back.

Order does not matter: a call whose session is not known yet is held back (durably, in the
state store) until its parent arrives or the wait ends, measured in the event time of the
record's own account, never the wall clock. In batch mode the wait ends with the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import heapq
from itertools import repeat
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
import orjson

from forwarder.baseline.network import agent_family
from forwarder.config import Config
from forwarder.document import Document
from forwarder.enrich.baseline import Baseline
from forwarder.enrich.assumption import ISSUANCE_EVENTS, STS, assumption_fields, is_issuance, read_assumption
from forwarder.enrich.chains import Chain, Session, Sessions
from forwarder.enrich.identity import THIN, caller_of, temporary
from forwarder.enrich.policy import Policy
from forwarder.record import Undecodable, decode, epoch, mapping, parse_expiration, text
from forwarder.enrich.step import Step
from forwarder.errors import defect
from forwarder.state.base import Held, StateError, StateStore
from forwarder.usage import count_calls

INSIGHT = "AwsCloudTrailInsight"
# The account of a held verdict: released by the most advanced account's stream, so a flag on a
# quiet account's trail does not wait for that trail to move on.
VERDICTS = "*"


class _Identity(msgspec.Struct, gc=False):
    type: str | None = None
    accessKeyId: str | None = None
    accountId: str | None = None


class _Peek(msgspec.Struct, gc=False, rename={"timestamp": "@timestamp"}):
    """The few fields that decide what happens to a record, decoded without the rest."""

    eventID: str | None = None
    eventSource: str | None = None
    eventName: str | None = None
    eventType: str | None = None
    eventTime: str | None = None
    timestamp: str | None = None
    recipientAccountId: str | None = None
    userIdentity: _Identity | None = None


_peek = msgspec.json.Decoder(_Peek).decode


_Facts = tuple[bool, bool, str | None]  # an issuance, a call with temporary credentials, whose stream it is in
_NO_FACTS: _Facts = (False, False, None)
_Peeked = tuple[str, "msgspec.Raw | bytes", "_Peek | str", _Facts]  # source, record, its peek (or why none), facts


def _facts(peek: _Peek) -> _Facts:
    identity = peek.userIdentity
    assume = peek.eventSource == STS and peek.eventName in ISSUANCE_EVENTS
    session_call = identity is not None and temporary(identity.type, identity.accessKeyId)
    return assume, session_call, peek.recipientAccountId or (identity.accountId if identity else None)


@dataclass(slots=True)
class RecordError:
    source: str
    index: int
    reason: str
    raw: bytes


@dataclass(slots=True)
class Batch:
    """What a step produced."""

    step: Step = field(default_factory=Step)
    documents: list[Document] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)
    held: int = 0
    skipped: int = 0  # not selected (or Insights records)
    duplicates: int = 0
    total: int = 0
    seen_before: set[tuple[str, str]] = field(default_factory=set)  # (account, eventID) in the store's window
    calls: list[tuple[Document, str]] = field(default_factory=list)  # documents of calls with a temporary key
    final: set[int] = field(default_factory=set)  # ids of documents whose wait is over: shipped as judged


class Enricher:
    """Stateful: owns the session view, the per-account stream clocks and the duplicate filter.

    What it reads is layered: the current step's own learnings, those of steps still in work
    (newest first), then what is committed (memoised here, else the store). It writes only
    into the current step. Not thread-safe: the pipeline serialises calls.
    """

    def __init__(
        self, config: Config, store: StateStore, policy: Policy | None = None, *, batch: bool = False
    ) -> None:
        self.store = store
        self.policy = policy or Policy(config)
        self._steps: list[Step] = []  # begun, neither committed nor discarded; the last is current
        self.sessions = Sessions(store, config.chains.session_margin_seconds, self._steps)
        self._select = config.select
        self._window: float | None = None if batch else float(config.chains.hold_back_seconds)
        self._dedup_window = config.chains.dedup_window_seconds
        self._account_lag = config.chains.account_lag_seconds
        self._clock: dict[str, float] = {}
        self._wake: set[str] = set()
        self.baseline = Baseline(config, store, self.policy, self._steps, self.sessions) if config.baseline.enabled else None
        self._hold_verdicts = config.baseline.hold_verdicts
        self._verdicts: list[float] = []  # a heap: the deadlines of the verdicts this process held

    # -- steps -----------------------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Batch]:
        batch = Batch()
        self._steps.append(batch.step)
        try:
            yield batch
            if self.baseline is not None:  # the step's documents, judged against one read of the baseline
                self._hold_unsettled(batch, self.baseline.settle(batch.step, batch.documents, batch.final))
            # Those that ship now: a held record counts when it is released.
            count_calls(batch.step.writes, ((key, document.record) for document, key in batch.calls))
        except BaseException:
            self.discard(batch.step)
            raise

    def committed(self, step: Step, woken: set[str] | frozenset[str] = frozenset()) -> None:
        """The step's writes are durable: what it learnt becomes the committed view."""
        self._steps.remove(step)
        for account, moment in step.writes.clocks.items():
            if moment > self._clock.get(account, float("-inf")):
                self._clock[account] = moment
        self.sessions.committed(step)
        if self.baseline is not None:
            self.baseline.committed(step)
        # A link this very step was woken for and held on again (a key CloudTrail reports for
        # another role, say) is not woken once more by its own commit: no release every tick.
        self._wake = (self._wake - step.woken) | step.wake | (woken - step.woken)

    def discard(self, step: Step) -> None:
        """The step failed: forget it, and give back the held records it took."""
        if step in self._steps:
            self._steps.remove(step)
        try:
            self.store.unclaim(step.claimed)
        except StateError:
            pass  # the store is away: its claims lapse with their lease, and the records are released again

    # -- the stream clock, per account --------------------------------------------------

    def stream_time(self, account: str) -> float | None:
        known = self._clock.get(account)
        if known is None:
            data = self.store.get("stream", account)
            if data is not None:
                known = float(data)
                self._clock[account] = known
        for step in self._steps:
            staged = step.writes.clocks.get(account)
            if staged is not None and (known is None or staged > known):
                known = staged
        return known

    def _advance(self, step: Step, latest: dict[str, str]) -> None:
        for account, moment_text in latest.items():
            moment = epoch(moment_text)
            if moment is None:
                continue
            known = self.stream_time(account)
            if known is None or moment > known:
                step.writes.clocks[account] = moment

    # -- entry points ----------------------------------------------------------------------

    def enrich_records(self, source: str, records: Iterable[msgspec.Raw | bytes]) -> Batch:
        """Enrich the records of one object, then release what became due."""
        return self.enrich_entries(zip(repeat(source), records))

    def enrich_entries(self, entries: Iterable[tuple[str, msgspec.Raw | bytes]]) -> Batch:
        """Records, each with where it came from, as one step (an object; a replay of
        dead-lettered records from several places), then release what became due."""
        with self._begin() as batch:
            latest: dict[str, str] = {}
            peeked = self._peek_all(entries, batch)
            for index, (source, raw, peek, facts) in enumerate(peeked):
                batch.total += 1
                try:
                    self._one(source, index, raw, peek, facts, batch, latest)
                except StateError:
                    raise  # the store's fault, not the record's: the whole step fails
                except Exception as exc:  # noqa: BLE001 - a defect meeting one record: that record alone is dead-lettered
                    batch.errors.append(RecordError(source, index, f"record {index} could not be enriched: {defect(exc)}",
                                                    bytes(raw)))
            self._release_after(batch, latest)
        return batch

    def _release_after(self, batch: Batch, latest: dict[str, str]) -> None:
        self._advance(batch.step, latest)
        if self._window is None:
            return
        for account in latest:
            now = self.stream_time(account)
            if now is not None:
                self._reprocess(self._due_here(batch, account, now), batch, hold=False)
                self._reprocess(self.store.release_due(account, now), batch, hold=False)
        if self._verdicts and (moment := self._most_advanced()) is not None and moment > self._verdicts[0]:
            self._release_verdicts(moment, batch)  # only when one of this process's is due: no read per object

    def _due_here(self, batch: Batch, account: str, now: float) -> list[Held]:
        """This step's own holds whose wait the step's own records already ended."""
        step = batch.step
        due: list[Held] = []
        kept: list[Held] = []
        for held in step.writes.holds:
            (due if held.account == account and held.deadline is not None and held.deadline < now else kept).append(held)
        if due:
            step.writes.holds = kept
            for held in due:
                step.waiting[held.wait_on].remove(held)
            batch.held -= len(due)
        return due

    def release_due(self) -> Batch:
        """Held records whose wait is over by their account's stream clock (daemon ticks), and
        those whose missing link arrived while they were not in the store yet."""
        with self._begin() as batch:
            batch.step.woken = set(self._wake)
            for wait_on in sorted(batch.step.woken):
                self._reprocess(self.store.release(wait_on), batch, hold=True)
            for account in list(self._clock):
                now = self.stream_time(account)
                if now is not None:
                    self._reprocess(self.store.release_due(account, now), batch, hold=False)
            if self._clock:
                # An awaited account whose trail is not read never moves its own clock: its
                # records wait no longer than the lag allowed between accounts.
                stale = max(self._clock.values()) - self._account_lag
                self._reprocess(self.store.release_stale(stale), batch, hold=False)
            if (furthest := self._most_advanced()) is not None:
                self._release_verdicts(furthest, batch)  # another process's too
        return batch

    def flush(self) -> Batch:
        """End of input: everything still held ships as it is (batch mode, or shutdown of a backfill)."""
        with self._begin() as batch:
            self._reprocess(self.store.release_all(), batch, hold=False)
        return batch

    def forget_expired(self) -> int:
        """Drop the sessions that expired (margin included) before the most advanced account's
        stream, less the lag allowed between accounts; a quiet account does not hold it back."""
        if not self._clock:
            return 0
        self.store.forget_seen({account: now - self._dedup_window for account, now in self._clock.items()})
        if self.baseline is not None:
            self.baseline.forget_before(max(self._clock.values()) - self._account_lag)
        return self.sessions.forget_before(max(self._clock.values()) - self._account_lag)

    # -- one record ------------------------------------------------------------------------

    def _peek_all(self, entries: Iterable[tuple[str, msgspec.Raw | bytes]], batch: Batch) -> list[_Peeked]:
        """Each record's few fields (or why they could not be read), and in one read of the store
        the eventIDs of the duplicate window among them: the window is shared by every process."""
        peeked: list[_Peeked] = []
        asked: dict[str, list[str]] = {}
        for source, raw in entries:
            try:
                peek = _peek(raw)
            except (msgspec.MsgspecError, RecursionError) as exc:
                peeked.append((source, raw, str(exc), _NO_FACTS))
                continue
            facts = _facts(peek)
            peeked.append((source, raw, peek, facts))
            if peek.eventID is not None and peek.eventType != INSIGHT and self._selected(facts[0], facts[1]):
                asked.setdefault(facts[2] or "", []).append(peek.eventID)
        batch.seen_before = self.store.seen(asked)
        return peeked

    def _one(self, source: str, index: int, raw: msgspec.Raw | bytes, peek: _Peek | str, facts: _Facts, batch: Batch,
             latest: dict[str, str]) -> None:
        if isinstance(peek, str):
            # A field of an unexpected type, or a record that cannot be read at all: decode
            # tells which (and why), and the first takes the slow, type-checked path.
            problem = peek
            try:
                record = decode(bytes(raw))
            except Undecodable as bad:
                batch.errors.append(RecordError(source, index, f"record {index}: {bad.reason}", bytes(raw)))
                return
            self._full(source, record, bytes(raw), batch, note=problem)
            return
        assume, session_call, account = facts
        moment = peek.eventTime or peek.timestamp
        if account and moment and moment > latest.get(account, ""):
            latest[account] = moment
        if peek.eventType == INSIGHT or not self._selected(assume, session_call):
            batch.skipped += 1
            return
        if self._duplicate(peek.eventID, account, moment, batch):
            batch.duplicates += 1
            return
        data = bytes(raw)
        try:
            if not (assume or session_call):
                # Shipped as it is (select: all): its bytes go out unchanged, so they need only be
                # JSON a reader accepts (orjson refuses invalid UTF-8, lone surrogates, infinities,
                # runaway nesting) -- one parse, whose dict serves a sink that wants it.
                try:
                    record = orjson.loads(data)
                except orjson.JSONDecodeError:
                    decode(data)  # says why
                    raise Undecodable("not JSON") from None
                batch.documents.append(Document(record, None, source, data))
                return
            record = decode(data)  # enriched: every value is read, and must be written again
        except Undecodable as bad:  # the peek read only a few fields: the rest may still be broken
            batch.errors.append(RecordError(source, index, f"record {index}: {bad.reason}", data))
            return
        self._enrich(source, record, data, batch, hold=True)

    def _full(self, source: str, record: dict[str, Any], raw: bytes, batch: Batch, note: str) -> None:
        identity = mapping(record.get("userIdentity"))
        assume = is_issuance(record)
        session_call = temporary(text(identity.get("type")), text(identity.get("accessKeyId")))
        if not self._selected(assume, session_call):
            batch.skipped += 1
            return
        account = text(record.get("recipientAccountId")) or text(identity.get("accountId"))
        event_id = text(record.get("eventID"))
        if event_id is not None:  # not peeked, so not looked up with its object's others
            batch.seen_before |= self.store.seen({account or "": [event_id]})
        if self._duplicate(event_id, account, text(record.get("eventTime")), batch):
            batch.duplicates += 1
            return
        document = self._enrich(source, record, raw, batch, hold=True)
        if document is not None and document.assumerole is not None:
            document.assumerole.setdefault("notes", []).append(f"unexpected field type: {note}")

    def _selected(self, assume: bool, session_call: bool) -> bool:
        if self._select == "all":
            return True
        if self._select == "assumptions":
            return assume
        return assume or session_call

    def _duplicate(self, event_id: str | None, account: str | None, moment: str | None, batch: Batch) -> bool:
        if event_id is None:
            return False
        # The two copies of a cross-account call are distinct records, even where (as in
        # AWS's own documentation) they share an eventID: the recipient tells them apart.
        account = account or ""
        if (account, event_id) in batch.seen_before:
            return True
        for step in self._steps:
            marks = step.writes.seen.get(account)
            if marks is not None and event_id in marks:
                return True
        # Remembered from the point the account's stream had reached (one shared float, no
        # parse per record) until the stream is a window further on.
        position = self._clock.get(account)
        batch.step.writes.seen.setdefault(account, {})[event_id] = position if position is not None else (epoch(moment) or 0.0)
        return False

    # -- enrichment proper -------------------------------------------------------------------

    def _enrich(self, source: str, record: dict[str, Any], raw: bytes, batch: Batch, *, hold: bool) -> Document | None:
        identity = mapping(record.get("userIdentity"))
        # The temporary key the call was signed with (an issuance by a session is a call with it
        # too): counted once its document ships, so a held record counts once, when released.
        key = text(identity.get("accessKeyId"))
        used = key if temporary(text(identity.get("type")), key) else None
        if is_issuance(record):
            assumerole, chain, registered = self._assumption(record)
        elif used is not None:
            caller = caller_of(identity)
            chain = self.sessions.chain_of_call(caller)
            assumerole = {"session": {"access_key_id": caller.access_key_id}, "chain": chain.fields()}
            if caller.notes:
                assumerole["notes"] = list(caller.notes)
            registered = []
        else:
            batch.documents.append(Document(record, None, source, raw))
            return batch.documents[-1]
        if hold and self._should_hold(record, chain):
            assert chain.blocker is not None
            held = Held(chain.blocker, _awaited(record, chain), self._deadline(record, chain), source, raw)
            batch.step.writes.holds.append(held)
            batch.step.waiting.setdefault(held.wait_on, []).append(held)
            batch.held += 1
            document = None
        else:
            document = Document(record, assumerole, source, raw)
            batch.documents.append(document)
            if not hold:
                batch.final.add(id(document))
            if used is not None:
                batch.calls.append((document, used))
        for released in registered:
            self._release(released, batch)
        return document

    def _hold_unsettled(self, batch: Batch, unsettled: list[tuple[Document, int]]) -> None:
        """Hold back the documents whose baseline verdict an earlier event still to be read could
        change, until the most advanced account's stream is the hold-back window past them (in
        batch mode, to the end of the input): then they are judged again, with what arrived
        meanwhile, and ship. So objects read out of order within the window flag the same as in
        order, and a quiet trail does not keep a flag back."""
        if not unsettled or not self._hold_verdicts:
            return
        held_now: set[int] = set()
        now = self._most_advanced()
        for document, moment in unsettled:
            deadline = None if self._window is None else moment + self._window
            if deadline is not None and now is not None and now > deadline:
                continue  # whatever came before it within the window has been read
            held = Held(f"verdict:{document.event_id}", VERDICTS, deadline, document.source, document.raw)
            batch.step.writes.holds.append(held)
            batch.step.waiting.setdefault(held.wait_on, []).append(held)
            held_now.add(id(document))
            if deadline is not None:
                heapq.heappush(self._verdicts, deadline)
        if held_now:
            batch.documents = [document for document in batch.documents if id(document) not in held_now]
            batch.calls = [call for call in batch.calls if id(call[0]) not in held_now]
            batch.held += len(held_now)

    def _most_advanced(self) -> float | None:
        """The stream time of the account furthest on, steps in work included."""
        accounts = set(self._clock).union(*(step.writes.clocks for step in self._steps))
        return max((t for t in map(self.stream_time, accounts) if t is not None), default=None)

    def _release_verdicts(self, now: float, batch: Batch) -> None:
        while self._verdicts and self._verdicts[0] < now:
            heapq.heappop(self._verdicts)
        self._reprocess(self.store.release_due(VERDICTS, now), batch, hold=False)

    def _release(self, wait_on: str, batch: Batch) -> None:
        """A link arrived: the records waiting on it are enriched again, wherever they wait."""
        step = batch.step
        here = step.waiting.pop(wait_on, [])
        if here:  # held earlier in this same step (a child before its parent in one object)
            step.writes.holds = [h for h in step.writes.holds if h.wait_on != wait_on]
            batch.held -= len(here)
            self._reprocess(here, batch, hold=True)
        for other in self._steps:
            if other is not step and wait_on in other.waiting:
                other.wake.add(wait_on)  # not in the store yet: released once that step commits
        self._reprocess(self.store.release(wait_on), batch, hold=True)

    def _assumption(self, record: dict[str, Any]) -> tuple[dict[str, Any], Chain, list[str]]:
        facts = read_assumption(record)
        caller = caller_of(record.get("userIdentity"))
        if caller.type == THIN and facts.shared_event_id:
            # The role owner's copy names only the account: the caller's copy names the caller.
            full = self.sessions.get_caller(facts.shared_event_id)
            if full is not None:  # the notes stay this record's own
                caller = replace(full, notes=caller.notes)
        chain = self.sessions.chain_of_issuance(caller, facts.role_arn, facts.source_identity, facts.shared_event_id)
        registered: list[str] = []
        moment = epoch(record.get("eventTime") or record.get("@timestamp"))
        if caller.type != THIN and facts.shared_event_id:
            expires = moment + 12 * 3600 if moment is not None else None
            self.sessions.put_caller(facts.shared_event_id, caller, expires)
            registered.append(f"shared:{facts.shared_event_id}")
        if facts.access_key_id and not facts.failed:
            expiration = parse_expiration(mapping(mapping(record.get("responseElements")).get("credentials")).get("expiration"))
            chained = caller.chained
            session = Session(
                key=facts.access_key_id,
                role_arn=facts.role_arn,
                caller_arn=caller.arn,
                caller_type=caller.type,
                caller_account=caller.account_id,
                # The caller's own session, when the chain goes on through one.
                parent_key=caller.access_key_id if chained else None,
                parent_role_arn=caller.issuer_arn if chained else None,
                parent_created=caller.created if chained else None,
                source_identity=chain.source_identity,
                shared_event_id=facts.shared_event_id,
                created=moment,
                expires_at=expiration.timestamp() if expiration else None,
                requested_source_identity=facts.source_identity,
                caller_source_identity=caller.source_identity,
                caller_identity_provider=caller.identity_provider,
                caller_on_behalf_of=caller.on_behalf_of,
                caller_identity_store_arn=caller.identity_store_arn,
                source_ip=text(record.get("sourceIPAddress")),
                agent_family=agent_family(text(record.get("userAgent"))),
                vpc_endpoint_id=text(record.get("vpcEndpointId")),
            )
            if self.sessions.put(session):
                registered.append(f"key:{facts.access_key_id}")
        fields = assumption_fields(facts, caller, chain, self.policy)
        return fields, chain, registered

    def _should_hold(self, record: dict[str, Any], chain: Chain) -> bool:
        if chain.resolved or chain.blocker is None:
            return False
        if self._window is None:
            return True  # a batch resolves over the whole input
        if chain.blocker.startswith("shared:") and not (
            chain.origin_account and self.policy.organization.contains(chain.origin_account)
        ):
            return False  # the caller's copy lives in a trail outside the organization: it never comes
        since = _missing_since(record, chain)
        now = self.stream_time(_awaited(record, chain))
        # A session that began long before the point the stream has reached will never see
        # its parent arrive (it was logged before we started reading): ship it at once.
        return since is None or now is None or since >= now - self._window

    def _deadline(self, record: dict[str, Any], chain: Chain) -> float | None:
        if self._window is None:
            return None
        since = _missing_since(record, chain)
        return since + self._window if since is not None else None

    def _reprocess(self, held: list[Held], batch: Batch, *, hold: bool) -> None:
        # A released assumption may register a session that releases more records in turn;
        # the depth of that is bounded by the length of the chain.
        for item in held:
            if item.id is not None:
                batch.step.claimed.append(item.id)
            try:
                self._enrich(item.source, decode(item.record), item.record, batch, hold=hold)
            except StateError:
                raise
            except Exception as exc:  # noqa: BLE001 - a defect meeting one held record: it alone is dead-lettered
                batch.errors.append(RecordError(item.source, -1, f"held record could not be enriched: {defect(exc)}",
                                                item.record))
            if item.id is not None:  # from the store: forgotten there when this step commits
                batch.step.writes.done.append(item.id)


def _missing_since(record: dict[str, Any], chain: Chain) -> float | None:
    """When the missing link happened: as the chain knows it, else the record's own time."""
    return chain.blocker_since or epoch(record.get("eventTime") or record.get("@timestamp"))


def _awaited(record: dict[str, Any], chain: Chain) -> str:
    """The account whose stream decides how long a record waits for its chain's missing link."""
    return chain.blocker_account or _account(record)


def _account(record: dict[str, Any]) -> str:
    return text(record.get("recipientAccountId")) or text(mapping(record.get("userIdentity")).get("accountId")) or ""
