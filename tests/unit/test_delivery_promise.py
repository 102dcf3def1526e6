"""Whatever fails between reading an object and acknowledging it leaves no trace: the object
read again is delivered in full, and every record is delivered or dead-lettered.

Each case breaks one part (a sink raising its own error or any other, the state store's
reads or its commit, the dead letter's disk) once, then lets the same object through again.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cloudtrail import Collect, assume, call, issued_key, session_identity, thin, user
from forwarder.config import parse_config
from forwarder.deadletter import DeadLetter
from forwarder.enrich import Enricher
from forwarder.pipeline import NotDelivered, Pipeline
from forwarder.sinks.base import SinkError
from forwarder.state.base import StateError, Writes
from forwarder.state.sqlite import SqliteStore

T0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::222222222222:role/Deploy"
CONFIG = parse_config({"chains": {"hold_back_seconds": 900}, "organization": {"accounts": ["111111111111", "222222222222"]}})


class Breakable(SqliteStore):
    """A SQLite store whose next ``get`` or ``commit`` can be made to fail once."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fail: str | None = None

    def _maybe(self, what: str) -> None:
        if self.fail == what:
            self.fail = None
            raise StateError(f"state {self.path}: database or disk is full")

    def get(self, kind: str, key: str) -> bytes | None:
        self._maybe("get")
        return super().get(kind, key)

    def commit(self, writes: Writes) -> set[str]:
        self._maybe("commit")
        if self.fail != "commit's end":
            return super().commit(writes)
        # Inside SQLite, after everything else was written (the duplicate window's rows too):
        # its last statement, the held records done, refused.
        self.fail = None
        self._db.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON held BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
        try:
            return super().commit(writes)
        finally:
            self._db.execute("DROP TRIGGER refuse")


class BreakableSink(Collect):
    def __init__(self) -> None:
        super().__init__()
        self.fail: BaseException | None = None

    def send(self, documents: Any) -> Any:
        if self.fail is not None:
            failure, self.fail = self.fail, None
            raise failure
        return super().send(documents)


class BreakableDeadLetter(DeadLetter):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.fail = False

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        if self.fail:
            self.fail = False
            raise OSError(errno.ENOSPC, "No space left on device", str(self.directory / file))
        super()._append(file, entry)


def _story() -> tuple[list[Any], set[str]]:
    """A held child and its parent, both copies of a cross-account call, and one bad record."""
    parent = assume(user("111111111111", "alice"), ROLE, T0, shared="shared-1", recipient="111111111111")
    owner_copy = dict(parent, userIdentity=thin(parent["userIdentity"]), recipientAccountId="222222222222",
                      eventID="owner-copy")
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    child["recipientAccountId"] = "222222222222"
    records: list[Any] = [child, owner_copy, parent, "not a record"]
    return records, {child["eventID"], owner_copy["eventID"], parent["eventID"]}


Break = Callable[[Breakable, BreakableSink, BreakableDeadLetter], None]
CASES: dict[str, Break] = {
    "sink error": lambda store, sink, dead: setattr(sink, "fail", SinkError("HEC answered 503")),
    "sink raises something else": lambda store, sink, dead: setattr(sink, "fail", ValueError("Invalid header value")),
    "state store read fails": lambda store, sink, dead: setattr(store, "fail", "get"),
    "state store commit fails": lambda store, sink, dead: setattr(store, "fail", "commit"),
    "state store commit fails at its end": lambda store, sink, dead: setattr(store, "fail", "commit's end"),
    "dead letter disk full": lambda store, sink, dead: setattr(dead, "fail", True),
}


@pytest.mark.parametrize("case", CASES)
def test_a_failed_object_leaves_no_trace_and_is_delivered_in_full_when_read_again(case: str, tmp_path: Path) -> None:
    store = Breakable(tmp_path / "state.db")
    sink, dead = BreakableSink(), BreakableDeadLetter(tmp_path / "dead-letter")
    pipeline = Pipeline(Enricher(CONFIG, store), [sink], dead)
    records, ids = _story()
    data = orjson.dumps({"Records": records})
    child_first = orjson.dumps({"Records": records[:1]})

    assert pipeline.process("s3://trail/child.json.gz", child_first).held == 1
    before = (store.held_count(), store.count("session"), store.count("caller"), store.get("stream", "222222222222"))
    CASES[case](store, sink, dead)
    with pytest.raises(NotDelivered):
        pipeline.process("s3://trail/all.json.gz", data)
    assert (store.held_count(), store.count("session"), store.count("caller"),
            store.get("stream", "222222222222")) == before
    sink.documents.clear()  # what a failed send took in does not count as delivered

    outcome = pipeline.process("s3://trail/all.json.gz", data)
    delivered = [d.event_id for d in sink.documents]
    dead_lines = (tmp_path / "dead-letter" / "documents.ndjson").read_bytes().splitlines()
    assert sorted(delivered) == sorted(ids)  # the child (released) and both copies, once each
    assert outcome.records == len(records) and outcome.dead_lettered == 1
    assert {orjson.loads(line)["reason"] for line in dead_lines} == {"record 3: a record is a JSON object, not a string"}
    assert store.held_count() == 0
    by_id = sink.by_event()
    child_id = records[0]["eventID"]
    assert by_id[child_id]["assumerole"]["chain"]["origin"]["arn"] == "arn:aws:iam::111111111111:user/alice"
    assert by_id["owner-copy"]["assumerole"]["caller"]["arn"] == "arn:aws:iam::111111111111:user/alice"


