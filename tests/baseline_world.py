"""An organisation's six weeks of role assumptions, then an attack day: the behaviour baseline's scenario.

Twenty engineers (IAM users) assume their two usual roles on weekdays, 08:00-18:00 in Berlin,
from the office or from home, and use each session from where they assumed it; one travels to
France for three days, one is hired in the fourth week, one is given a new role in the fifth,
and the clocks change to summer time on 2026-03-29. Ten automation principals: three CI
pipelines (GitHub OIDC), three cron jobs scheduled in UTC (role sessions of a batch host, a new
session name per run), four services' service-linked roles (hourly). Then, on Thursday 2026-04-09, the attacks, each record
named with the flags it must raise. Records are grouped into objects as trails deliver them:
per account, in fifteen-minute files.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cloudtrail import assume, call, issued_key, new_key, service, session_identity, user, web_identity

ORG, PROD = "111111111111", "222222222222"
BERLIN = ZoneInfo("Europe/Berlin")
FIRST_DAY = date(2026, 2, 23)  # a Monday
DAYS = 45
ATTACK_DAY = FIRST_DAY + timedelta(days=45)  # Thursday 2026-04-09: after every regular day
OFFICE = "85.214.132.{}"
HOMES = ["91.64.{}.{}", "84.59.{}.{}", "93.192.{}.{}", "46.114.{}.{}", "62.154.{}.{}", "87.123.{}.{}", "95.90.{}.{}",
         "78.34.{}.{}", "109.40.{}.{}", "37.201.{}.{}"]
FRANCE = "90.84.7.{}"
GITHUB = "140.82.112.{}"
ROLES = [f"arn:aws:iam::{PROD}:role/{name}" for name in ("HumanOps", "ReadOnly", "DataOps", "Deploy", "Support")]
BREAK_GLASS = f"arn:aws:iam::{PROD}:role/BreakGlassAdministrator"
BATCH_HOST = f"arn:aws:iam::{PROD}:role/BatchHost"
SERVICE_ROLES = {
    "ecs.amazonaws.com": ("AWSServiceRoleForECS", "eu-central-1"),
    "autoscaling.amazonaws.com": ("AWSServiceRoleForAutoScaling", "eu-central-1"),
    "elasticloadbalancing.amazonaws.com": ("AWSServiceRoleForElasticLoadBalancing", "eu-west-1"),
    "rds.amazonaws.com": ("AWSServiceRoleForRDS", "eu-central-1"),
}
CONFIG = {
    "organization": {"accounts": [ORG, PROD]},
    # Days are counted exactly up to 64 events (the burst's 40 included), so that a replay's
    # crossing event is the first pass's: above the sample a day's count is an estimate.
    "baseline": {"timezone": "Europe/Berlin", "volume": {"sample": 64}},
    "chains": {"hold_back_seconds": 900},
}


@dataclass
class World:
    records: list[dict[str, Any]] = field(default_factory=list)
    # eventID -> the flags it must raise: under assumerole.baseline ("new_pair"...) or
    # assumerole.session ("session.new_network"); every other record must raise none.
    attacks: dict[str, set[str]] = field(default_factory=dict)
    assumptions: int = 0

    def objects(self, minutes: int = 15) -> list[list[dict[str, Any]]]:
        """The records as their trails deliver them: per account, files of ``minutes``, in time order."""
        files: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for record in self.records:
            moment = datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ")
            slot = moment.replace(minute=moment.minute - moment.minute % minutes, second=0).isoformat()
            files[(slot, record["recipientAccountId"])].append(record)
        return [sorted(files[key], key=lambda r: r["eventTime"]) for key in sorted(files)]


def _at(day: date, hour: int, minute: int, zone: ZoneInfo = BERLIN) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def _assume_from(world: World, identity: dict[str, Any], role: str, at: datetime, ip: str, *,
                 calls: int = 1, call_ip: str | None = None, event: str = "AssumeRole", region: str = "eu-central-1",
                 session_name: str = "session") -> dict[str, Any]:
    record = assume(identity, role, at, event=event, session_name=session_name)
    record.update(sourceIPAddress=ip, awsRegion=region)
    world.records.append(record)
    world.assumptions += 1
    for number in range(calls):
        used = call(session_identity(role, issued_key(record), record["eventTime"], session_name),
                    at + timedelta(minutes=2 + number))
        used.update(sourceIPAddress=call_ip or ip, awsRegion=region)
        world.records.append(used)
    return record


def build(seed: int = 15) -> World:
    rng = random.Random(seed)
    world = World()
    engineers = [user(ORG, f"engineer{n:02d}") for n in range(20)]
    usual = {n: rng.sample(ROLES[:4], 2) for n in range(20)}
    homes = {n: HOMES[n % len(HOMES)].format(n + 10, rng.randrange(1, 250)) for n in range(20)}
    hired = FIRST_DAY + timedelta(days=24)  # engineer19
    added = FIRST_DAY + timedelta(days=32)  # engineer05 is given Support
    travel = {FIRST_DAY + timedelta(days=d) for d in (22, 23, 24)}  # engineer07 in France
    for offset in range(DAYS):
        day = FIRST_DAY + timedelta(days=offset)
        for service_name, (role_name, region) in SERVICE_ROLES.items():
            role = f"arn:aws:iam::{PROD}:role/aws-service-role/{service_name}/{role_name}"
            for hour in range(24):
                at = _at(day, hour, rng.randrange(60), UTC)
                _assume_from(world, service(service_name), role, at, service_name, calls=0, region=region)
        # Scheduled in UTC: in Berlin's local time they move an hour later with summer time.
        for job, (hour, role) in enumerate(((1, ROLES[1]), (2, ROLES[2]), (3, ROLES[3]))):
            created = _at(day, hour, 0, UTC) - timedelta(hours=2)
            host = session_identity(BATCH_HOST, new_key(), created.strftime("%Y-%m-%dT%H:%M:%SZ"), f"job-{offset}{job}")
            _assume_from(world, host, role, _at(day, hour, rng.randrange(5), UTC), f"52.28.{job}.{rng.randrange(1, 250)}",
                         session_name=f"job-{offset}{job}")
        if day.weekday() >= 5:
            continue
        for pipeline in range(3):
            subject = web_identity(f"repo:example/app{pipeline}:ref:refs/heads/main")
            for _ in range(rng.randrange(3, 7)):
                at = _at(day, 9 + rng.randrange(9), rng.randrange(60))
                _assume_from(world, subject, ROLES[3], at, GITHUB.format(rng.randrange(1, 250)),
                             event="AssumeRoleWithWebIdentity")
        for n, engineer in enumerate(engineers):
            if n == 19 and day < hired:
                continue
            roles = usual[n] + ([ROLES[4]] if n == 5 and day >= added else [])
            for role in roles:
                for _ in range(rng.randrange(1, 4)):
                    at = _at(day, 8 + rng.randrange(10), rng.randrange(60))
                    if n == 7 and day in travel:
                        ip = FRANCE.format(rng.randrange(1, 250))
                    else:
                        ip = OFFICE.format(rng.randrange(1, 250)) if rng.random() < 0.6 else homes[n]
                    _assume_from(world, engineer, role, at, ip, calls=rng.randrange(1, 3))
    _attack(world, engineers, usual)
    return world


def _attack(world: World, engineers: list[dict[str, Any]], usual: dict[int, list[str]]) -> None:
    day = ATTACK_DAY
    # Stolen long-term keys of engineer03: from Russia at 03:10, a role he never assumed.
    stolen = _assume_from(world, engineers[3], BREAK_GLASS, _at(day, 3, 10), "5.188.10.77", calls=0)
    world.attacks[stolen["eventID"]] = {"new_pair", "new_role_for_subject", "new_network", "new_country", "unusual_hour"}
    # A burst: engineer11's role assumed 40 times in ten minutes, from the office, in office hours.
    burst = [_assume_from(world, engineers[11], usual[11][0], _at(day, 10, 0) + timedelta(seconds=15 * n),
                          OFFICE.format(20), calls=0) for n in range(40)]
    # Only the assumption that takes the day past the threshold says so (no flood).
    crossing = _crossing(world, burst)
    world.attacks[crossing["eventID"]] = {"volume_spike"}
    # engineer09's session, assumed at the office, used from elsewhere: the first call from there.
    issued = _assume_from(world, engineers[9], usual[9][0], _at(day, 11, 0), OFFICE.format(31), calls=0)
    key = issued_key(issued)
    for minute, ip in ((3, OFFICE.format(31)), (5, "175.45.176.3"), (6, "175.45.176.9")):
        used = call(session_identity(usual[9][0], key, issued["eventTime"]), _at(day, 11, minute))
        used.update(sourceIPAddress=ip, awsRegion="eu-central-1")
        world.records.append(used)
        if minute == 5:
            world.attacks[used["eventID"]] = {"session.new_network"}
    # The ECS service-linked role assumed in a region ECS never worked in.
    role = f"arn:aws:iam::{PROD}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
    odd = _assume_from(world, service("ecs.amazonaws.com"), role, _at(day, 13, 0, UTC), "ecs.amazonaws.com",
                       calls=0, region="ap-south-1")
    world.attacks[odd["eventID"]] = {"new_region"}


def _crossing(world: World, burst: list[dict[str, Any]]) -> dict[str, Any]:
    """The burst's assumption whose count reaches the default spike threshold (the pair's days
    before as the baseline counts them: weekdays and weekends alike since its first day)."""
    import statistics

    role = burst[0]["requestParameters"]["roleArn"]
    arn = burst[0]["userIdentity"]["arn"]
    counts: dict[date, int] = defaultdict(int)
    for record in world.records:
        if (record["eventName"] == "AssumeRole" and record["userIdentity"].get("arn") == arn
                and record["requestParameters"]["roleArn"] == role):
            counts[datetime.strptime(record["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                   .astimezone(BERLIN).date()] += 1
    days = [ATTACK_DAY - timedelta(days=n) for n in range(28, 0, -1)]
    history = [counts.get(d, 0) for d in days if d >= min(counts)]
    median = statistics.median(history)
    deviation = statistics.median(abs(n - median) for n in history) * 1.4826
    threshold = max(10, 3 * median, median + 6 * max(deviation, 1.0))
    return burst[int(-(-threshold // 1)) - 1 - counts[ATTACK_DAY] + len(burst)]
