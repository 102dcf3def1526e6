"""Who made a call, read from ``userIdentity`` as CloudTrail writes it for each kind of caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forwarder.record import kind, mapping, mapping_at, parse_time, text_at, time_at

SESSION = "AssumedRole"
THIN = "AWSAccount"  # the role owner's copy of a cross-account call names only the account
NO_ACCOUNT = frozenset({"AWSService", "SAMLUser", "WebIdentityUser"})
WHERE = "userIdentity"


def account_of(arn: str | None) -> str | None:
    """The account an ARN names (``arn:aws:iam::111111111111:role/x``), if it names one."""
    if not arn:
        return None
    parts = arn.split(":", 5)
    return parts[4] or None if len(parts) > 4 else None


@dataclass(slots=True, frozen=True)
class Caller:
    arn: str | None
    type: str | None
    account_id: str | None
    # Set when the caller is itself a role session: the chain continues through it.
    access_key_id: str | None = None
    issuer_arn: str | None = None
    created: float | None = None
    source_identity: str | None = None
    # What userIdentity held of an unexpected type (for assumerole.notes): about the record
    # it was read from, not about the caller, so no part of a caller's identity.
    notes: tuple[str, ...] = field(default=(), compare=False)


def caller_of(identity: Any) -> Caller:
    notes: list[str] = []
    if identity is not None and not isinstance(identity, dict):
        notes.append(f"{WHERE} is {kind(identity)}, not an object")
    identity = mapping(identity)
    caller_type = text_at(identity, WHERE, "type", notes)
    if caller_type == "AWSService":
        arn = text_at(identity, WHERE, "invokedBy", notes)
    elif caller_type in ("SAMLUser", "WebIdentityUser"):
        arn = text_at(identity, WHERE, "userName", notes) or text_at(identity, WHERE, "principalId", notes)
    else:
        arn = text_at(identity, WHERE, "arn", notes)
    account = None if caller_type in NO_ACCOUNT else text_at(identity, WHERE, "accountId", notes)
    if caller_type != SESSION:
        return Caller(arn, caller_type, account, notes=tuple(notes))
    context = mapping_at(identity, WHERE, "sessionContext", notes)
    within = f"{WHERE}.sessionContext"
    issuer = mapping_at(context, within, "sessionIssuer", notes)
    attributes = mapping_at(context, within, "attributes", notes)
    created = time_at(attributes, f"{within}.attributes", "creationDate", notes, parse_time)
    return Caller(
        arn,
        caller_type,
        account,
        access_key_id=text_at(identity, WHERE, "accessKeyId", notes),
        issuer_arn=text_at(issuer, f"{within}.sessionIssuer", "arn", notes),
        created=created.timestamp() if created else None,
        source_identity=text_at(context, within, "sourceIdentity", notes),
        notes=tuple(notes),
    )