def _pipeline(tmp_path: Path) -> tuple[Pipeline, SqliteStore, Collect]:
    store = SqliteStore(tmp_path / "state.db")
    sink = Collect()
    return Pipeline(Enricher(CONFIG, store), [sink], DeadLetter(tmp_path / "dl")), store, sink


def _parent_and_child() -> tuple[dict[str, Any], dict[str, Any]]:
    parent = assume(user("111111111111", "alice"), ROLE, T0, recipient="222222222222")
    return parent, call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))


def test_a_link_registered_while_its_child_waits_in_another_step_releases_it_once_both_commit(tmp_path: Path) -> None:
    # Two objects in work at once: the child's step holds it (its parent unknown), the parent's
    # step registers the session before the child's hold is in the store.
    pipeline, store, sink = _pipeline(tmp_path)
    parent, child = _parent_and_child()
    enricher = pipeline.enricher
    held = enricher.enrich_records("child", [orjson.dumps(child)])
    registered = enricher.enrich_records("parent", [orjson.dumps(parent)])
    for batch in (registered, held):  # the parent's object commits first
        store.commit(batch.step.writes)
        enricher.committed(batch.step)
    assert held.held == 1 and store.held_count() == 1
    pipeline.release_due()
    assert store.held_count() == 0
    shipped = {d.event_id: d.assumerole["chain"] for d in sink.documents}
    assert shipped[child["eventID"]]["resolved"] is True


def test_a_child_before_its_parent_in_one_object_is_served_by_it(tmp_path: Path) -> None:
    pipeline, store, sink = _pipeline(tmp_path)
    parent, child = _parent_and_child()
    outcome = pipeline.process("one", orjson.dumps({"Records": [child, parent]}))
    assert (outcome.delivered, outcome.held, store.held_count()) == (2, 0, 0)
    assert sink.by_event()[child["eventID"]]["assumerole"]["chain"]["resolved"] is True


def test_a_defect_meeting_one_record_dead_letters_that_record_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forwarder.enrich import enricher as module

    real = module.assumption_fields

    def fragile(facts: Any, caller: Any, chain: Any, *args: Any) -> dict[str, Any]:
        # Fails for the sessions named "boom" once their chain is known (so a held one fails on release).
        if facts.session_name == "boom" and (chain.resolved or caller.type == "IAMUser"):
            raise KeyError("a defect")
        return real(facts, caller, chain, *args)

    monkeypatch.setattr(module, "assumption_fields", fragile)
    pipeline, store, sink = _pipeline(tmp_path)
    parent, child = _parent_and_child()
    boom = assume(user("111111111111", "bob"), ROLE, T0, recipient="222222222222", session_name="boom")
    held_boom = assume(session_identity(ROLE, issued_key(parent), parent["eventTime"]), ROLE, T0 + timedelta(minutes=2),
                       recipient="222222222222", session_name="boom")
    assert pipeline.process("first", orjson.dumps({"Records": [child, held_boom]})).held == 2
    outcome = pipeline.process("second", orjson.dumps({"Records": [boom, parent]}))
    assert outcome.dead_lettered == 2 and store.held_count() == 0
    delivered = {d.event_id for d in sink.documents}
    dead = [orjson.loads(line) for line in (tmp_path / "dl" / "documents.ndjson").read_bytes().splitlines()]
    assert delivered == {parent["eventID"], child["eventID"]}
    assert {orjson.loads(e["raw"])["eventID"] for e in dead} == {boom["eventID"], held_boom["eventID"]}
    assert all("could not be enriched: KeyError" in e["reason"] for e in dead)


