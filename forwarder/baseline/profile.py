"""One baseline value: what was seen of a subject, a role, a pair, a session key, in event time.

Kind ``baseline`` in the state store. A step folds what its records teach into a delta (a
profile with the bounds that apply, ``Bounds``), and the store merges each delta into what it
holds inside its commit (``merged``; the Redis store runs the same merge in Lua,
forwarder/baseline/redis_merge.py). The merge is a join: commutative, associative and
idempotent. Two processes add up instead of overwriting each other, and the same observation
merged twice (a step still in work seen beside the commit that made it durable, the same
stream read again) counts once:

* ``first`` / ``last``: the earliest and latest observation (a role assumption's lessons give
  the end of its UTC day as the latest: seen again that day, a value changes nothing, and a
  delta that changes nothing is not written, ``Profile.covers``);
* ``facets``: named sets of values (networks, countries, hours of the week, days active,
  roles...), each value with its first and last observation; past ``Bounds.cap`` values the least
  recently seen go, and a value not seen for ``Bounds.keep`` seconds before the profile's last goes;
* ``days``: per local day, a bottom-k sample of the day's events: for each of the ``Bounds.sample``
  smallest 32-bit hashes of an eventID, its event time. Below ``sample`` events a day counts
  exactly; above, the count is estimated from the sample (k-minimum-values), and the same event
  seen twice is one hash. Days more than ``Bounds.days`` before the latest go. Stored as a flat
  list ``[hash, time, hash, time...]`` in the order of the hashes, and kept so when read: a day
  becomes a mapping only where it is counted into or read (most of a pair's days are neither
  when a step's delta is merged into it, and the days are most of its bytes).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

HASH_SPACE = 2**32


@dataclass(slots=True, frozen=True)
class Bounds:
    """What a profile keeps, carried in every delta so the store needs no configuration."""

    cap: int  # values per facet
    keep: int  # seconds a value (and the whole profile, after its last observation) is kept
    days: int  # days of counts kept before the latest
    sample: int  # hashes kept per day


@dataclass(slots=True)
class Profile:
    first: int
    last: int
    facets: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # facet -> value -> [first, last]
    # day ordinal -> hash -> event time; or, as read and not touched since, the stored flat list.
    days: dict[str, dict[int, int] | list[int]] = field(default_factory=dict)

    # -- what a step observes ----------------------------------------------------------------

    @classmethod
    def at(cls, moment: int) -> Profile:
        return cls(moment, moment)

    def see(self, facet: str, value: str, moment: int) -> None:
        seen = self.facets.setdefault(facet, {})
        known = seen.get(value)
        seen[value] = [moment, moment] if known is None else [min(known[0], moment), max(known[1], moment)]
        self._widen(moment)

    def count(self, day: int, event_id: str, moment: int) -> None:
        kept = self._day(str(day))
        digest = event_hash(event_id)
        kept[digest] = min(kept.get(digest, moment), moment)
        self._widen(moment)

    def absorb(self, other: Profile) -> None:
        """Add ``other`` into this profile in place, without bounds (a view, a step's delta: the
        bounds are the store's merge's); ``other`` is left as it is."""
        facets = self.facets
        for name, values in other.facets.items():
            seen = facets.get(name)
            if seen is None:
                facets[name] = {value: [f, l] for value, (f, l) in values.items()}
                continue
            for value, (f, l) in values.items():
                known = seen.get(value)
                if known is None:
                    seen[value] = [f, l]  # never shared: a profile's pairs are its own to change
                else:
                    if f < known[0]:
                        known[0] = f
                    if l > known[1]:
                        known[1] = l
        for day, kept in other.days.items():
            if day not in self.days and type(kept) is list:
                self.days[day] = list(kept)
                continue
            mine = self._day(day)
            for digest, moment in _pairs(kept):
                mine[digest] = min(mine.get(digest, moment), moment)
        if other.first < self.first:
            self.first = other.first
        if other.last > self.last:
            self.last = other.last

    def _day(self, day: str) -> dict[int, int]:
        """The day's sample as a mapping, to count into."""
        kept = self.days.get(day)
        if type(kept) is dict:
            return kept
        mapped = self.days[day] = dict(_pairs(kept)) if kept else {}
        return mapped

    def copy(self) -> Profile:
        fresh = Profile(self.first, self.last)
        fresh.absorb(self)
        return fresh

    def covers(self, other: Profile, sample: int) -> bool:
        """Whether absorbing ``other`` (then cutting a day to ``sample`` hashes) leaves this
        profile as it is: a delta the store need not merge."""
        if other.first < self.first or other.last > self.last:
            return False
        for name, values in other.facets.items():
            seen = self.facets.get(name)
            if seen is None:
                return False
            for value, (f, l) in values.items():
                known = seen.get(value)
                if known is None or f < known[0] or l > known[1]:
                    return False
        for day, kept in other.days.items():
            mine = self.days.get(day)
            if mine is None:
                return False
            held = dict(_pairs(mine))
            # A full bottom-k sample takes no hash above its largest.
            above = max(held) if len(held) >= sample else None
            for digest, moment in _pairs(kept):
                known = held.get(digest)
                if known is not None:
                    if known > moment:  # seen earlier by this delta
                        return False
                elif above is None or digest < above:  # a hash the sample would take
                    return False
        return True

    def _widen(self, moment: int) -> None:
        self.first, self.last = min(self.first, moment), max(self.last, moment)

    # -- what a judgement reads --------------------------------------------------------------

    def seen_before(self, facet: str, value: str, moment: int) -> bool:
        known = self.facets.get(facet, {}).get(value)
        return known is not None and known[0] < moment

    def values_before(self, facet: str, moment: int) -> list[str]:
        """The facet's values first seen before ``moment``, the earliest first (what was seen
        after ``moment`` changes neither the list nor its order: a replay says the same)."""
        seen = self.facets.get(facet, {})
        return [v for v, (f, _) in sorted(seen.items(), key=lambda item: (item[1][0], item[0])) if f < moment]

    def count_before(self, facet: str, moment: int) -> int:
        return sum(1 for f, _ in self.facets.get(facet, {}).values() if f < moment)

    def sample(self, day: int, sample: int) -> dict[int, int]:
        """The day's bottom-k sample, cut to ``sample`` (a view may hold more)."""
        kept = self._day(str(day)) if str(day) in self.days else {}
        return kept if len(kept) <= sample else dict(sorted(kept.items())[:sample])

    def __eq__(self, other: object) -> bool:
        """The same observations, whichever form a day is held in."""
        if not isinstance(other, Profile):
            return NotImplemented
        return (self.first, self.last, self.facets) == (other.first, other.last, other.facets) \
            and _flat_days(self) == _flat_days(other)


