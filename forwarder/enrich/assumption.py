"""The ``assumerole`` fields of a record of an STS call that issues credentials (SCHEMA.md), one
pure function each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from forwarder.enrich.chains import Chain
from forwarder.enrich.identity import account_of, Caller
from forwarder.enrich.policy import Policy
from forwarder.record import iso, kind, mapping, mapping_at, parse_expiration, parse_time, shown, text, text_at, time_at

ROLE_EVENTS = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity"})
ASSUME_ROOT = "AssumeRoot"
FEDERATION_TOKEN = "GetFederationToken"
SESSION_TOKEN = "GetSessionToken"
ISSUANCE_EVENTS = ROLE_EVENTS | {ASSUME_ROOT, FEDERATION_TOKEN, SESSION_TOKEN}
STS = "sts.amazonaws.com"
# AccessDenied records often carry requestParameters: null; what was asked for is still named here.
_DENIED_TARGET = re.compile(
    r"on resource: (arn:aws[\w-]*:(?:iam::\d{12}:(?:role/\S+|root)|sts::\d{12}:federated-user/\S+))"
)
_ACCOUNT = re.compile(r"\d{12}")
IDENTITY_CENTER_ROLE = "AWSReservedSSO_"  # the roles IAM Identity Center makes for its permission sets
REQUEST = "requestParameters"
CREDENTIALS = "responseElements.credentials"
_SECONDS = range(2**63)  # assumerole.session.duration_seconds is a long


def is_issuance(record: dict[str, Any]) -> bool:
    return record.get("eventSource") == STS and text(record.get("eventName")) in ISSUANCE_EVENTS


@dataclass(slots=True)
class Assumption:
    """What one issuance record says, read once with type checks."""

    event: str | None  # the STS call
    # The identity the credentials act as: requestParameters.roleArn, the member account's root
    # (AssumeRoot), the federated user (GetFederationToken); None for GetSessionToken.
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
    event = text(record.get("eventName"))
    request = mapping_at(record, "", REQUEST, notes)
    response = mapping_at(record, "", "responseElements", notes)
    credentials = mapping_at(response, "responseElements", "credentials", notes)
    expires = time_at(credentials, CREDENTIALS, "expiration", notes, parse_expiration)
    started = _event_time(record, notes)
    error_code = text_at(record, "", "errorCode", notes)
    if event == SESSION_TOKEN:
        target, session_name = None, None
    elif event == ASSUME_ROOT:
        target, session_name = _root(record, request, notes), None
    elif event == FEDERATION_TOKEN:
        session_name = text_at(request, REQUEST, "name", notes)
        target = _federated_user(record, response, session_name, notes)
    else:
        target, session_name = text_at(request, REQUEST, "roleArn", notes), text_at(request, REQUEST, "roleSessionName", notes)
    return Assumption(
        event=event,
        role_arn=target or (None if event == SESSION_TOKEN else _target_from_record(record, notes)),
        session_name=session_name,
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


def _partition(record: dict[str, Any]) -> str:
    """The caller's partition (aws, aws-cn, aws-us-gov), for ARNs that the record only implies."""
    parts = (text(mapping(record.get("userIdentity")).get("arn")) or "").split(":", 2)
    return parts[1] if len(parts) > 2 and parts[1] else "aws"


def _root(record: dict[str, Any], request: dict[str, Any], notes: list[str]) -> str | None:
    """The root user of AssumeRoot's member account: targetPrincipal is its account id or ARN."""
    target = text_at(request, REQUEST, "targetPrincipal", notes)
    if target and _ACCOUNT.fullmatch(target):
        return f"arn:{_partition(record)}:iam::{target}:root"
    return target


def _federated_user(record: dict[str, Any], response: dict[str, Any], name: str | None, notes: list[str]) -> str | None:
    user = mapping_at(response, "responseElements", "federatedUser", notes)
    arn = text_at(user, "responseElements.federatedUser", "arn", notes)
    account = text(mapping(record.get("userIdentity")).get("accountId"))
    if arn is None and name and account:
        arn = f"arn:{_partition(record)}:sts::{account}:federated-user/{name}"
    return arn


def _event_time(record: dict[str, Any], notes: list[str]) -> datetime | None:
    """``eventTime``, else an export's ``@timestamp``."""
    return time_at(record, "", "eventTime" if record.get("eventTime") is not None else "@timestamp", notes, parse_time)


def _target_from_record(record: dict[str, Any], notes: list[str]) -> str | None:
    resources = record.get("resources")
    if isinstance(resources, list):
        for index, resource in enumerate(resources):
            where = f"resources[{index}]"
            if not isinstance(resource, dict):
                notes.append(f"{where} is {kind(resource)}, not an object")
                continue
            arn = text_at(resource, where, "ARN", notes)
            if arn and (":role/" in arn or arn.endswith(":root")):
                return arn
    elif resources is not None:
        notes.append(f"resources is {kind(resources)}, not an array")
    found = _DENIED_TARGET.search(text_at(record, "", "errorMessage", notes) or "")
    return found.group(1) if found else None


def _duration(value: Any, expires: datetime | None, started: datetime | None, notes: list[str]) -> int | None:
    if value is not None:
        if isinstance(value, int) and not isinstance(value, bool) and value in _SECONDS:
            return value
        notes.append(f"{REQUEST}.durationSeconds {shown(value)} is not a number of seconds")
    if expires is not None and started is not None:
        return int((expires - started).total_seconds())
    return None


def primary(facts: Assumption, role_account: str, policy: Policy) -> bool:
    """Whether this copy of a cross-account call is the one of its copies that rules count: the
    role owner's where that account's trail is read, else the caller's. The role's account logs
    no denied cross-account attempt, so the caller's copy of a failure is its only one; nor does
    a member account log the AssumeRoot that reaches its root, only the session's calls."""
    if facts.recipient == role_account:
        return True
    return facts.failed or facts.event == ASSUME_ROOT or not policy.trail_read(role_account)


def role_name(arn: str | None) -> str | None:
    if not arn or "/" not in arn:
        return None
    return arn.rsplit("/", 1)[1] or None


def assumption_fields(facts: Assumption, caller: Caller, chain: Chain, policy: Policy) -> dict[str, Any]:
    """``chain`` is the issuance's own: it ends with the identity the credentials act as."""
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
            "identity_center": (role_name(role_arn) or "").startswith(IDENTITY_CENTER_ROLE),
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
        "primary": primary(facts, role_account, policy) if cross else True,
        "after_hours": (policy.clock.outside(facts.time) if facts.time else None) if human else None,
        "failed": facts.failed,
        "error_code": facts.error_code,
        "session": {
            "name": facts.session_name,
            "source_identity": chain.source_identity,
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
