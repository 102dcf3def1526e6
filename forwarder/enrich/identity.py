"""Who made a call, read from ``userIdentity`` as CloudTrail writes it for each kind of caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from forwarder.record import kind, mapping, mapping_at, parse_time, text_at, time_at

SESSION = "AssumedRole"
ROOT = "Root"
FEDERATED = "FederatedUser"
IDENTITY_CENTER = "IdentityCenterUser"
THIN = "AWSAccount"  # the role owner's copy of a cross-account call names only the account
NO_ACCOUNT = frozenset({"AWSService", "SAMLUser", "WebIdentityUser"})
FEDERATED_SUBJECTS = frozenset({"SAMLUser", "WebIdentityUser"})
# Every access key STS issues begins so (long-term keys of users and root begin AKIA). The
# strings from TEMPORARY_KEY up to, not including, _AFTER_TEMPORARY are exactly those that begin
# with it: two comparisons, cheaper than a method call on every record.
TEMPORARY_KEY = "ASIA"
_AFTER_TEMPORARY = "ASIB"
# Identities that call with STS credentials only when their key is temporary: IAM users and root
# with GetSessionToken or console sessions, root through AssumeRoot, GetFederationToken's users.
KEYED = frozenset({"IAMUser", ROOT, FEDERATED})
WHERE = "userIdentity"


def account_of(arn: str | None) -> str | None:
    """The account an ARN names (``arn:aws:iam::111111111111:role/x``), if it names one."""
    if not arn:
        return None
    parts = arn.split(":", 5)
    return parts[4] or None if len(parts) > 4 else None


def temporary(caller_type: str | None, key: str | None) -> bool:
    """Whether a call by ``userIdentity`` of this type and ``accessKeyId`` was made with credentials
    that STS issued: cheap enough for every record, so that only these take the slow path."""
    # Ordered for the records that go on as they are: no key, or a long-term one (AKIA).
    return key is not None and ((TEMPORARY_KEY <= key < _AFTER_TEMPORARY and caller_type in KEYED) or caller_type == SESSION)


@dataclass(slots=True, frozen=True)
class Caller:
    arn: str | None
    type: str | None
    account_id: str | None
    # The key the call was signed with. On a role session (and root's temporary credentials,
    # which AssumeRoot may have issued) the chain continues through the session of that key.
    access_key_id: str | None = None
    # sessionContext.sessionIssuer: a session's role, the user or root behind a federated user;
    # for root's temporary credentials the root itself, the identity an AssumeRoot session acts as.
    issuer_arn: str | None = None
    issuer_type: str | None = None
    created: float | None = None
    source_identity: str | None = None
    # Who names a federated subject: userIdentity.identityProvider of a SAML or web identity user.
    identity_provider: str | None = None
    # sessionContext.assumedRoot: root's credentials were certainly issued by AssumeRoot.
    assumed_root: bool = False
    # userIdentity.onBehalfOf: the IAM Identity Center user a session works for.
    on_behalf_of: str | None = None
    identity_store_arn: str | None = None
    # What userIdentity held of an unexpected type (for assumerole.notes): about the record
    # it was read from, not about the caller, so no part of a caller's identity.
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def chained(self) -> bool:
        """The caller acts with a session that an earlier issuance (in the store) may explain."""
        return self.type == SESSION or (self.type == ROOT and temporary(ROOT, self.access_key_id))


def caller_of(identity: Any) -> Caller:
    notes: list[str] = []
    if identity is not None and not isinstance(identity, dict):
        notes.append(f"{WHERE} is {kind(identity)}, not an object")
    identity = mapping(identity)
    caller_type = text_at(identity, WHERE, "type", notes)
    account = None if caller_type in NO_ACCOUNT else text_at(identity, WHERE, "accountId", notes)
    if caller_type == "AWSService":
        return Caller(text_at(identity, WHERE, "invokedBy", notes), caller_type, account, notes=tuple(notes))
    if caller_type in FEDERATED_SUBJECTS:
        subject = text_at(identity, WHERE, "userName", notes) or text_at(identity, WHERE, "principalId", notes)
        provider = text_at(identity, WHERE, "identityProvider", notes)
        return Caller(subject, caller_type, account, identity_provider=provider, notes=tuple(notes))
    arn = text_at(identity, WHERE, "arn", notes)
    key = text_at(identity, WHERE, "accessKeyId", notes)
    behalf = mapping_at(identity, WHERE, "onBehalfOf", notes)
    on_behalf_of = text_at(behalf, f"{WHERE}.onBehalfOf", "userId", notes)
    store = text_at(behalf, f"{WHERE}.onBehalfOf", "identityStoreArn", notes)
    if caller_type != SESSION and not temporary(caller_type, key):
        return Caller(arn, caller_type, account, access_key_id=key, on_behalf_of=on_behalf_of,
                      identity_store_arn=store, notes=tuple(notes))
    within = f"{WHERE}.sessionContext"
    context = mapping_at(identity, WHERE, "sessionContext", notes)
    issuer = mapping_at(context, within, "sessionIssuer", notes)
    attributes = mapping_at(context, within, "attributes", notes)
    created = time_at(attributes, f"{within}.attributes", "creationDate", notes, parse_time)
    issuer_arn = text_at(issuer, f"{within}.sessionIssuer", "arn", notes)
    return Caller(
        arn,
        caller_type,
        account,
        access_key_id=key,
        issuer_arn=issuer_arn or (arn if caller_type == ROOT else None),
        issuer_type=text_at(issuer, f"{within}.sessionIssuer", "type", notes),
        created=created.timestamp() if created else None,
        source_identity=text_at(context, within, "sourceIdentity", notes),
        assumed_root=caller_type == ROOT and context.get("assumedRoot") == "true",
        on_behalf_of=on_behalf_of,
        identity_store_arn=store,
        notes=tuple(notes),
    )
