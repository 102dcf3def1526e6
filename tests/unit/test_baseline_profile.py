"""A baseline value's merge (forwarder/baseline/profile.py): a join, so steps and processes add up,
and the same observation merged twice counts once; bounded by caps, retention and the day sample."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.baseline.profile import Bounds, Profile, day_total, dump, event_hash, join, merged, parse

WIDE = Bounds(cap=1000, keep=10**9, days=1000, sample=1000)  # nothing is cut: the join itself


@st.composite
def profiles(draw: st.DrawFn) -> Profile:
    """A step's delta: a few observations of a few facets and days."""
    moments = draw(st.lists(st.integers(1_000_000, 1_000_500), min_size=1, max_size=8))
    found = Profile.at(moments[0])
    for moment in moments:
        found.see(draw(st.sampled_from(["net", "how"])), draw(st.sampled_from(["a", "b", "c", "d"])), moment)
        found.count(draw(st.integers(10, 13)), draw(st.sampled_from([f"event-{n}" for n in range(12)])), moment)
    return found


@settings(max_examples=150, deadline=None)
@given(profiles(), profiles(), profiles())
def test_the_join_is_commutative_associative_and_idempotent(a: Profile, b: Profile, c: Profile) -> None:
    assert join(a, b, WIDE) == join(b, a, WIDE)
    assert join(join(a, b, WIDE), c, WIDE) == join(a, join(b, c, WIDE), WIDE)
    assert join(a, a, WIDE) == join(a, Profile(a.first, a.last), WIDE)
    both = join(a, b, WIDE)
    assert join(both, b, WIDE) == both  # a step seen in work and committed counts once


@settings(max_examples=60, deadline=None)
@given(st.lists(profiles(), min_size=2, max_size=5))
def test_the_store_holds_the_same_whatever_the_order_of_the_commits(deltas: list[Profile]) -> None:
    results = []
    for order in itertools.islice(itertools.permutations(deltas), 24):
        stored = None
        for delta in order:
            stored = dump(merged(stored, dump(delta, WIDE))[0])
        results.append(parse(stored or b"")[0])
    assert all(result == results[0] for result in results)


SMALL = Bounds(cap=3, keep=300, days=2, sample=4)  # caps, retention and the day sample all cut


@settings(max_examples=300, deadline=None)
@given(profiles(), profiles(), st.sampled_from([WIDE, SMALL]))
def test_a_delta_a_value_covers_would_change_nothing(a: Profile, b: Profile, bounds: Bounds) -> None:
    """A step writes no delta its values as read already cover: merged, it would leave them as they are."""
    stored = parse(dump(merged(None, dump(a, bounds))[0]))[0]
    facet, value, (first, last) = next((f, v, t) for f, values in stored.facets.items() for v, t in values.items())
    part = Profile(first, last, {facet: {value: [first, last]}})  # one value again, as seen
    for delta in (b, stored, part, Profile.at(stored.first - 1), Profile.at(stored.last + 1)):
        if stored.covers(delta, bounds.sample):
            assert merged(dump(stored), dump(delta, bounds))[0] == stored
    assert stored.covers(stored, bounds.sample) and stored.covers(part, bounds.sample)
    assert not stored.covers(Profile.at(stored.first - 1), bounds.sample)
    # What the merge would change is not covered: a value seen later, a day's event seen earlier.
    if last < stored.last:
        assert not stored.covers(Profile(first, stored.last, {facet: {value: [first, stored.last]}}), bounds.sample)
    for day, kept in stored.days.items():
        digest, moment = next(iter(dict(zip(kept[0::2], kept[1::2])).items()))
        if moment > stored.first:
            assert not stored.covers(Profile(moment - 1, moment - 1, {}, {day: {digest: moment - 1}}), bounds.sample)


def test_a_value_round_trips_and_a_delta_carries_its_bounds() -> None:
    found = Profile.at(100)
    found.see("net", "198.51.100.0/24", 100)
    found.see("cc", "DE", 100)
    found.count(20000, "e1", 100)
    bounds = Bounds(5, 3600, 28, 32)
    value, carried = parse(dump(found, bounds))
    assert value == found and carried == bounds
    assert parse(dump(found)) == (found, None)
    stored, expires = merged(None, dump(found, bounds))
    assert stored == found and expires == 100 + 3600


def test_caps_keep_the_most_recently_seen_and_retention_forgets_the_stale() -> None:
    old = Profile.at(0)
    for n in range(10):
        old.see("net", f"net-{n}", 1000 + n)
    old.see("net", "stale", 10)
    newer = Profile.at(5000)
    newer.see("net", "net-0", 5000)  # seen again: the most recent now
    kept, _ = merged(dump(old), dump(newer, Bounds(cap=4, keep=4900, days=28, sample=32)))
    # Retention: "stale" was last seen 4990 s before the latest. Cap: the four most recently seen.
    assert list(kept.facets["net"]) == ["net-0", "net-9", "net-8", "net-7"]
    assert kept.facets["net"]["net-0"] == [1000, 5000]


def test_a_day_counts_exactly_below_its_sample_and_estimates_above() -> None:
    day = Profile.at(0)
    for n in range(20):
        day.count(7, f"event-{n}", n)
    day.count(7, "event-3", 99)  # the same event again: one hash, its earliest time
    assert day_total(day.sample(7, 32), 32) == 20 and day.days["7"][event_hash("event-3")] == 3
    busy = Profile.at(0)
    for n in range(5000):
        busy.count(7, f"event-{n}", n)
    stored, _ = merged(None, dump(busy, Bounds(cap=10, keep=10**6, days=28, sample=64)))
    assert len(stored.sample(7, 10**6)) == 64
    assert 5000 * 0.7 < day_total(stored.sample(7, 64), 64) < 5000 * 1.3  # k-minimum-values: about 1/sqrt(k)


def test_days_beyond_the_window_go() -> None:
    history = Profile.at(0)
    for day in range(100, 140):
        history.count(day, f"event-{day}", day)
    stored, _ = merged(None, dump(history, Bounds(cap=10, keep=10**6, days=28, sample=32)))
    assert sorted(map(int, stored.days)) == list(range(111, 140))


def test_a_value_of_another_format_starts_afresh() -> None:
    delta = Profile.at(10)
    for stored in (b"not json", b'{"first": 1}', b'{"first": 1, "last": 2, "facets": [], "days": {}}'):
        assert merged(stored, dump(delta, WIDE))[0] == delta
