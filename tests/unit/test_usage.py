"""A key's usage (forwarder/usage.py): one call folded in, a step's calls merged into the store's."""

from __future__ import annotations

import itertools
import random

from forwarder.record import epoch
from forwarder.state.base import Writes
from forwarder.usage import KEEP_SECONDS, LIMIT, Usage, add_call, count_calls, dump, merged, parse


def _record(when: object, ip: object = "198.51.100.7", agent: object = "aws-cli/2.15.0") -> dict[str, object]:
    return {"eventTime": when, "sourceIPAddress": ip, "userAgent": agent, "eventName": "ListBuckets"}


def test_a_call_folded_into_nothing_and_into_a_value() -> None:
    one = parse(add_call(None, 100.0, "198.51.100.7", "aws-cli/2"))
    assert one == Usage(1, 100.0, 100.0, {"198.51.100.7": 100.0}, {"aws-cli/2": 100.0})
    two = parse(add_call(add_call(None, 100.0, "198.51.100.7", "aws-cli/2"), 40.0, "198.51.100.7", None))
    assert two == Usage(2, 40.0, 100.0, {"198.51.100.7": 40.0}, {"aws-cli/2": 100.0})
    assert two.expires_at == 100.0 + KEEP_SECONDS


def test_count_calls_reads_the_records_and_adds_up_within_a_step() -> None:
    writes = Writes()
    count_calls(writes, [("K", _record("2026-03-31T14:41:05Z"))])
    count_calls(writes, [
        ("K", _record("2026-03-31T14:46:05Z", ip="203.0.113.50", agent=None)),
        ("K", _record(None)),  # no event time: cannot be placed, not counted
        ("K", _record("2026-03-31T14:50:00Z", ip={"not": "text"}, agent=17)),
        ("J", _record(12)),
    ])
    assert bool(writes) and set(writes.usage) == {"K"}
    seen = parse(writes.usage["K"])
    assert (seen.calls, seen.first, seen.last) == (3, 1774968065.0, 1774968600.0)
    assert seen.ips == {"198.51.100.7": 1774968065.0, "203.0.113.50": 1774968365.0}
    assert seen.agents == {"aws-cli/2.15.0": 1774968065.0}


def test_the_merge_is_the_same_in_any_order_and_grouping() -> None:
    deltas = [add_call(None, float(n), f"198.51.100.{n % 13}", f"agent/{n % 4}") for n in range(30)]
    deltas.append(add_call(None, 0.5, "203.0.113.1", None))
    reference = None
    for order in itertools.islice(itertools.permutations(deltas[-6:]), 40):
        value = None
        for delta in [*deltas[:-6], *order]:
            value = dump(merged(value, delta))
        result = parse(value or b"")
        reference = reference or result
        assert result == reference
    assert reference is not None
    assert reference.calls == 31 and (reference.first, reference.last) == (0.0, 29.0)
    assert len(reference.ips) == LIMIT and reference.more_ips
    assert reference.ips["203.0.113.1"] == 0.5 and set(reference.agents) == {f"agent/{n}" for n in range(4)}
    # Grouped: two steps' deltas merged first, then into the store's value.
    halves: list[bytes | None] = [None, None]
    for number, delta in enumerate(deltas):
        halves[number % 2] = dump(merged(halves[number % 2], delta))
    assert merged(halves[0], halves[1] or b"") == reference


def test_a_stored_value_it_cannot_read_is_counted_afresh() -> None:
    delta = add_call(None, 10.0, None, None)
    for stored in (b"not json", b'{"count": 7}', b'{"calls": 1, "first": 1, "last": 1, "ips": [], "agents": {}}'):
        assert merged(stored, delta) == parse(delta)


def test_a_step_counting_its_calls_in_place_holds_what_merging_them_one_by_one_holds() -> None:
    rng = random.Random(3)
    calls = [(rng.choice("KJ"), _record(f"2026-03-31T14:{rng.randrange(60):02d}:{rng.randrange(60):02d}Z",
                                        ip=f"198.51.100.{rng.randrange(15)}", agent=f"agent/{rng.randrange(14)}"))
             for _ in range(200)]
    writes = Writes()
    count_calls(writes, calls)
    for key in "KJ":
        value = None
        for called, record in calls:
            if called == key:
                moment = epoch(record["eventTime"])
                assert moment is not None
                value = dump(merged(value, add_call(None, moment, record["sourceIPAddress"], record["userAgent"])))
        assert parse(writes.usage[key]) == parse(value or b""), key
