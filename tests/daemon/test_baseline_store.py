"""The baseline in both state stores: the same merge inside the commit (Python in SQLite, Lua in
Redis), idempotent, adding up across processes, read in one round trip, forgotten in event time."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from forwarder.baseline.profile import Bounds, Profile, dump, readable
from forwarder.config import RedisState, SqliteState
from forwarder.state import StateStore, open_store
from forwarder.state.base import Writes

BOUNDS = Bounds(cap=6, keep=40_000, days=3, sample=8)


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    yield from _stores(request, tmp_path, request.param)


def _stores(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> Iterator[StateStore]:
    if kind == "sqlite":
        opened = open_store(SqliteState(path=tmp_path / f"{uuid.uuid4().hex}.db"))
    else:
        url = request.getfixturevalue("redis_url")
        opened = open_store(RedisState(type="redis", url=url, key_prefix=f"t{uuid.uuid4().hex[:8]}:"))
    yield opened
    opened.close()


def _deltas(seed: int, count: int) -> list[bytes]:
    """Steps' deltas that overflow every bound: facets past the cap, days past the window and samples."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        moment = rng.randrange(100_000, 400_000)
        delta = Profile.at(moment)
        for _ in range(rng.randrange(1, 6)):
            at = rng.randrange(100_000, 400_000)
            delta.see(rng.choice(["net", "cc", "how"]), f"v{rng.randrange(12)}", at)
            delta.count(at // 86400, f"event-{rng.randrange(60)}", at)
        out.append(dump(delta, BOUNDS))
    return out


def test_sqlite_and_redis_hold_the_same_after_the_same_commits(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    deltas = _deltas(15, 40)
    held = []
    for kind in ("sqlite", "redis"):
        for opened in _stores(request, tmp_path, kind):
            for number in range(0, len(deltas), 4):  # four keys per commit, as a step stages them
                opened.commit(Writes(baseline={f"p|k{n % 3}": deltas[n] for n in range(number, number + 4)}))
            held.append({key: readable(value) for key, value in sorted(opened.scan("baseline"))})
    sqlite, redis = held
    assert sqlite == redis and len(sqlite) == 3
    for found in sqlite.values():
        assert found is not None
        assert all(len(values) <= BOUNDS.cap for values in found.facets.values())
        assert all(len(found.sample(int(day), 10**6)) <= BOUNDS.sample for day in found.days)
        assert max(map(int, found.days)) - min(map(int, found.days)) <= BOUNDS.days


def test_a_delta_committed_twice_counts_once(store: StateStore) -> None:
    delta = _deltas(3, 1)[0]
    store.commit(Writes(baseline={"p|a": delta}))
    once = store.get("baseline", "p|a")
    store.commit(Writes(baseline={"p|a": delta}))  # a step seen in work and committed, a replayed stream
    assert readable(store.get("baseline", "p|a") or b"") == readable(once or b"")


def test_get_many_reads_what_there_is_and_expiry_is_in_event_time(store: StateStore) -> None:
    early, late = Profile.at(1000), Profile.at(90_000)
    store.commit(Writes(baseline={"k|early": dump(early, BOUNDS), "k|late": dump(late, BOUNDS)}))
    found = store.get_many("baseline", ["k|early", "k|late", "k|never"])
    assert set(found) == {"k|early", "k|late"}
    assert store.get_many("baseline", []) == {}
    # Each value is kept `keep` seconds past its last observation.
    assert store.expire("baseline", 1000 + BOUNDS.keep + 1) == 1
    assert set(store.get_many("baseline", ["k|early", "k|late"])) == {"k|late"}


def test_two_processes_on_one_redis_add_up(redis_url: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    one = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix))
    two = open_store(RedisState(type="redis", url=redis_url, key_prefix=prefix))
    for n in range(30):  # interleaved: each commit merges into what the other just wrote
        seen = Profile.at(1000 + n)
        seen.see("net", f"net-{n % 5}", 1000 + n)
        seen.count(0, f"event-{n}", 1000 + n)
        (one if n % 2 else two).commit(Writes(baseline={"p|x": dump(seen, Bounds(50, 10**6, 28, 64))}))
    found = readable(one.get("baseline", "p|x") or b"")
    assert found is not None and (found.first, found.last) == (1000, 1029)
    assert len(found.sample(0, 64)) == 30 and set(found.facets["net"]) == {f"net-{n}" for n in range(5)}
    one.close()
    two.close()
