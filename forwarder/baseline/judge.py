"""The flags of a role assumption against its baseline, and of a call against its session's issuance,
each with the sentence that explains it. Pure functions over profiles (forwarder/baseline/profile.py)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from forwarder.baseline.profile import Profile, day_total

DAY = 86400
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
FLAGS = ("new_pair", "new_role_for_subject", "new_subject_for_role", "new_network", "new_country", "new_region",
         "unusual_hour", "volume_spike")
MAD_TO_SIGMA = 1.4826  # the median absolute deviation of a normal distribution, scaled to its deviation
_LISTED = 3  # usual values named in a sentence


@dataclass(frozen=True, slots=True)
class Rules:
    """The configuration's thresholds, in seconds and counts."""

    learning: int  # seconds
    min_days: int  # days on which something was seen
    volume_days: int
    floor: int
    factor: float
    spread: float
    sample: int
    zone: str


class Assumption(NamedTuple):  # a tuple: one is made per role assumption, and never changed
    """What one role assumption shows the baseline."""

    subject: str
    role: str
    moment: int
    day: int  # local date ordinal
    local: datetime  # in the configured zone
    network: str | None
    country: str | None
    as_number: int | None
    agent: str | None
    region: str | None
    event_hash: int
    service_linked: bool

    @property
    def hour(self) -> str:
        return f"{WEEKDAYS[self.local.weekday()]}{self.local.hour:02d}"


class Views(NamedTuple):
    """The baseline as of the assumption: the pair, its subject and role, the whole baseline."""

    pair: Profile | None
    subject: Profile | None
    role: Profile | None
    everything: Profile | None


def flags(seen: Assumption, views: Views, rules: Rules) -> tuple[dict[str, Any], bool]:
    """``assumerole.baseline`` of one role assumption, and whether that verdict is firm: whether
    no earlier event read later (within the hold-back window) can change it. A flag is never
    firm (the earlier event may be the one that sets the value); no flag is, as observations only
    add up, except where an earlier event can still mature a baseline (one day short of
    ``min_days``) or bring a day's count to the threshold."""
    out: dict[str, Any] = dict.fromkeys(FLAGS, False)
    reasons: list[str] = []
    out["learning"] = False
    out["reasons"] = reasons
    who, role = short(seen.subject), short(seen.role)
    learning = _learning(seen, views, rules)
    if learning:
        out["learning"] = True
        reasons.append(learning)
        return out, not any(_day_short(view, seen.moment, rules) for view in (views.subject, views.pair))
    assert views.subject is not None
    pair, subject = _before(views.pair, seen.moment), views.subject
    since = _days_since(subject.first, seen.moment)
    if pair is None:
        out["new_pair"] = True
        reasons.append(f"This is the first time {who} ({seen.subject}) assumed {role} ({seen.role}) in the baseline.")
    if not subject.seen_before("role", seen.role, seen.moment):
        out["new_role_for_subject"] = True
        reasons.append(f"{who} has never assumed {role}; in {since} they assumed "
                       f"{_listed(subject.values_before('role', seen.moment), short) or 'no role'}.")
    role_view = _mature(views.role, seen.moment, rules)
    firm = role_view is not None or not _day_short(views.role, seen.moment, rules)
    if role_view is not None and not role_view.seen_before("subj", seen.subject, seen.moment):
        out["new_subject_for_role"] = True
        reasons.append(f"{role} has never been assumed by {who}; in {_days_since(role_view.first, seen.moment)} it was "
                       f"assumed by {_listed(role_view.values_before('subj', seen.moment), short) or 'nobody'}.")
    # A new pair has no networks or hours of its own yet: the subject's stand for them.
    reference, of = (pair, "this pair") if pair is not None else (subject, who)
    where = _where(seen)
    if seen.network and not reference.seen_before("net", seen.network, seen.moment):
        out["new_network"] = True
        reasons.append(f"{who} assumed {role} from {where}, a network not seen for {of} in {since}; "
                       f"usual: {_listed(reference.values_before('net', seen.moment)) or 'none'}.")
    if seen.country and not reference.seen_before("cc", seen.country, seen.moment):
        out["new_country"] = True
        reasons.append(f"{who} assumed {role} from {seen.country}, a country not seen for {of} in {since}; "
                       f"usual: {_listed(reference.values_before('cc', seen.moment)) or 'none known'}.")
    if pair is not None and seen.service_linked and seen.region and not pair.seen_before("reg", seen.region, seen.moment):
        out["new_region"] = True
        reasons.append(f"{who} assumed the service-linked role {role} in {seen.region}, a region not seen for this "
                       f"pair in {since}; usual: {_listed(pair.values_before('reg', seen.moment)) or 'none'}.")
    if not any(reference.seen_before("how", hour, seen.moment) for hour in neighbours(seen.hour)):
        out["unusual_hour"] = True
        reasons.append(f"{who} assumed {role} on {_DAY_NAMES[seen.local.weekday()]} at {seen.local:%H:%M} "
                       f"({rules.zone}), an hour not seen for {of}; usual: {usual_hours(reference, seen.moment)}.")
    if pair is not None:
        spike, near = _spike(pair, seen, rules)
        firm = firm and not near
        if spike:
            out["volume_spike"] = True
            reasons.append(f"{who} assumed {role} {spike[0]:.0f} times on {seen.local:%Y-%m-%d} by this event, against a "
                           f"median of {spike[1]:g} a day over the {spike[2]} days before (a spike from {spike[3]:.0f}).")
    return out, firm and not reasons


