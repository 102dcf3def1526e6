"""What was done with a session's key: the first and last call (event time), how many, from where.

Kind ``usage`` in the state store, by access key id. A step folds its own calls into a delta
(``Writes.usage``) with ``count_calls``; the store merges each delta into what it holds inside its
commit (``merged``; the Redis store runs the same merge in Lua), so two steps, or two daemons on
one Redis, add up instead of overwriting each other's counts. The merge is commutative and
associative: counts add, first and last are the minimum and maximum, and of the source
addresses and user agents the ``LIMIT`` seen earliest are kept, each with its first call.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from forwarder.record import epoch, text
from forwarder.state.base import Writes

LIMIT = 10  # distinct source addresses, and user agents, kept per key
# Kept past a key's last call as long as the longest STS session lasts (12 hours): while the
# key may still be in use, its count is there.
KEEP_SECONDS = 12 * 3600


@dataclass(slots=True)
class Usage:
    calls: int
    first: float
    last: float
    ips: dict[str, float] = field(default_factory=dict)  # source address -> its first call
    agents: dict[str, float] = field(default_factory=dict)  # user agent -> its first call
    more_ips: bool = False  # more distinct addresses were seen than are kept
    more_agents: bool = False

    @property
    def expires_at(self) -> float:
        return self.last + KEEP_SECONDS


def parse(value: bytes) -> Usage:
    data = orjson.loads(value)
    return Usage(
        calls=int(data["calls"]),
        first=float(data["first"]),
        last=float(data["last"]),
        # Redis's Lua writes an empty table as {} either way: objects, not lists, survive it.
        ips={k: float(v) for k, v in data["ips"].items()},
        agents={k: float(v) for k, v in data["agents"].items()},
        more_ips=bool(data.get("more_ips")),
        more_agents=bool(data.get("more_agents")),
    )


def dump(usage: Usage) -> bytes:
    return orjson.dumps({
        "calls": usage.calls, "first": usage.first, "last": usage.last, "ips": usage.ips,
        "agents": usage.agents, "more_ips": usage.more_ips, "more_agents": usage.more_agents,
    })


def add_call(previous: bytes | None, moment: float, ip: str | None, agent: str | None) -> bytes:
    """``previous`` (a usage value, or None) with one more call, made at ``moment``."""
    call = _one_call(moment, ip, agent)
    return dump(call if previous is None else _merge(parse(previous), call))


def merged(stored: bytes | None, delta: bytes) -> Usage:
    """What the store holds after ``delta`` (a step's calls) is merged into ``stored``."""
    known = readable(stored) if stored is not None else None
    return parse(delta) if known is None else _merge(known, parse(delta))


def readable(stored: bytes) -> Usage | None:
    """A stored value, or None for one this version cannot read (another version's format):
    counted afresh on the next call rather than failing every commit, and not shown."""
    try:
        return parse(stored)
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def count_calls(writes: Writes, calls: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
    """Count the calls, each (the session key it was made with, its record), into a step's
    writes: one value per key, written once (not parsed and written again per call). A call
    without a readable ``eventTime`` cannot be placed in event time and is not counted."""
    staged: dict[str, Usage] = {}
    for key, record in calls:
        moment = epoch(record.get("eventTime"))
        if moment is None:
            continue
        call = _one_call(moment, text(record.get("sourceIPAddress")), text(record.get("userAgent")))
        known = staged.get(key)
        if known is None and (previous := writes.usage.get(key)) is not None:
            known = parse(previous)
        staged[key] = call if known is None else _merge(known, call)
    for key, usage in staged.items():
        writes.usage[key] = dump(usage)


def _one_call(moment: float, ip: str | None, agent: str | None) -> Usage:
    return Usage(1, moment, moment, {ip: moment} if ip else {}, {agent: moment} if agent else {})


def _merge(a: Usage, b: Usage) -> Usage:
    ips, more_ips = _earliest(a.ips, b.ips)
    agents, more_agents = _earliest(a.agents, b.agents)
    return Usage(a.calls + b.calls, min(a.first, b.first), max(a.last, b.last), ips, agents,
                 a.more_ips or b.more_ips or more_ips, a.more_agents or b.more_agents or more_agents)


def _earliest(a: dict[str, float], b: dict[str, float]) -> tuple[dict[str, float], bool]:
    """The union with each value's first call, cut to the LIMIT earliest; True if it was cut."""
    union = dict(a)
    for value, moment in b.items():
        if value not in union or moment < union[value]:
            union[value] = moment
    if len(union) <= LIMIT:
        return union, False
    return dict(sorted(union.items(), key=lambda item: (item[1], item[0]))[:LIMIT]), True
