"""The state store's contract, one suite for SQLite and Redis; and Redis's claims across processes."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aws_world import World

from forwarder import usage
from forwarder.config import RedisState, SqliteState
from forwarder.state import Held, StateStore, open_store
from forwarder.state.base import StateError, Writes


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        opened = open_store(SqliteState(path=tmp_path / "state.db"))
    else:
        url = request.getfixturevalue("redis_url")
        opened = open_store(RedisState(type="redis", url=url, key_prefix=f"t{uuid.uuid4().hex[:8]}:"))
    yield opened
    opened.close()


def _held(wait_on: str, account: str = "111111111111", deadline: float | None = 100.0, body: bytes = b"{}") -> Held:
    return Held(wait_on, account, deadline, "s3://bucket/key", body)


def test_values_with_event_time_expiry(store: StateStore) -> None:
    assert store.get("session", "k1") is None
    store.put("session", "k1", b"one", expires_at=10.0)
    store.put("session", "k2", b"two", expires_at=20.0)
    store.put("session", "k3", b"three")
    store.put("stream", "111111111111", b"5.0", expires_at=1.0)
    store.put("session", "k1", b"one again", expires_at=30.0)  # replaced, with its new expiry
    assert store.get("session", "k1") == b"one again"
    assert store.count("session") == 3
    assert store.expire("session", 25.0) == 1  # only k2: k1 moved to 30, k3 never expires
    assert store.get("session", "k2") is None
    assert store.count("session") == 2
    assert store.get("stream", "111111111111") == b"5.0"  # other kinds untouched


def test_held_records_are_claimed_once_until_done_or_unclaimed(store: StateStore) -> None:
    store.commit(Writes(holds=[_held("key:A", body=b'{"n":1}')]))
    store.commit(Writes(holds=[_held("key:A", body=b'{"n":2}')]))
    store.commit(Writes(holds=[_held("key:B")]))
    assert store.held_count() == 3
    first = store.release("key:A")
    assert [h.record for h in first] == [b'{"n":1}', b'{"n":2}']
    assert all(h.id is not None and h.wait_on == "key:A" and h.deadline == 100.0 for h in first)
    assert store.release("key:A") == []  # claimed: not handed out twice
    store.unclaim([first[1].id])
    again = store.release("key:A")
    assert [h.record for h in again] == [b'{"n":2}']
    store.commit(Writes(done=[h.id for h in first]))
    assert store.held_count() == 1
    assert store.release("key:A") == []


def test_due_and_all(store: StateStore) -> None:
    store.commit(Writes(holds=[_held("key:A", deadline=50.0)]))
    store.commit(Writes(holds=[_held("key:B", deadline=150.0)]))
    store.commit(Writes(holds=[_held("key:C", account="222222222222", deadline=10.0)]))
    store.commit(Writes(holds=[_held("key:D", deadline=None)]))  # batch mode: only the end of input releases it
    assert [h.wait_on for h in store.release_due("111111111111", 100.0)] == ["key:A"]
    assert store.release_due("111111111111", 50.0) == []  # strictly before
    rest = store.release_all()
    assert sorted(h.wait_on for h in rest) == ["key:B", "key:C", "key:D"]
    assert next(h for h in rest if h.wait_on == "key:D").deadline is None
    store.commit(Writes(done=[h.id for h in rest]))
    assert store.held_count() == 1


def test_redis_claims_hold_across_processes_until_the_lease_ends(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix, claim_lease_seconds=1))
    two = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix, claim_lease_seconds=1))
    one.commit(Writes(holds=[_held("key:A")]))
    assert len(one.release("key:A")) == 1
    assert two.release("key:A") == []  # the other process's claim stands
    two.unclaim(["1"])  # not its claim to give back
    assert two.release("key:A") == []
    time.sleep(1.1)  # the first process "died": its lease runs out
    taken = two.release("key:A")
    assert len(taken) == 1
    two.commit(Writes(done=[taken[0].id]))
    assert one.held_count() == 0
    one.close()
    two.close()


def test_the_duplicate_window_is_read_for_a_whole_object_and_forgotten_behind_the_stream(store: StateStore) -> None:
    a, b = "111111111111", "222222222222"
    store.commit(Writes(seen={a: {"e1": 10.0, "e2": 20.0}, b: {"e1": 5.0}}))
    store.commit(Writes(seen={a: {"e1": 99.0}}))  # seen again: the first sighting stands
    asked = {a: ["e1", "e2", "e3"], b: ["e1", "e2"], "": ["e1"]}
    assert store.seen(asked) == {(a, "e1"), (a, "e2"), (b, "e1")}
    assert store.seen({a: [f"x{n}" for n in range(1200)] + ["e2"]}) == {(a, "e2")}  # beyond one query's bound
    assert store.forget_seen({a: 15.0}) == 1  # e1 stands at 10, strictly before 15
    assert store.seen(asked) == {(a, "e2"), (b, "e1")}
    assert store.forget_seen({}) == 0


def test_a_graceful_close_gives_back_the_claims_at_once(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix, claim_lease_seconds=60))
    two = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix, claim_lease_seconds=60))
    one.commit(Writes(holds=[_held("key:A"), _held("key:B")]))
    assert len(one.release("key:A")) == 1 and len(two.release("key:B")) == 1
    one.close()  # stopping: its claim on A goes, two's claim on B stays
    assert [h.wait_on for h in two.release("key:A")] == ["key:A"]
    assert two.claims_elsewhere() is False
    two.close()


def test_a_store_found_through_redis_sentinel_is_the_primary_it_names(tmp_path: Path) -> None:
    import redis
    from servers.redis_process import RedisProcess

    from forwarder.config import RedisSentinel

    with RedisProcess(tmp_path / "primary") as primary, \
            RedisProcess(tmp_path / "sentinel", sentinel_for=primary.port) as sentinel:
        state = RedisState(type="redis", url="redis://ignored/3", key_prefix="s:",
                           sentinel=RedisSentinel(hosts=[f"127.0.0.1:{sentinel.port}"]))
        store = open_store(state)
        store.commit(Writes(values={("session", "k"): (b"via sentinel", None)}))
        assert store.get("session", "k") == b"via sentinel"
        store.close()
        # Written to the primary the Sentinel names, in the URL's database.
        assert redis.Redis(port=primary.port, db=3).hget("s:kv:session", "k") == b"via sentinel"
    refused = RedisState(type="redis", sentinel=RedisSentinel(hosts=[f"127.0.0.1:{sentinel.port}"]))
    with pytest.raises(StateError, match="mymaster \\(Sentinel 127.0.0.1"):
        open_store(refused)  # the Sentinel is gone: named, not a traceback


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_processes_share_one_duplicate_window(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The same records read by two processes, one after the other: the second ships none."""
    import orjson
    from cloudtrail import Collect, call, user

    from forwarder.config import parse_config
    from forwarder.deadletter import DeadLetter
    from forwarder.enrich import Enricher
    from forwarder.pipeline import Pipeline
    from datetime import UTC, datetime, timedelta

    state = (SqliteState(path=tmp_path / "state.db") if kind == "sqlite" else
             RedisState(type="redis", url=request.getfixturevalue("redis_url"), key_prefix=f"t{uuid.uuid4().hex[:8]}:"))
    t0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    records = [call(user("222222222222", "ops"), t0 + timedelta(seconds=n)) for n in range(5)]
    sinks = [Collect(), Collect()]
    stores = [open_store(state), open_store(state)]
    first, second = (Pipeline(Enricher(parse_config({"select": "all"}), store), [sink], DeadLetter(tmp_path / f"dl{n}"))
                     for n, (store, sink) in enumerate(zip(stores, sinks)))
    assert first.process("a", orjson.dumps({"Records": records[:3]})).delivered == 3
    again = second.process("b", orjson.dumps({"Records": records}))
    assert (again.duplicates, again.delivered) == (3, 2)
    assert [d.event_id for d in sinks[1].documents] == [r["eventID"] for r in records[3:]]
    for store in stores:
        store.close()