def _learning(seen: Assumption, views: Views, rules: Rules) -> str | None:
    """Why no flag can be judged yet, or None."""
    everything = _before(views.everything, seen.moment)
    if everything is None or everything.first > seen.moment - rules.learning:
        return f"The baseline is still learning: it raises flags once it holds {rules.learning // DAY} days of history."
    who = short(seen.subject)
    subject = _before(views.subject, seen.moment)
    if subject is None:
        return f"{who} is new to the baseline: it is learned for {rules.learning // DAY} days before flags are raised."
    if _mature(subject, seen.moment, rules) is None:
        return (f"{who} is still being learned: first seen {_days_since(subject.first, seen.moment)} ago, "
                f"seen on {_days_seen(subject, seen.moment)} (flags after {rules.learning // DAY} days, "
                f"and {rules.min_days} days seen).")
    pair = _before(views.pair, seen.moment)
    if pair is not None and _mature(pair, seen.moment, rules) is None:
        return (f"{who} assuming {short(seen.role)} is still being learned: first seen "
                f"{_days_since(pair.first, seen.moment)} ago, seen on {_days_seen(pair, seen.moment)} (flags after "
                f"{rules.learning // DAY} days, and {rules.min_days} days seen).")
    return None


def _before(profile: Profile | None, moment: int) -> Profile | None:
    """The profile if anything of it was seen before ``moment`` (a replayed event sees only itself)."""
    return profile if profile is not None and profile.first < moment else None


def _mature(profile: Profile | None, moment: int, rules: Rules) -> Profile | None:
    profile = _before(profile, moment)
    if profile is None or profile.first > moment - rules.learning:
        return None
    return profile if profile.count_before("day", moment) >= rules.min_days else None


def _day_short(profile: Profile | None, moment: int, rules: Rules) -> bool:
    """Old enough, and seen on one day less than ``min_days``: an earlier event of another day,
    read later, would mature it."""
    profile = _before(profile, moment)
    return (profile is not None and profile.first <= moment - rules.learning
            and profile.count_before("day", moment) == rules.min_days - 1)


def _days_seen(profile: Profile, moment: int) -> str:
    days = profile.count_before("day", moment)
    return "one day" if days == 1 else f"{days} days"


def count_before(profile: Profile, day: int, moment: int, own: int | None, sample: int) -> tuple[float, float]:
    """(the day's events before ``moment``, those up to it with the event ``own`` counted once)."""
    kept = dict(profile.sample(day, sample))
    if own is not None:
        kept.setdefault(own, moment)
    if not kept:
        return 0.0, 0.0
    scale = day_total(kept, sample) / len(kept)
    earlier = sum(1 for t in kept.values() if t < moment)
    upto = sum(1 for t in kept.values() if t <= moment)
    return earlier * scale, upto * scale


def _spike(pair: Profile, seen: Assumption, rules: Rules) -> tuple[tuple[float, float, int, float] | None, bool]:
    """(today's count by this event, the median, the days it is over, the threshold) when this
    event is the one that takes the day past the threshold; and whether the day's count is near
    it, below (at half of it or more): earlier events read later may make this one the crossing."""
    counted = [int(d) for d in pair.days if int(d) < seen.day]
    if not counted:
        return None, False
    history = [day_total(pair.sample(d, rules.sample), rules.sample)
               for d in range(max(seen.day - rules.volume_days, min(counted)), seen.day)]
    median = statistics.median(history)
    deviation = statistics.median(abs(n - median) for n in history) * MAD_TO_SIGMA
    threshold = max(rules.floor, rules.factor * median, median + rules.spread * max(deviation, 1.0))
    earlier, upto = count_before(pair, seen.day, seen.moment, seen.event_hash, rules.sample)
    if earlier < threshold <= upto:
        return (upto, median, len(history), threshold), True
    return None, threshold / 2 <= upto < threshold


