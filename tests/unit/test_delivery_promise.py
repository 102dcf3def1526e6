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

    def commit(self, writes: Writes) -> None:
        self._maybe("commit")
        super().commit(writes)


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
    assert {orjson.loads(line)["reason"] for line in dead_lines} == {"record 3 is not an object"}
    assert store.held_count() == 0
    by_id = sink.by_event()
    child_id = records[0]["eventID"]
    assert by_id[child_id]["assumerole"]["chain"]["origin"]["arn"] == "arn:aws:iam::111111111111:user/alice"
    assert by_id["owner-copy"]["assumerole"]["caller"]["arn"] == "arn:aws:iam::111111111111:user/alice"


def test_a_link_registered_while_its_child_waits_in_another_step_releases_it_once_both_commit(tmp_path: Path) -> None:
    # Two objects in work at once: the child's step holds it (its parent unknown), the parent's
    # step registers the session before the child's hold is in the store.
    store = SqliteStore(tmp_path / "state.db")
    sink = Collect()
    pipeline = Pipeline(Enricher(CONFIG, store), [sink], DeadLetter(tmp_path / "dl"))
    parent = assume(user("111111111111", "alice"), ROLE, T0, recipient="222222222222")
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
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
    store = SqliteStore(tmp_path / "state.db")
    sink = Collect()
    pipeline = Pipeline(Enricher(CONFIG, store), [sink], DeadLetter(tmp_path / "dl"))
    parent = assume(user("111111111111", "alice"), ROLE, T0, recipient="222222222222")
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    outcome = pipeline.process("one", orjson.dumps({"Records": [child, parent]}))
    assert (outcome.delivered, outcome.held, store.held_count()) == (2, 0, 0)
    assert sink.by_event()[child["eventID"]]["assumerole"]["chain"]["resolved"] is True


def test_a_defect_meeting_one_record_dead_letters_that_record_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from forwarder.enrich import enricher as module

    real = module.assumption_fields

    def fragile(record: dict[str, Any], facts: Any, caller: Any, chain: Any, *args: Any) -> dict[str, Any]:
        # Fails for the sessions named "boom" once their chain is known (so a held one fails on release).
        if record["requestParameters"]["roleSessionName"] == "boom" and (chain.resolved or caller.type == "IAMUser"):
            raise KeyError("a defect")
        return real(record, facts, caller, chain, *args)

    monkeypatch.setattr(module, "assumption_fields", fragile)
    store = SqliteStore(tmp_path / "state.db")
    sink = Collect()
    pipeline = Pipeline(Enricher(CONFIG, store), [sink], DeadLetter(tmp_path / "dl"))
    parent = assume(user("111111111111", "alice"), ROLE, T0, recipient="222222222222")
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
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
