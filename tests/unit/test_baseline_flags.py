"""The behaviour baseline's flags on event-time sequences (forwarder/enrich/baseline.py), and the
stolen-session flags: what raises them, what does not, and that what a step learns counts once."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudtrail import Collect, assume, call, get_session_token, issued_key, service, session_identity, temporary_user, user
from forwarder.baseline.profile import readable
from forwarder.config import RedisState, parse_config
from forwarder.deadletter import StderrDeadLetter
from forwarder.enrich import Enricher
from forwarder.pipeline import NotDelivered, Pipeline
from forwarder.sinks.base import SinkError
from forwarder.state.redis import RedisStore
from forwarder.state.sqlite import SqliteStore

ORG = "111111111111"
ROLE = f"arn:aws:iam::{ORG}:role/HumanOps"
OTHER = f"arn:aws:iam::{ORG}:role/BreakGlassAdministrator"
BOB = user(ORG, "bob")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
CONFIG = parse_config({"organization": {"accounts": [ORG]}, "baseline": {"timezone": "Europe/Berlin"}})
OFFICE, HOME, ABROAD = "85.214.132.7", "91.64.10.9", "5.188.10.77"  # DE, DE, RU (the built-in RIR data)


def _assume(at: datetime, ip: str = OFFICE, role: str = ROLE, who: dict[str, Any] = BOB, **more: Any) -> dict[str, Any]:
    record = assume(who, role, at, **more)
    record.update(sourceIPAddress=ip, awsRegion="eu-central-1")
    return record


def _history(days: int = 21, *, per_day: int = 2) -> list[list[dict[str, Any]]]:
    """Bob's weekdays: HumanOps from the office or from home, mornings and afternoons (Berlin)."""
    objects = []
    for day in range(days):
        moment = START + timedelta(days=day)
        if moment.weekday() < 5:
            objects.append([_assume(moment + timedelta(hours=3 * n), (OFFICE, HOME)[n % 2]) for n in range(per_day)])
    return objects


