"""What the configuration says about roles, accounts and hours, compiled once for the hot path."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from forwarder.config import WEEKDAYS, BusinessHours, Config


class Organization(Protocol):
    """Which accounts belong to the AWS Organization (static list, or discovered)."""

    def contains(self, account_id: str) -> bool: ...


class StaticOrganization:
    def __init__(self, accounts: Iterable[str]) -> None:
        self._accounts = frozenset(accounts)

    def contains(self, account_id: str) -> bool:
        return account_id in self._accounts


def _patterns(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of shell-style wildcards (``*`` crosses ``/`` and ``:`` as in AWS)."""
    parts = [fnmatch.translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


class BusinessClock:
    def __init__(self, hours: BusinessHours) -> None:
        self._zone = ZoneInfo(hours.timezone)
        self._days = frozenset(WEEKDAYS.index(day) for day in hours.days)
        self._start = hours.start
        self._end = hours.end

    def outside(self, moment: datetime) -> bool:
        local = moment.astimezone(self._zone)  # zoneinfo applies the day's own offset, DST included
        if local.weekday() not in self._days:
            return True
        clock = local.time().replace(tzinfo=None)
        if self._start <= self._end:
            return not (self._start <= clock < self._end)
        return self._end <= clock < self._start  # an overnight window such as 22:00-06:00


class Policy:
    """The organization, partners, role classes and business hours of one configuration."""

    def __init__(self, config: Config, organization: Organization | None = None) -> None:
        self.organization = organization or StaticOrganization(config.organization.accounts)
        # Without an organization configured, no account can be told apart: each one's trail
        # counts as read (the copy logged in a role's account is then the one rules count).
        self._organization_known = bool(config.organization.accounts) or config.organization.discover
        self.partners = frozenset(config.organization.approved_partners)
        self._sensitive = [
            (_patterns([role.pattern]), _patterns(role.approved_principals)) for role in config.roles.sensitive
        ]
        self._human = _patterns(config.roles.human.patterns)
        self.clock = BusinessClock(config.roles.human.business_hours)

    def sensitive_approvals(self, role_arn: str | None) -> list[re.Pattern[str] | None] | None:
        """The approved-principal patterns of every sensitive pattern the role matches; None if not sensitive."""
        if not role_arn:
            return None
        found = [approved for pattern, approved in self._sensitive if pattern and pattern.fullmatch(role_arn)]
        return found or None

    def trail_read(self, account_id: str) -> bool:
        """Whether the forwarder reads the account's trail: the organization's accounts are read."""
        return not self._organization_known or self.organization.contains(account_id)

    def is_human(self, role_arn: str | None) -> bool:
        return bool(role_arn and self._human and self._human.fullmatch(role_arn))

    @staticmethod
    def approved(approvals: list[re.Pattern[str] | None], principals: Iterable[str | None]) -> bool:
        candidates = [p for p in principals if p]
        return any(pattern is not None and pattern.fullmatch(p) for pattern in approvals for p in candidates)
