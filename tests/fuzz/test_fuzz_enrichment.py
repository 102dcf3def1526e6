"""The enrichment on real-shaped records with any field replaced by any JSON: every record
comes out, as a document or as a dead letter, and the counts say so exactly.

The story is one object of the shapes the forwarder meets (a chain of sessions, a
cross-account pair, SAML, web identity, a service, a refusal, a session whose parent is not
there, a plain call); hypothesis shuffles it, may deliver one record twice, and replaces,
removes or adds fields anywhere in it. ``select: all``, so every record must come out:

    records in = delivered + dead-lettered + skipped + duplicates   (held ones released by flush)

counted from the Outcomes, and again from what the sink received and the dead-letter files hold.
A record whose eventID is still its own must be found exactly once among them, by that eventID.
"""

from __future__ import annotations

import copy
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from cloudtrail import Collect, assume, call, saml, service, session_identity, thin, user, web_identity
from hypothesis import given
from hypothesis import strategies as st
from json_strategies import BAD_UTF8, FUZZ, LONE_SURROGATES, ODD_NUMBERS, Raw, encode, json_values, mutated, nested

from forwarder.config import Config
from forwarder.deadletter import DOCUMENTS, OBJECTS, DeadLetter
from forwarder.enrich import Enricher
from forwarder.pipeline import Outcome, Pipeline
from forwarder.reader import ObjectError
from forwarder.sinks.base import Delivery
from forwarder.state.sqlite import SqliteStore

T0 = datetime(2026, 3, 31, 7, 0, tzinfo=timezone.utc)
OPS = "arn:aws:iam::111111111111:role/Ops"
PROD = "arn:aws:iam::333333333333:role/Deploy"
PARTNER = "arn:aws:iam::222222222222:role/Partner"
NAME = "s3://trail/AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/fuzz.json.gz"


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def _created(minutes: int) -> str:
    return _at(minutes).strftime("%Y-%m-%dT%H:%M:%SZ")


def story() -> list[dict[str, Any]]:
    alice, bob = user("111111111111", "alice"), user("111111111111", "bob")
    records = [
        assume(alice, OPS, _at(0), key="ASIAFUZZ00000000OPS1", source_identity="alice"),
        call(session_identity(OPS, "ASIAFUZZ00000000OPS1", _created(0)), _at(1)),
        assume(session_identity(OPS, "ASIAFUZZ00000000OPS1", _created(0)), PROD, _at(2), key="ASIAFUZZ0000000PROD1"),
        call(session_identity(PROD, "ASIAFUZZ0000000PROD1", _created(2)), _at(3), "PutObject"),
        # The two copies of one cross-account assumption: the caller's, and the role owner's.
        assume(bob, PARTNER, _at(4), key="ASIAFUZZ000000PARTNR", shared="4d2e-shared", recipient="111111111111"),
        assume(thin(bob), PARTNER, _at(4), key="ASIAFUZZ000000PARTNR", shared="4d2e-shared", recipient="222222222222"),
        assume(user("111111111111", "mallory"), OPS, _at(5), error="AccessDenied"),
        assume(saml("carol@example.com"), "arn:aws:iam::111111111111:role/HumanAdmin", _at(6), event="AssumeRoleWithSAML"),
        assume(web_identity("repo:org/app:ref:refs/heads/main"), "arn:aws:iam::111111111111:role/CI", _at(7),
               event="AssumeRoleWithWebIdentity"),
        assume(service("ec2.amazonaws.com"), "arn:aws:iam::111111111111:role/Ec2", _at(8)),
        call(session_identity(OPS, "ASIAFUZZ0000UNKNOWN1", _created(9)), _at(10)),  # its parent never comes
        call(alice, _at(11), "GetCallerIdentity", "sts.amazonaws.com"),
    ]
    # Each record its own (the builders share identities between records): a change lands in one.
    records = [copy.deepcopy(record) for record in records]
    for number, record in enumerate(records):
        record["eventID"] = f"00000000-0000-4000-8000-{number:012d}"  # the same on every run
    return records


