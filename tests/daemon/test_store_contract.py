"""The state store's contract, one suite for SQLite and Redis; and Redis's claims across processes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from forwarder.config import RedisState, SqliteState
from forwarder.state import Held, StateStore, open_store
from forwarder.state.base import Writes


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