def neighbours(hour: str) -> list[str]:
    """The hour of the week and the hours beside it on any day of the same kind (weekday or
    weekend): an hour usual on a Monday is usual on a Tuesday, and a daylight-saving change or a
    job that starts a little late stays inside it."""
    day, clock = WEEKDAYS.index(hour[:3]), int(hour[3:])
    days = WEEKDAYS[:5] if day < 5 else WEEKDAYS[5:]
    return [f"{d}{h:02d}" for d in days for h in (clock - 1, clock, clock + 1) if 0 <= h < 24]


def usual_hours(profile: Profile, moment: int) -> str:
    hours = profile.values_before("how", moment)
    parts = []
    for label, days in (("weekdays", WEEKDAYS[:5]), ("weekends", WEEKDAYS[5:])):
        seen = sorted({int(h[3:]) for h in hours if h[:3] in days})
        if seen:
            parts.append(f"{label} {_ranges(seen)}")
    return ", ".join(parts) or "none"


def _ranges(hours: list[int]) -> str:
    spans: list[list[int]] = []
    for hour in hours:
        if spans and hour == spans[-1][1] + 1:
            spans[-1][1] = hour
        else:
            spans.append([hour, hour])
    return " and ".join(f"{a:02d}h" if a == b else f"{a:02d}-{b:02d}h" for a, b in spans)


def _where(seen: Assumption) -> str:
    detail = [part for part in (f"AS{seen.as_number}" if seen.as_number else None, seen.country) if part]
    return f"{seen.network} ({', '.join(detail)})" if detail else str(seen.network)


def _listed(values: list[str], show: Any = str) -> str:
    shown = [show(v) for v in values[:_LISTED]]
    more = len(values) - len(shown)
    if more > 0:
        shown.append(f"{more} more")
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1] if shown else ""


def _days_since(first: int, moment: int) -> str:
    days = max(0, (moment - first) // DAY)
    return "one day" if days == 1 else f"{days} days" if days else "less than a day"


def short(name: str) -> str:
    """A name an analyst reads at a glance: the last part of an ARN (``bob``, ``HumanOps``)."""
    return name.rsplit("/", 1)[-1] if name.startswith("arn:") and "/" in name else name


# -- the calls made with a session's credentials ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Issuance:
    """Where a session's credentials were issued (its session remembers the issuing call)."""

    ip: str | None
    network: str | None
    country: str | None
    as_number: int | None
    vpc_endpoint_id: str | None
    user_agent: str | None

    def fields(self) -> dict[str, Any]:
        return {"ip": self.ip, "network": self.network, "country": self.country,
                "vpc_endpoint_id": self.vpc_endpoint_id, "user_agent": self.user_agent}


NO_ISSUANCE = {"ip": None, "network": None, "country": None, "vpc_endpoint_id": None, "user_agent": None}


@dataclass(frozen=True, slots=True)
class Call:
    """What one call with a session's key shows."""

    key: str
    role: str | None  # the session's role, for the sentence
    moment: int
    network: str | None
    public: bool
    country: str | None
    as_number: int | None
    vpc_endpoint_id: str | None


def elsewhere(issued: Issuance | None, public: bool, network: str | None, as_number: int | None,
              vpc_endpoint_id: str | None) -> bool:
    """A call from ``network`` comes from a public network other than the one the key was issued
    from (its first such call is flagged, once per network: see ``Baseline``)."""
    if issued is None or issued.ip is None or not public or not network or network == issued.network:
        return False  # issued to an AWS service (its calls come from anywhere), or the same network
    if vpc_endpoint_id and vpc_endpoint_id == issued.vpc_endpoint_id:
        return False
    # One provider's network seen under two /24s (an office's or a mobile carrier's range).
    return not (as_number and as_number == issued.as_number)


def moved_reason(call: Call, issued: Issuance) -> str:
    now = [part for part in (f"AS{call.as_number}" if call.as_number else None, call.country) if part]
    then = [part for part in (f"AS{issued.as_number}" if issued.as_number else None, issued.country) if part]
    return (f"The session key {call.key}{_of(call.role)} was issued on a call from {issued.network}"
            f"{' (' + ', '.join(then) + ')' if then else ''} and is now used from {call.network}"
            f"{' (' + ', '.join(now) + ')' if now else ''}: its first call from this network.")


def unknown_reason(call: Call, account: str, since: int) -> str:
    return (f"The session key {call.key}{_of(call.role)} is used, but no STS call that issued it was found, although "
            f"account {account}'s trail has been read since {_iso(since)}, longer than the key can have lived.")


def _of(role: str | None) -> str:
    return f" of {short(role)}" if role else ""


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