def test_a_commit_applies_everything_and_clocks_only_move_forward(store: StateStore) -> None:
    store.commit(Writes(values={("session", "k"): (b"full", 50.0)}, clocks={"111111111111": 10.0},
                        holds=[_held("key:A"), _held("key:B")]))
    store.commit(Writes(defaults={("session", "k"): (b"thin", 60.0), ("session", "j"): (b"thin", 70.0)},
                        clocks={"111111111111": 4.0, "222222222222": 1.0}))
    assert store.get("session", "k") == b"full" and store.get("session", "j") == b"thin"
    assert float(store.get("stream", "111111111111") or 0) == 10.0
    assert float(store.get("stream", "222222222222") or 0) == 1.0
    assert store.expire("session", 65.0) == 1  # k at 50 (the default did not move it); j stays
    taken = store.release("key:A") + store.release("key:B")
    store.commit(Writes(done=[h.id for h in taken if h.id]))
    assert store.held_count() == 0


def test_scan_gives_every_entry_of_one_kind(store: StateStore) -> None:
    sessions = {f"ASIA{n:016d}": f"session {n}".encode() for n in range(1200)}  # several pages, a real cursor
    store.commit(Writes(values={("session", key): (value, 10.0) for key, value in sessions.items()}))
    store.commit(Writes(values={("caller", "shared-1"): (b"caller", None)}, clocks={"111111111111": 5.0}))
    assert dict(store.scan("session")) == sessions
    assert list(store.scan("caller")) == [("shared-1", b"caller")]
    assert [key for key, _ in store.scan("stream")] == ["111111111111"]
    assert list(store.scan("usage")) == []