def test_records_that_cannot_be_written_are_dead_lettered_alone_and_the_rest_flows(tmp_path: Path) -> None:
    from forwarder.sinks.ndjson import NdjsonSink

    good = [call(user("111111111111", f"u{n}"), T0 + timedelta(seconds=n)) for n in range(2)]
    held_back = assume(user("111111111111", "alice"), ROLE, T0)
    bad = {
        "an integer beyond 64 bits": orjson.dumps(held_back).replace(b'"durationSeconds":3600', b'"durationSeconds":' + str(2**70).encode()),
        "an infinity": orjson.dumps(good[0]).replace(b'"readOnly":true', b'"readOnly":1e400').replace(
            good[0]["eventID"].encode(), b"inf"),
        "a lone surrogate": orjson.dumps(good[0]).replace(b'"u0"', b'"\\ud800"').replace(good[0]["eventID"].encode(), b"sur"),
        "invalid UTF-8": orjson.dumps(good[0]).replace(b'"u0"', b'"\xff\xfe"').replace(good[0]["eventID"].encode(), b"utf"),
        "nesting a thousand deep": orjson.dumps(good[0]).replace(b'"readOnly":true', b'"readOnly":' + b"[" * 1000 + b"]" * 1000)
        .replace(good[0]["eventID"].encode(), b"deep"),
    }
    body = b'{"Records":[' + b",".join([orjson.dumps(good[0]), *bad.values(), orjson.dumps(good[1])]) + b"]}"
    out = tmp_path / "out.ndjson"
    pipeline = Pipeline(Enricher(parse_config({"select": "all"}), SqliteStore()),
                        [NdjsonSink(parse_config({"sinks": [{"type": "ndjson", "path": str(out)}]}).sinks[0])],
                        DeadLetter(tmp_path / "dl"))
    outcome = pipeline.process("s3://trail/mixed.json.gz", body)
    lines = out.read_bytes().splitlines()
    assert [orjson.loads(line)["eventID"] for line in lines] == [good[0]["eventID"], good[1]["eventID"]]
    dead = [orjson.loads(line) for line in (tmp_path / "dl" / "documents.ndjson").read_bytes().splitlines()]
    assert outcome.records == 7 and outcome.delivered == 2 and outcome.dead_lettered == len(bad) == len(dead)
    assert all(entry["source"] == "s3://trail/mixed.json.gz" and entry["reason"] for entry in dead)
    reasons = " | ".join(entry["reason"] for entry in dead)
    for word in ("64-bit", "UTF-8", "deeper"):
        assert word in reasons, reasons


def _cross_account() -> tuple[dict[str, Any], dict[str, Any]]:
    caller_copy = assume(user("111111111111", "alice"), ROLE, T0, shared="shared-x", recipient="111111111111")
    owner_copy = dict(caller_copy, userIdentity=thin(caller_copy["userIdentity"]), recipientAccountId="222222222222",
                      eventID="owner-copy-x")
    return caller_copy, owner_copy


def test_a_thin_copy_waits_on_the_callers_stream_not_its_own(tmp_path: Path) -> None:
    # A backfill reading the role owner's account first, far past the window, then the caller's.
    caller_copy, owner_copy = _cross_account()
    sink = Collect()
    pipeline = Pipeline(Enricher(CONFIG, SqliteStore()), [sink], DeadLetter(tmp_path / "dl"))
    pipeline.process("owner-1", orjson.dumps({"Records": [owner_copy]}))
    later = call(user("222222222222", "ops"), T0 + timedelta(hours=3), "DescribeInstances")
    pipeline.process("owner-2", orjson.dumps({"Records": [later]}))
    pipeline.release_due()
    assert "owner-copy-x" not in sink.by_event()  # still waiting: the caller's account has not come yet
    pipeline.process("caller-1", orjson.dumps({"Records": [caller_copy]}))
    shipped = sink.by_event()["owner-copy-x"]["assumerole"]
    assert shipped["caller"]["arn"] == "arn:aws:iam::111111111111:user/alice" and shipped["chain"]["resolved"] is True


def test_a_wait_on_an_account_whose_trail_never_comes_ends_with_the_lag_between_accounts(tmp_path: Path) -> None:
    config = parse_config({"chains": {"hold_back_seconds": 900, "account_lag_seconds": 3600},
                           "organization": {"accounts": ["111111111111", "222222222222"]}})
    _, owner_copy = _cross_account()
    sink = Collect()
    pipeline = Pipeline(Enricher(config, SqliteStore()), [sink], DeadLetter(tmp_path / "dl"))
    pipeline.process("owner-1", orjson.dumps({"Records": [owner_copy]}))
    for hours in (0.5, 1.5):
        pipeline.process("owner", orjson.dumps({"Records": [call(user("222222222222", "ops"), T0 + timedelta(hours=hours))]}))
        pipeline.release_due()
        # Within the lag of an hour past its deadline it waits; past it, it ships unresolved.
        assert ("owner-copy-x" in sink.by_event()) is (hours > 1.25)
    assert sink.by_event()["owner-copy-x"]["assumerole"]["chain"]["resolved"] is False
