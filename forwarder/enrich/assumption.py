"""The ``assumerole`` fields of a role-assumption record (SCHEMA.md), one pure function each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from forwarder.enrich.chains import Chain
from forwarder.enrich.identity import account_of, Caller
from forwarder.enrich.policy import Policy
from forwarder.record import iso, kind, mapping_at, parse_expiration, parse_time, shown, text, text_at, time_at

ASSUME_EVENTS = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"})
STS = "sts.amazonaws.com"
# AccessDenied records often carry requestParameters: null; the role is still named here.
_DENIED_ROLE = re.compile(r"on resource: (arn:aws[\w-]*:iam::\d{12}:role/\S+)")
REQUEST = "requestParameters"
CREDENTIALS = "responseElements.credentials"
_SECONDS = range(2**63)  # assumerole.session.duration_seconds is a long


def is_assumption(record: dict[str, Any]) -> bool:
    return record.get("eventSource") == STS and text(record.get("eventName")) in ASSUME_EVENTS


@dataclass(slots=True)
class Assumption:
    """What one assumption record says, read once with type checks."""

    role_arn: str | None
    session_name: str | None
    source_identity: str | None
    duration: int | None
    access_key_id: str | None
    expiration: str | None
    error_code: str | None
    failed: bool
    shared_event_id: str | None
    recipient: str | None
    time: datetime | None
    notes: list[str]


def read_assumption(record: dict[str, Any]) -> Assumption:
    notes: list[str] = []
    request = mapping_at(record, "", REQUEST, notes)
    credentials = mapping_at(mapping_at(record, "", "responseElements", notes), "responseElements", "credentials", notes)
    role_arn = text_at(request, REQUEST, "roleArn", notes) or _role_from_record(record, notes)
    expires = time_at(credentials, CREDENTIALS, "expiration", notes, parse_expiration)
    started = _event_time(record, notes)
    error_code = text_at(record, "", "errorCode", notes)
    return Assumption(
        role_arn=role_arn,
        session_name=text_at(request, REQUEST, "roleSessionName", notes),
        source_identity=text_at(request, REQUEST, "sourceIdentity", notes),
        duration=_duration(request.get("durationSeconds"), expires, started, notes),
        access_key_id=text_at(credentials, CREDENTIALS, "accessKeyId", notes),
        expiration=iso(expires),
        error_code=error_code,
        # An errorCode of another type is still an error code: the call failed.
        failed=error_code is not None or not isinstance(record.get("errorCode"), str | None),
        shared_event_id=text_at(record, "", "sharedEventID", notes),
        recipient=text_at(record, "", "recipientAccountId", notes),
        time=started,
        notes=notes,
    )


def _event_time(record: dict[str, Any], notes: list[str]) -> datetime | None:
    """``eventTime``, else an export's ``@timestamp``."""
    return time_at(record, "", "eventTime" if record.get("eventTime") is not None else "@timestamp", notes, parse_time)


def _role_from_record(record: dict[str, Any], notes: list[str]) -> str | None:
    resources = record.get("resources")
    if isinstance(resources, list):
        for index, resource in enumerate(resources):
            where = f"resources[{index}]"
            if not isinstance(resource, dict):
                notes.append(f"{where} is {kind(resource)}, not an object")
                continue
            arn = text_at(resource, where, "ARN", notes)
            if arn and ":role/" in arn:
                return arn
    elif resources is not None:
        notes.append(f"resources is {kind(resources)}, not an array")
    found = _DENIED_ROLE.search(text_at(record, "", "errorMessage", notes) or "")
    return found.group(1) if found else None


def _duration(value: Any, expires: datetime | None, started: datetime | None, notes: list[str]) -> int | None:
    if value is not None:
        if isinstance(value, int) and not isinstance(value, bool) and value in _SECONDS:
            return value
        notes.append(f"{REQUEST}.durationSeconds {shown(value)} is not a number of seconds")
    if expires is not None and started is not None:
        return int((expires - started).total_seconds())
    return None


def role_name(arn: str | None) -> str | None:
    if not arn or "/" not in arn:
        return None
    return arn.rsplit("/", 1)[1] or None


def assumption_fields(
    facts: Assumption,
    caller: Caller,
    chain: Chain,
    session_source_identity: str | None,
    policy: Policy,
) -> dict[str, Any]:
    role_arn = facts.role_arn
    role_account = account_of(role_arn)
    caller_account = caller.account_id
    in_org = policy.organization.contains(caller_account) if caller_account else None
    partner = bool(caller_account and caller_account in policy.partners)
    cross = bool(caller_account and role_account and caller_account != role_account)
    approvals = policy.sensitive_approvals(role_arn)
    human = policy.is_human(role_arn)
    fields: dict[str, Any] = {
        "role": {
            "arn": role_arn,
            "name": role_name(role_arn),
            "account_id": role_account,
            "service_linked": bool(role_arn and "/aws-service-role/" in role_arn),
            "sensitive": approvals is not None,
            "human": human,
        },
        "caller": {
            "arn": caller.arn,
            "type": caller.type,
            "account_id": caller_account,
            "in_org": in_org,
            "approved_partner": partner,
            "external": cross and not in_org and not partner,
            "approved": (
                policy.approved(approvals, (caller.arn, caller.issuer_arn, chain.origin_arn))
                if approvals is not None
                else None
            ),
        },
        "cross_account": cross,
        "primary": facts.recipient == role_account if cross else True,
        "after_hours": (policy.clock.outside(facts.time) if facts.time else None) if human else None,
        "failed": facts.failed,
        "error_code": facts.error_code,
        "session": {
            "name": facts.session_name,
            "source_identity": facts.source_identity or session_source_identity,
            "access_key_id": facts.access_key_id,
            "expiration": facts.expiration,
            "duration_seconds": facts.duration,
        },
        "chain": chain.fields(),
    }
    notes = [*facts.notes, *caller.notes]
    if notes:
        fields["notes"] = notes
    return fields
