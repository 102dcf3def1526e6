"""Delivery through the pipeline: nothing acknowledged is lost when a sink fails."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from cloudtrail import Collect, assume, call, issued_key, session_identity, user
from forwarder.config import parse_config
from forwarder.deadletter import DeadLetter
from forwarder.enrich import Enricher
from forwarder.pipeline import Pipeline
from forwarder.pipeline import NotDelivered
from forwarder.sinks.base import Delivery, Rejected, SinkError
from forwarder.state.sqlite import SqliteStore

T0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::222222222222:role/Deploy"


class Flaky(Collect):
    """Fails the first ``failures`` sends, then rejects documents whose eventName is 'Poison'."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def send(self, documents):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise SinkError("destination unavailable")
        keep = [d for d in documents if d.record.get("eventName") != "Poison"]
        super().send(keep)
        return Delivery([Rejected(d, "mapping error") for d in documents if d not in keep])


def pipeline(sink: Collect, tmp_path: Path, store: SqliteStore | None = None) -> Pipeline:
    config = parse_config({"chains": {"hold_back_seconds": 900}})
    return Pipeline(Enricher(config, store or SqliteStore()), [sink], DeadLetter(tmp_path / "dl"))


def test_failed_delivery_is_read_again_in_full(tmp_path: Path) -> None:
    parent = assume(user("111111111111", "alice"), ROLE, T0)
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    data = orjson.dumps({"Records": [parent, child]})
    sink = Flaky(failures=1)
    forwarder = pipeline(sink, tmp_path)
    with pytest.raises(NotDelivered):
        forwarder.process("s3://trail/a.json.gz", data)
    # The object was not acknowledged, so it comes again: none of it may count as a duplicate.
    outcome = forwarder.process("s3://trail/a.json.gz", data)
    assert outcome.delivered == 2 and {d.event_id for d in sink.documents} == {parent["eventID"], child["eventID"]}


def test_released_records_survive_a_failed_delivery(tmp_path: Path) -> None:
    parent = assume(user("111111111111", "alice"), ROLE, T0)
    child = call(session_identity(ROLE, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    store = SqliteStore(tmp_path / "state.db")
    sink = Flaky(failures=0)
    forwarder = pipeline(sink, tmp_path, store)
    assert forwarder.process("child.json", orjson.dumps({"Records": [child]})).held == 1
    sink.failures = 1
    with pytest.raises(NotDelivered):
        forwarder.process("parent.json", orjson.dumps({"Records": [parent]}))
    assert store.held_count() == 1  # the child was claimed, not forgotten
    forwarder.process("parent.json", orjson.dumps({"Records": [parent]}))
    assert {d.event_id for d in sink.documents} == {parent["eventID"], child["eventID"]}
    assert store.held_count() == 0


def test_rejected_documents_are_dead_lettered_with_reason(tmp_path: Path) -> None:
    poison = call(user("111111111111", "alice"), T0, "Poison")
    good = assume(user("111111111111", "alice"), ROLE, T0)
    sink = Flaky(failures=0)
    forwarder = Pipeline(Enricher(parse_config({"select": "all"}), SqliteStore()), [sink], DeadLetter(tmp_path / "dl"))
    outcome = forwarder.process("x.json", orjson.dumps({"Records": [poison, good, "not a record"]}))
    assert outcome.delivered == 2 and outcome.dead_lettered == 2
    lines = [orjson.loads(line) for line in (tmp_path / "dl" / "documents.ndjson").read_bytes().splitlines()]
    assert {(e["reason"], e["sink"]) for e in lines} == {("mapping error", "collect"), ("record 2: a record is a JSON object, not a string", None)}
    assert next(e for e in lines if e["sink"])["record"] == poison