def _calls(*calls: tuple[float, str | None, str | None]) -> bytes:
    """One step's usage delta for the calls given as (event time, source address, user agent)."""
    value = None
    for moment, ip, agent in calls:
        value = usage.add_call(value, moment, ip, agent)
    assert value is not None
    return value


def test_usage_deltas_merge_in_the_commit(store: StateStore) -> None:
    store.commit(Writes(usage={"K": _calls((100.0, "198.51.100.7", "aws-cli/2"), (160.0, "198.51.100.7", "boto3/1"))}))
    store.commit(Writes(usage={"K": _calls((50.0, "203.0.113.9", "aws-cli/2")), "J": _calls((70.0, None, None))},
                        values={("session", "K"): (b"s", 200.0)}))
    seen = usage.parse(store.get("usage", "K") or b"")
    assert (seen.calls, seen.first, seen.last) == (3, 50.0, 160.0)
    assert seen.ips == {"198.51.100.7": 100.0, "203.0.113.9": 50.0}
    assert seen.agents == {"aws-cli/2": 50.0, "boto3/1": 160.0}
    assert not seen.more_ips and not seen.more_agents
    other = usage.parse(store.get("usage", "J") or b"")
    assert (other.calls, other.ips, other.agents) == (1, {}, {})
    assert store.get("session", "K") == b"s"  # the rest of the commit applied beside it
    # Kept as long past its last call as a session can last: J (70) goes before K (160).
    assert store.expire("usage", 100.0 + usage.KEEP_SECONDS) == 1
    assert store.get("usage", "J") is None and store.get("usage", "K") is not None


def test_usage_keeps_the_earliest_addresses_whatever_the_order_of_commits(tmp_path: Path, redis_url: str) -> None:
    early = _calls(*[(float(n), f"198.51.100.{n}", "aws-cli/2") for n in range(1, 9)])
    late = _calls(*[(float(n), f"203.0.113.{n}", f"agent/{n}") for n in range(20, 26)])
    again = _calls((5.0, "203.0.113.20", "agent/20"))  # an address of `late`, seen earlier
    results = []
    for number, order in enumerate([(early, late, again), (again, late, early), (late, again, early)]):
        for store in (open_store(SqliteState(path=tmp_path / f"{number}.db")),
                      open_store(RedisState(type="redis", url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:8]}:"))):
            for delta in order:
                store.commit(Writes(usage={"K": delta}))
            results.append(usage.parse(store.get("usage", "K") or b""))
            store.close()
    first = results[0]
    assert all(result == first for result in results)
    assert first.calls == 15 and (first.first, first.last) == (1.0, 25.0)
    assert len(first.ips) == usage.LIMIT and first.more_ips
    assert first.ips["203.0.113.20"] == 5.0 and "203.0.113.21" in first.ips and "203.0.113.22" not in first.ips
    assert set(first.agents) == {"aws-cli/2", "agent/20", "agent/21", "agent/22", "agent/23", "agent/24", "agent/25"}
    assert not first.more_agents


def test_usage_counts_of_two_processes_add_up(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix))
    two = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix))
    for n in range(50):  # interleaved: each commit merges into what the other just wrote
        (one if n % 2 else two).commit(Writes(usage={"K": _calls((float(n), "198.51.100.7", None))}))
    seen = usage.parse(one.get("usage", "K") or b"")
    assert (seen.calls, seen.first, seen.last) == (50, 0.0, 49.0)
    one.close()
    two.close()


def test_a_usage_value_of_another_format_is_counted_afresh(store: StateStore) -> None:
    store.put("usage", "K", b'{"count": 7}')
    store.commit(Writes(usage={"K": _calls((10.0, "198.51.100.7", None))}))
    assert usage.parse(store.get("usage", "K") or b"").calls == 1