def _pairs(kept: dict[int, int] | list[int]) -> Any:
    """(hash, time) of a day in either form."""
    return kept.items() if type(kept) is dict else zip(kept[0::2], kept[1::2])


def _size(kept: dict[int, int] | list[int]) -> int:
    return len(kept) if type(kept) is dict else len(kept) // 2


def _flat_days(profile: Profile) -> dict[str, list[int]]:
    return {day: kept if type(kept) is list else [n for item in sorted(kept.items()) for n in item]
            for day, kept in profile.days.items()}


def event_hash(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=4).digest(), "big")


def day_total(kept: dict[int, int], sample: int) -> float:
    """Events of a day from its bottom-k sample: exact below the sample size, else estimated
    (k-minimum-values: the k-th smallest of uniform hashes says how many there were)."""
    if len(kept) < sample:
        return float(len(kept))
    return (len(kept) - 1) * HASH_SPACE / (max(kept) + 1)


# -- serialised form, and the merge ------------------------------------------------------------


def dump(profile: Profile, bounds: Bounds | None = None) -> bytes:
    """A stored value, or (with ``bounds``) a step's delta."""
    data: dict[str, Any] = {"first": profile.first, "last": profile.last, "facets": profile.facets,
                            "days": _flat_days(profile)}
    if bounds is not None:
        data["bounds"] = [bounds.cap, bounds.keep, bounds.days, bounds.sample]
    return orjson.dumps(data)


def parse(value: bytes) -> tuple[Profile, Bounds | None]:
    data = orjson.loads(value)
    # Redis's Lua writes an empty table as {} either way. The numbers are whole seconds and
    # hashes both ways (cjson writes integers below 10^14 as integers).
    facets, days = data["facets"], data["days"]
    if not (isinstance(facets, dict) and isinstance(days, dict)):
        raise TypeError("not a baseline value")
    for day, flat in days.items():
        if type(flat) is not list or len(flat) % 2:
            if flat != {}:
                raise TypeError("not a day's sample")
            days[day] = []
    profile = Profile(int(data["first"]), int(data["last"]), facets, days)
    bounds = data.get("bounds")
    return profile, _bounds(*bounds) if bounds is not None else None


@functools.lru_cache(maxsize=16)
def _bounds(cap: int, keep: int, days: int, sample: int) -> Bounds:
    """A delta's bounds (every delta of a process carries one of a few)."""
    return Bounds(int(cap), int(keep), int(days), int(sample))


def readable(value: bytes) -> Profile | None:
    """A stored value, or None for one this version cannot read: it starts afresh."""
    try:
        return parse(value)[0]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def merged(stored: bytes | None, delta: bytes) -> tuple[Profile, int]:
    """What the store holds after ``delta`` is merged into ``stored``, and when it expires."""
    profile, bounds = parse(delta)
    assert bounds is not None, "a delta carries its bounds"
    known = readable(stored) if stored is not None else None
    result = _bounded(known, profile, bounds) if known is not None else _bounded(profile, Profile(profile.first, profile.last), bounds)
    return result, result.last + bounds.keep


def join(a: Profile, b: Profile, bounds: Bounds) -> Profile:
    """The join of two profiles, cut to ``bounds``: the same whichever is given first."""
    return _bounded(a.copy(), b, bounds)


def _bounded(target: Profile, other: Profile, bounds: Bounds) -> Profile:
    """``target`` (changed in place) with ``other`` absorbed, cut to ``bounds``."""
    target.absorb(other)
    horizon = target.last - bounds.keep
    # Nothing was last seen before the profile's first observation: a profile younger than the
    # retention has nothing to forget, and only a facet over its cap is cut (no scan of every value).
    young = target.first >= horizon
    for name, union in target.facets.items():
        if len(union) > bounds.cap or (not young and any(t[1] < horizon for t in union.values())):
            kept = sorted(((v, t) for v, t in union.items() if t[1] >= horizon), key=lambda item: (-item[1][1], item[0]))
            target.facets[name] = dict(kept[:bounds.cap])
    if not target.days:
        return target
    newest = max(int(d) for d in target.days)
    for day in list(target.days):
        kept = target.days[day]
        if int(day) < newest - bounds.days:
            del target.days[day]
        elif _size(kept) > bounds.sample:
            target.days[day] = dict(sorted(_pairs(kept))[:bounds.sample])
    return target