STORY = story()
EVENT_IDS = {record["eventID"] for record in STORY}


# Half the replacements are the values that break encoders and decoders (numbers beyond a double
# or a 64-bit integer, bytes that are not UTF-8, lone surrogates), so that 200 examples meet them.
HOSTILE = st.one_of(st.sampled_from(ODD_NUMBERS + BAD_UTF8), LONE_SURROGATES, json_values, json_values)


@st.composite
def objects(draw: st.DrawFn) -> list[Any]:
    records: list[Any] = list(draw(st.permutations(STORY)))
    if draw(st.booleans()):  # CloudTrail delivers a record twice now and then
        records.append(draw(st.sampled_from(STORY)))
    return draw(mutated(records, values=HOSTILE, max_changes=4))


class Encoded(Collect):
    """Keeps every document as the bytes a sink writes (``to_json``, as the NDJSON, HEC and
    Elasticsearch sinks do), and which of them are no document a SIEM can read."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[bytes] = []
        self.unreadable: list[tuple[bytes, str]] = []

    def send(self, documents: Any) -> Delivery:
        for document in documents:
            line = document.to_json()
            self.lines.append(line)
            problem = _unreadable(line)
            if problem:
                self.unreadable.append((line[:200], problem))
        return super().send(documents)


def _unreadable(line: bytes) -> str | None:
    if b"\n" in line:
        return "a newline inside one document's line"
    try:
        parsed = orjson.loads(line)  # strict: UTF-8, no lone surrogates, numbers a double holds
    except orjson.JSONDecodeError as exc:
        return f"not JSON a reader takes: {exc}"
    return None if isinstance(parsed, dict) else "not a JSON object"


def _dead_letters(directory: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def read(name: str) -> list[dict[str, Any]]:
        path = directory / name
        return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []

    return read(OBJECTS), read(DOCUMENTS)


def _event_id(entry: dict[str, Any]) -> Any:
    """The eventID of a dead-lettered record: from the record, or found in its raw text."""
    record = entry.get("record")
    if isinstance(record, dict):
        return record.get("eventID")
    raw = entry.get("raw") or ""
    return next((event_id for event_id in EVENT_IDS if event_id in raw), None)


def _own_ids(records: list[Any]) -> set[str]:
    """The eventIDs still carried by exactly one record, unchanged."""
    ids = [r.get("eventID") for r in records if isinstance(r, dict) and isinstance(r.get("eventID"), str)]
    return {i for i in ids if i in EVENT_IDS and ids.count(i) == 1}


def _run(records: list[Any], batch: bool) -> None:
    with tempfile.TemporaryDirectory() as directory:
        sink, store = Encoded(), SqliteStore()
        pipeline = Pipeline(Enricher(Config(select="all"), store, batch=batch), [sink], DeadLetter(Path(directory)))
        try:
            first = pipeline.process(NAME, encode({"Records": records}))
        except ObjectError:
            return  # the whole object goes to the dead letter by name (its caller's part)
        held = store.held_count()
        rest = pipeline.flush()  # the end of input: every held record ships as it is
        _count(records, first, rest, held, sink, Path(directory))
        assert store.held_count() == 0


def _count(records: list[Any], first: Outcome, rest: Outcome, held: int, sink: Encoded, directory: Path) -> None:
    delivered = first.delivered + rest.delivered
    dead = first.dead_lettered + rest.dead_lettered
    assert first.records == len(records)
    assert delivered + dead + first.skipped + first.duplicates == len(records), (first, rest)
    assert rest.delivered + rest.dead_lettered == held <= first.held, (first, rest, held)
    assert rest.skipped == rest.duplicates == 0
    # The same, counted from what came out.
    dead_objects, dead_documents = _dead_letters(directory)
    assert dead_objects == []
    assert len(sink.lines) == delivered
    assert len(dead_documents) == dead
    assert sink.unreadable == [], "a sink was handed a line no reader takes"
    out = [orjson.loads(line).get("eventID") for line in sink.lines] + [_event_id(e) for e in dead_documents]
    for event_id in _own_ids(records):
        assert out.count(event_id) == 1, f"{event_id}: out {out.count(event_id)} times"


@FUZZ
@given(objects(), st.booleans())
def test_any_field_of_any_type_ends_as_a_document_or_a_dead_letter(records: list[Any], batch: bool) -> None:
    _run(records, batch)


def test_the_story_unchanged_is_delivered_whole() -> None:
    """The starting point: nothing dead-lettered, nothing dropped, the parentless call held
    (daemon) until the end of input; so the property's counts mean something."""
    for batch in (True, False):
        with tempfile.TemporaryDirectory() as directory:
            sink = Encoded()
            pipeline = Pipeline(Enricher(Config(select="all"), SqliteStore(), batch=batch), [sink],
                                DeadLetter(Path(directory)))
            first = pipeline.process(NAME, encode({"Records": STORY}))
            rest = pipeline.flush()
            assert first.delivered + rest.delivered == len(STORY) and first.held >= 1
            assert sorted(d.event_id for d in sink.documents if d.event_id) == sorted(EVENT_IDS)