def test_a_read_only_sqlite_store_reads_beside_a_writer_and_creates_nothing(tmp_path: Path) -> None:
    from forwarder.state.base import StateError
    from forwarder.state.sqlite import SqliteStore

    with pytest.raises(StateError, match="cannot be read"):
        SqliteStore(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()
    writer = SqliteStore(tmp_path / "state.db")
    writer.put("session", "K", b"one")
    reader = SqliteStore(tmp_path / "state.db", read_only=True)
    daemon = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    daemon.execute("BEGIN IMMEDIATE")  # the daemon in the middle of a commit
    daemon.execute("INSERT INTO kv (kind, key, value) VALUES ('session', 'J', x'00')")
    assert dict(reader.scan("session")) == {"K": b"one"}  # not blocked, and sees only what is committed
    daemon.execute("COMMIT")
    assert reader.get("session", "J") == b"\x00"
    with pytest.raises(StateError):
        reader.put("session", "L", b"no")
    reader.close()
    daemon.close()
    writer.close()


def test_a_child_held_by_one_process_is_woken_when_another_stored_its_parent_first(redis_url: str, tmp_path: Path) -> None:
    """Two processes on one Redis: the child's process enriches it (parent unknown) but commits
    its hold only after the parent's process has stored the session and found nothing to
    release. The late commit sees the parent and wakes the child: it ships resolved."""
    from datetime import UTC, datetime, timedelta

    import orjson
    from cloudtrail import Collect, assume, call, issued_key, session_identity, user

    from forwarder.config import parse_config
    from forwarder.deadletter import DeadLetter
    from forwarder.enrich import Enricher
    from forwarder.pipeline import Pipeline

    config = parse_config({"chains": {"hold_back_seconds": 900}})
    state = RedisState(type="redis", url=redis_url, key_prefix=f"t{uuid.uuid4().hex[:8]}:")
    role, t0 = "arn:aws:iam::222222222222:role/Deploy", datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
    parent = assume(user("111111111111", "alice"), role, t0, recipient="222222222222")
    child = call(session_identity(role, issued_key(parent), parent["eventTime"]), t0 + timedelta(minutes=1))
    stores = [open_store(state), open_store(state)]
    sinks = [Collect(), Collect()]
    children, parents = (Pipeline(Enricher(config, store), [sink], DeadLetter(tmp_path / f"dl{n}"))
                         for n, (store, sink) in enumerate(zip(stores, sinks)))
    held = children.enricher.enrich_records("child", [orjson.dumps(child)])  # in work: not committed yet
    parents.process("parent", orjson.dumps({"Records": [parent]}))  # stored; nothing in the store to release
    assert held.held == 1 and sinks[1].documents[0].event_id == parent["eventID"]
    woken = stores[0].commit(held.step.writes)
    children.enricher.committed(held.step, woken)
    assert woken == {f"key:{issued_key(parent)}"}
    children.release_due()
    assert [d.assumerole["chain"]["resolved"] for d in sinks[0].documents] == [True]
    assert stores[0].held_count() == 0
    for store in stores:
        store.close()


def test_claims_of_another_process_are_seen_until_their_lease_ends(redis_url: str, tmp_path: Path) -> None:
    sqlite = open_store(SqliteState(path=tmp_path / "state.db"))
    assert sqlite.claims_elsewhere() is False  # one process owns the file
    sqlite.close()
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix, claim_lease_seconds=1))
    two = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix, claim_lease_seconds=1))
    one.commit(Writes(holds=[_held("key:A")]))
    assert len(one.release("key:A")) == 1
    assert one.claims_elsewhere() is False and two.claims_elsewhere() is True
    time.sleep(1.1)
    assert two.claims_elsewhere() is False
    one.close()
    two.close()


def test_exit_when_idle_waits_for_another_processs_claims_to_lapse(world: World, redis_url: str) -> None:
    state = {"type": "redis", "url": redis_url, "key_prefix": f"t{uuid.uuid4().hex[:8]}:", "claim_lease_seconds": 3}
    other = open_store(RedisState(**state))
    other.commit(Writes(holds=[_held("key:A")]))
    (claimed,) = other.release("key:A")  # a process now stopped, its lease still running
    config = world.config(state=state)
    assert world.run(config, idle=0.5) == 0
    watcher = open_store(RedisState(**state))
    assert watcher.claims_elsewhere() is False  # it exited only once the claim had lapsed
    assert claimed.id is not None
    watcher.close()
    other.close()
