"""The ``assumerole`` fields of a role-assumption record (SCHEMA.md), one pure function each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from forwarder.enrich.chains import Chain
from forwarder.enrich.identity import Caller
from forwarder.enrich.policy import Policy
from forwarder.record import iso, mapping, parse_expiration, parse_time, text

ASSUME_EVENTS = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"})
STS = "sts.amazonaws.com"
# AccessDenied records often carry requestParameters: null; the role is still named here.
_DENIED_ROLE = re.compile(r"on resource: (arn:aws[\w-]*:iam::\d{12}:role/\S+)")


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
    shared_event_id: str | None
    recipient: str | None
    notes: list[str]


def read_assumption(record: dict[str, Any]) -> Assumption:
    notes: list[str] = []

    def section(name: str) -> dict[str, Any]:
        value = record.get(name)
        if value is not None and not isinstance(value, dict):
            notes.append(f"{name} is {type(value).__name__}, not an object")
        return mapping(value)

    def field(container: dict[str, Any], name: str, where: str) -> str | None:
        value = container.get(name)
        if value is not None and not isinstance(value, str):
            notes.append(f"{where}.{name} is {type(value).__name__}, not a string")
        return text(value)

    request = section("requestParameters")
    credentials = mapping(section("responseElements").get("credentials"))
    role_arn = field(request, "roleArn", "requestParameters") or _role_from_record(record)
    expires = parse_expiration(credentials.get("expiration"))
    duration = _duration(request.get("durationSeconds"), expires, parse_time(record.get("eventTime")), notes)
    return Assumption(
        role_arn=role_arn,
        session_name=field(request, "roleSessionName", "requestParameters"),
        source_identity=field(request, "sourceIdentity", "requestParameters"),
        duration=duration,
        access_key_id=field(credentials, "accessKeyId", "responseElements.credentials"),
        expiration=iso(expires),
        error_code=text(record.get("errorCode")),
        shared_event_id=text(record.get("sharedEventID")),
        recipient=text(record.get("recipientAccountId")),
        notes=notes,
    )


def _role_from_record(record: dict[str, Any]) -> str | None:
    resources = record.get("resources")
    if isinstance(resources, list):
        for resource in resources:
            arn = text(mapping(resource).get("ARN"))
            if arn and ":role/" in arn:
                return arn
    found = _DENIED_ROLE.search(text(record.get("errorMessage")) or "")
    return found.group(1) if found else None


def _duration(value: Any, expires: Any, started: Any, notes: list[str]) -> int | None:
    if value is not None:
        try:
            return int(value)
        except (TypeError, ValueError):
            notes.append(f"requestParameters.durationSeconds {value!r} is not a number")
    if expires is not None and started is not None:
        return int((expires - started).total_seconds())
    return None


def account_of(arn: str | None) -> str | None:
    if not arn:
        return None
    parts = arn.split(":", 5)
    return parts[4] or None if len(parts) > 4 else None


def role_name(arn: str | None) -> str | None:
    if not arn or "/" not in arn:
        return None
    return arn.rsplit("/", 1)[1] or None


def assumption_fields(
    record: dict[str, Any],
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
    moment = parse_time(record.get("eventTime") or record.get("@timestamp"))
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
        "after_hours": (policy.clock.outside(moment) if moment else None) if human else None,
        "failed": facts.error_code is not None,
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
    if facts.notes:
        fields["notes"] = facts.notes
    return fields