class Run:
    """A pipeline over one store, its documents kept by eventID."""

    def __init__(self, store: Any = None, config: Any = CONFIG) -> None:
        self.store = store or SqliteStore()
        self.sink = Collect()
        self.pipeline = Pipeline(Enricher(config, self.store), [self.sink], StderrDeadLetter())

    def feed(self, objects: list[list[dict[str, Any]]], *, end: bool = True) -> Run:
        for number, records in enumerate(objects):
            self.pipeline.process(f"object-{number}.json", orjson.dumps({"Records": records}))
        if end:  # what waits for a firm verdict (a flag) ships, judged again, as at a daemon's stop
            self.pipeline.flush()
        return self

    def baseline(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.sink.by_event()[record["eventID"]]["assumerole"]["baseline"]

    def session(self, record: dict[str, Any]) -> dict[str, Any]:
        return self.sink.by_event()[record["eventID"]]["assumerole"]["session"]


def _raised(flags: dict[str, Any]) -> set[str]:
    return {name for name, value in flags.items() if value is True}


def test_nothing_is_raised_while_learning_then_departures_are() -> None:
    run = Run().feed(_history())
    first = run.baseline(run.sink.documents[0].record)
    assert _raised(first) == {"learning"} and "still learning" in first["reasons"][0]
    late_usual = _assume(START + timedelta(days=22, hours=3), HOME)  # Tuesday, 12:00 in Berlin, from home
    stolen = _assume(START + timedelta(days=23, hours=-7), ABROAD, OTHER)  # Wednesday 03:00 Berlin, a new role
    run.feed([[late_usual], [stolen]])
    assert _raised(run.baseline(late_usual)) == set() and run.baseline(late_usual)["reasons"] == []
    flags = run.baseline(stolen)
    assert _raised(flags) == {"new_pair", "new_role_for_subject", "new_network", "new_country", "unusual_hour"}
    reasons = flags["reasons"]
    assert len(reasons) == 5
    assert "bob has never assumed BreakGlassAdministrator; in 22 days they assumed HumanOps." in reasons
    assert any("5.188.10.0/24 (RU)" in r and "usual: 85.214.132.0/24 and 91.64.10.0/24" in r for r in reasons)
    assert any("Wednesday at 03:00 (Europe/Berlin)" in r and "usual: weekdays 10h and 13h" in r for r in reasons)


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_a_flag_waits_for_the_earlier_events_of_the_hold_back_window(kind: str, request: pytest.FixtureRequest) -> None:
    """Bob's first two assumptions from a hotel arrive in the wrong order, five minutes apart:
    each is held as flagged on arrival, released when the stream is a window (15 minutes) past
    it, judged again, and only the first in event time carries the flag; every record once."""
    store = SqliteStore() if kind == "sqlite" else RedisStore(RedisState(
        type="redis", url=request.getfixturevalue("redis_url"), key_prefix=f"t{uuid.uuid4().hex[:8]}:"))
    history = _history()
    run = Run(store).feed(history)
    arrived = len(run.sink.documents)
    at = START + timedelta(days=22, hours=2)
    first, second = (_assume(at + timedelta(minutes=m), "90.84.7.10") for m in (0, 5))
    run.feed([[second], [first]], end=False)
    assert len(run.sink.documents) == arrived  # both wait: a flag, and the window not passed
    run.feed([[_assume(at + timedelta(minutes=14))]], end=False)
    assert len(run.sink.documents) == arrived + 1  # the usual one ships at once: nothing can change it
    later = _assume(at + timedelta(minutes=21))  # the stream a window past both
    run.feed([[later]], end=False)
    assert _raised(run.baseline(first)) == {"new_network", "new_country"} and _raised(run.baseline(second)) == set()
    # in = delivered: the history and the four, each once.
    assert len(run.sink.documents) == len(run.sink.by_event()) == sum(map(len, history)) + 4
    store.close()


def test_a_flag_on_a_quiet_trail_waits_for_the_stream_furthest_on_not_for_its_own() -> None:
    run = Run().feed(_history())
    arrived = len(run.sink.documents)
    at = START + timedelta(days=22, hours=2)
    hotel = _assume(at, "90.84.7.10")
    run.feed([[hotel]], end=False)
    assert len(run.sink.documents) == arrived  # held: its own trail says nothing more
    other = "222222222222"  # another account's trail, a window further on
    run.feed([[assume(user(other, "dave"), f"arn:aws:iam::{other}:role/Ops", at + timedelta(minutes=16))]], end=False)
    assert _raised(run.baseline(hotel)) == {"new_network", "new_country"}
    assert len(run.sink.documents) == arrived + 2


def test_without_holding_verdicts_the_order_of_arrival_decides() -> None:
    config = parse_config({"organization": {"accounts": [ORG]},
                           "baseline": {"timezone": "Europe/Berlin", "hold_verdicts": False}})
    run = Run(config=config).feed(_history())
    at = START + timedelta(days=22, hours=2)
    first, second = (_assume(at + timedelta(minutes=m), "90.84.7.10") for m in (0, 5))
    run.feed([[second], [first]])
    assert _raised(run.baseline(first)) == _raised(run.baseline(second)) == {"new_network", "new_country"}


def test_a_new_subject_is_learnt_before_anything_is_raised_for_it() -> None:
    run = Run().feed(_history())
    carol = user(ORG, "carol")
    first = _assume(START + timedelta(days=22), ABROAD, OTHER, carol)
    run.feed([[first]])
    assert _raised(run.baseline(first)) == {"learning"}
    assert "carol is new to the baseline" in run.baseline(first)["reasons"][0]


def test_a_new_network_of_a_known_pair_is_raised_once() -> None:
    run = Run().feed(_history())
    hotel = [_assume(START + timedelta(days=22, hours=n), "90.84.7.10") for n in range(3)]
    run.feed([hotel])
    assert [_raised(run.baseline(r)) for r in hotel] == [{"new_network", "new_country"}, set(), set()]
    assert "90.84.7.0/24 (FR), a network not seen for this pair in 22 days" in run.baseline(hotel[0])["reasons"][0]


def test_hours_are_local_through_the_daylight_saving_change() -> None:
    # 10:00 in Berlin every weekday: 09:00 UTC in winter, 08:00 UTC from 2026-03-29 on.
    objects = []
    for day in range(45):
        local = datetime(2026, 2, 23, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")) + timedelta(days=day)
        if local.weekday() < 5:
            objects.append([_assume(local.astimezone(UTC))])
    run = Run().feed(objects)
    after = [doc for doc in run.sink.documents if doc.record["eventTime"] >= "2026-03-30"]
    assert after and all(not doc.assumerole["baseline"]["unusual_hour"] for doc in after)
    assert after[0].record["eventTime"].endswith("T08:00:00Z")


def test_a_burst_raises_volume_spike_on_the_assumption_that_crosses_the_threshold() -> None:
    run = Run().feed(_history())
    day = START + timedelta(days=22, hours=2)
    burst = [_assume(day + timedelta(seconds=20 * n)) for n in range(25)]
    random.Random(4).shuffle(burst)  # the order within the object does not matter: judged in event time
    run.feed([burst])
    spiking = [r for r in burst if run.baseline(r)["volume_spike"]]
    # Two a day on weekdays, none at weekends (median 2 over the 22 days): the floor of 10 decides.
    assert [r["eventTime"] for r in spiking] == [(day + timedelta(seconds=20 * 9)).strftime("%Y-%m-%dT%H:%M:%SZ")]
    assert "10 times on 2026-03-24 by this event, against a median of 2 a day over the 22 days before" in \
        run.baseline(spiking[0])["reasons"][0]


def test_the_same_stream_read_twice_gives_the_same_flags(tmp_path: Path) -> None:
    objects = [*_history(), [_assume(START + timedelta(days=22, hours=2) + timedelta(seconds=n)) for n in range(15)],
               [_assume(START + timedelta(days=23, hours=-7), ABROAD, OTHER)]]
    store = SqliteStore(tmp_path / "state.db")
    first = Run(store).feed(objects)
    before = dict(store.scan("baseline"))
    # Read again over the same store (another process, a baseline build then live traffic):
    # the duplicate window is forgotten so that every record is judged once more.
    store._db.execute("DELETE FROM seen_log")  # noqa: SLF001 - the duplicate window set aside for this test
    store = SqliteStore(tmp_path / "state.db")  # and not in this process's memory either
    again = Run(store).feed(objects)
    flags = {d.event_id: d.assumerole["baseline"] for d in first.sink.documents}
    assert flags == {d.event_id: d.assumerole["baseline"] for d in again.sink.documents}
    assert sum(bool(_raised(f) - {"learning"}) for f in flags.values()) == 2  # the stolen one, the crossing
    assert {k: readable(v) for k, v in store.scan("baseline") if not k.startswith("a|")} == \
        {k: readable(v) for k, v in before.items() if not k.startswith("a|")}  # nothing counted twice


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_records_in_any_order_within_an_object_give_the_same_flags(rng: random.Random) -> None:
    history = [record for records in _history(days=19) for record in records]
    tail = [_assume(START + timedelta(days=21, hours=n % 8, minutes=n), (OFFICE, "90.84.7.10")[n % 2]) for n in range(12)]
    reference = Run().feed([history, tail])
    shuffled_history, shuffled_tail = rng.sample(history, len(history)), rng.sample(tail, len(tail))
    shuffled = Run().feed([shuffled_history, shuffled_tail])
    assert {d.event_id: d.assumerole["baseline"] for d in reference.sink.documents} == \
        {d.event_id: d.assumerole["baseline"] for d in shuffled.sink.documents}


class FailingOnce(Collect):
    def __init__(self) -> None:
        super().__init__()
        self.fail = True

    def send(self, documents: Any) -> Any:
        if self.fail:
            self.fail = False
            raise SinkError("HEC answered 503")
        return super().send(documents)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        opened: Any = SqliteStore(tmp_path / "state.db")
    else:
        import uuid

        from forwarder.config import RedisState
        from forwarder.state.redis import RedisStore

        opened = RedisStore(RedisState(type="redis", url=request.getfixturevalue("redis_url"),
                                       key_prefix=f"t{uuid.uuid4().hex[:8]}:"))
    yield opened
    opened.close()


def test_an_object_read_twice_after_a_failed_delivery_counts_once(store: Any) -> None:
    Run(store).feed(_history())
    sink = FailingOnce()
    pipeline = Pipeline(Enricher(CONFIG, store), [sink], StderrDeadLetter())
    today = [_assume(START + timedelta(days=22, hours=n)) for n in range(3)]
    body = orjson.dumps({"Records": today})
    before = readable(store.get("baseline", f"p|{BOB['arn']}|{ROLE}") or b"")
    with pytest.raises(NotDelivered):
        pipeline.process("s3://trail/today.json.gz", body)
    assert readable(store.get("baseline", f"p|{BOB['arn']}|{ROLE}") or b"") == before  # no trace
    pipeline.process("s3://trail/today.json.gz", body)
    after = readable(store.get("baseline", f"p|{BOB['arn']}|{ROLE}") or b"")
    assert before is not None and after is not None
    day = str((START + timedelta(days=22, hours=1)).astimezone(ZoneInfo("Europe/Berlin")).toordinal())
    assert day not in before.days and len(after.sample(int(day), 64)) == 3  # the three, once each
    assert [d.assumerole["baseline"] for d in sink.documents] == [
        {**dict.fromkeys(("new_pair", "new_role_for_subject", "new_subject_for_role", "new_network", "new_country",
                          "new_region", "unusual_hour", "volume_spike", "learning"), False), "reasons": []}] * 3


def _session(at: datetime, ip: str, *calls: tuple[int, str, dict[str, Any]]) -> list[dict[str, Any]]:
    issued = _assume(at, ip)
    out = [issued]
    for minutes, source, extra in calls:
        used = call(session_identity(ROLE, issued_key(issued), issued["eventTime"]), at + timedelta(minutes=minutes))
        used.update(sourceIPAddress=source, **extra)
        out.append(used)
    return out


def test_a_session_used_from_another_network_is_raised_once_per_key_and_network() -> None:
    records = _session(START, OFFICE, (1, OFFICE, {}), (2, ABROAD, {}), (3, "5.188.10.200", {}), (4, "90.84.7.1", {}),
                       (5, "10.1.2.3", {"vpcEndpointId": "vpce-0a1b"}), (6, "ec2.amazonaws.com", {}), (7, "AWS Internal", {}))
    run = Run().feed([records])
    sessions = [run.session(r) for r in records[1:]]
    assert [s["new_network"] for s in sessions] == [False, True, False, True, False, False, False]
    assert all(s["issued_from"] == {"ip": OFFICE, "network": "85.214.132.0/24", "country": "DE", "vpc_endpoint_id": None,
                                    "user_agent": "aws-cli"} for s in sessions)
    assert sessions[1]["reasons"] == [
        f"The session key {issued_key(records[0])} of HumanOps was issued on a call from 85.214.132.0/24 (DE) and is "
        "now used from 5.188.10.0/24 (RU): its first call from this network."]
    assert all(not s["unknown_issuance"] for s in sessions)


def test_where_a_session_was_issued_is_known_to_the_next_process(tmp_path: Path) -> None:
    """The issuance is the session's own (its state), not the process's memory."""
    records = _session(START, OFFICE, (5, ABROAD, {}))
    Run(SqliteStore(tmp_path / "state.db")).feed([records[:1]])
    later = Run(SqliteStore(tmp_path / "state.db")).feed([records[1:]])
    assert later.session(records[1])["new_network"] is True
    assert later.session(records[1])["issued_from"]["network"] == "85.214.132.0/24"


def test_what_another_process_learnt_is_read_although_this_one_kept_the_value(tmp_path: Path) -> None:
    """Two processes on one state file: what one learnt counts in the other's next judgement,
    after the other read the same values (nothing read is kept past the step that read it)."""
    path = tmp_path / "state.db"
    here, there = Run(SqliteStore(path)), Run(SqliteStore(path))
    here.feed(_history())
    monday = START + timedelta(days=21)
    here.feed([[_assume(monday + timedelta(hours=1))]])  # the pair's values read and kept here
    travelling = _assume(monday + timedelta(hours=2), ABROAD)
    there.feed([[travelling]])
    assert "new_network" in _raised(there.baseline(travelling))
    again = _assume(monday + timedelta(hours=4), ABROAD)
    here.feed([[again]])
    assert _raised(here.baseline(again)) == set()  # the network the other process saw is known
    kept = _assume(monday + timedelta(hours=5), "90.84.7.10")
    here.feed([[kept]])
    later = _assume(monday + timedelta(hours=6), "90.84.7.10")
    here.feed([[later]])  # nobody else wrote: what this process committed is what it reads
    assert "new_network" in _raised(here.baseline(kept)) and _raised(here.baseline(later)) == set()


def test_an_issuance_read_after_some_of_its_calls_counts_from_then_on() -> None:
    """Temporary credentials of an IAM user (GetSessionToken) resolve their chain without their
    issuance, so their calls ship at once: a call read before the issuance cannot be compared
    with it, and one read after it is, although the key was first asked for without a session."""
    issued = get_session_token(BOB, START)
    issued["sourceIPAddress"] = OFFICE
    identity = temporary_user(BOB, issued_key(issued), issued["eventTime"])
    early, late = (call(identity, START + timedelta(minutes=n)) for n in (5, 6))
    early["sourceIPAddress"] = late["sourceIPAddress"] = ABROAD
    run = Run().feed([[early], [issued], [late]])
    assert run.session(early)["issued_from"]["network"] is None and run.session(early)["new_network"] is False
    assert run.session(late)["issued_from"]["network"] == "85.214.132.0/24" and run.session(late)["new_network"] is True
    assert len(run.sink.documents) == 3  # each once


def test_a_session_issued_to_an_aws_service_is_not_judged_by_where_it_is_used() -> None:
    issued = assume(service("ec2.amazonaws.com"), ROLE, START)
    issued["sourceIPAddress"] = "ec2.amazonaws.com"
    used = call(session_identity(ROLE, issued_key(issued), issued["eventTime"]), START + timedelta(minutes=5))
    used["sourceIPAddress"] = ABROAD
    run = Run().feed([[issued, used]])
    assert run.session(used)["new_network"] is False
    assert run.session(used)["issued_from"]["network"] == "ec2.amazonaws.com"


def test_a_key_no_read_issuance_explains_is_raised_once_when_the_trail_was_read_before_it() -> None:
    run = Run().feed(_history(days=3))
    created = START + timedelta(days=3)
    forged = [call(session_identity(ROLE, "ASIAFORGED0000000001", created.strftime("%Y-%m-%dT%H:%M:%SZ")),
                   created + timedelta(minutes=n)) for n in (30, 31)]
    older = call(session_identity(ROLE, "ASIABEFORE0000000001", "2026-03-01T08:00:00Z"), created)  # before the trail
    run.feed([forged + [older]])
    assert [run.session(r)["unknown_issuance"] for r in forged] == [True, False]
    assert run.session(older)["unknown_issuance"] is False
    assert "no STS call that issued it was found, although account 111111111111's trail has been read since " \
           "2026-03-02T09:00:00Z" in run.session(forged[0])["reasons"][0]