# The values issue 11 names, each put in one record: the record ships (with a note where a field
# had an unexpected type) or is dead-lettered alone with its reason; its neighbours flow, so the
# object is never refused whole.
HARD: list[Any] = [
    pytest.param(0, ("requestParameters", "durationSeconds"), 2**70, False, id="duration-2**70"),
    pytest.param(0, ("requestParameters", "durationSeconds"), Raw(b"1e400"), False, id="duration-1e400"),
    pytest.param(11, ("userIdentity", "principalId"), 10**400, False, id="huge-integer-in-a-plain-call"),
    pytest.param(11, ("userAgent",), "bad \ud800 surrogate", False, id="lone-surrogate"),
    pytest.param(11, ("userAgent",), Raw(b'"bad \xff byte"'), False, id="invalid-utf-8"),
    pytest.param(3, ("requestParameters",), nested(5000), False, id="nested-5000-deep"),
    pytest.param(1, ("eventID",), 12345, False, id="eventID-a-number"),
    pytest.param(0, ("responseElements", "credentials", "expiration"), 1774915200, True, id="expiration-epoch"),
    pytest.param(0, ("responseElements", "credentials", "expiration"), "31/03/2026", True, id="expiration-day-first"),
]


@pytest.mark.parametrize("index, path, value, noted", HARD)
def test_one_bad_value_costs_at_most_its_own_record(index: int, path: tuple[str, ...], value: Any,
                                                    noted: bool) -> None:
    records = copy.deepcopy(STORY)
    parent = records[index]
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    others = EVENT_IDS - {STORY[index]["eventID"]}
    with tempfile.TemporaryDirectory() as directory:
        sink, store = Encoded(), SqliteStore()
        pipeline = Pipeline(Enricher(Config(select="all"), store), [sink], DeadLetter(Path(directory)))
        first = pipeline.process(NAME, encode({"Records": records}))  # no ObjectError: the object is readable
        held = store.held_count()
        rest = pipeline.flush()
        _count(records, first, rest, held, sink, Path(directory))
        delivered = [orjson.loads(line) for line in sink.lines]
        assert others <= {document.get("eventID") for document in delivered}, "a neighbour did not flow"
        dead = _dead_letters(Path(directory))[1]
        assert all(entry["reason"] for entry in dead)
        if noted:
            [document] = [d for d in delivered if d.get("eventID") == STORY[index]["eventID"]]
            assert document.get("assumerole", {}).get("notes"), "an unexpected type leaves a note"
