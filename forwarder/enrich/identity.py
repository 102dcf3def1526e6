"""Who made a call, read from ``userIdentity`` as CloudTrail writes it for each kind of caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from forwarder.record import epoch, mapping, text

SESSION = "AssumedRole"
THIN = "AWSAccount"  # the role owner's copy of a cross-account call names only the account
NO_ACCOUNT = frozenset({"AWSService", "SAMLUser", "WebIdentityUser"})


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


def caller_of(identity: Any) -> Caller:
    identity = mapping(identity)
    kind = text(identity.get("type"))
    if kind == "AWSService":
        arn = text(identity.get("invokedBy"))
    elif kind in ("SAMLUser", "WebIdentityUser"):
        arn = text(identity.get("userName")) or text(identity.get("principalId"))
    else:
        arn = text(identity.get("arn"))
    account = None if kind in NO_ACCOUNT else text(identity.get("accountId"))
    if kind != SESSION:
        return Caller(arn, kind, account)
    context = mapping(identity.get("sessionContext"))
    return Caller(
        arn,
        kind,
        account,
        access_key_id=text(identity.get("accessKeyId")),
        issuer_arn=text(mapping(context.get("sessionIssuer")).get("arn")),
        created=epoch(mapping(context.get("attributes")).get("creationDate")),
        source_identity=text(context.get("sourceIdentity")),
    )
