"""CloudTrail records in the shapes AWS documents, built for tests (no public set has them all)."""

from __future__ import annotations

import gzip
import itertools
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

_keys = itertools.count(1)


def new_key() -> str:
    return f"ASIATEST{next(_keys):012d}"


def user(account: str, name: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": f"AIDA{name.upper():0<16}"[:20],
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": f"AKIA{name.upper():0<16}"[:20],
        "userName": name,
    }


def service(name: str) -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": name}


def saml(subject: str, provider: str = "abc123==") -> dict[str, Any]:
    return {"type": "SAMLUser", "principalId": f"{provider}:{subject}", "userName": subject, "identityProvider": provider}


def web_identity(subject: str) -> dict[str, Any]:
    return {
        "type": "WebIdentityUser",
        "principalId": f"token.actions.githubusercontent.com:sts.amazonaws.com:{subject}",
        "userName": subject,
        "identityProvider": "token.actions.githubusercontent.com",
    }


def session_identity(role_arn: str, key: str, created: str, session: str = "s") -> dict[str, Any]:
    account = role_arn.split(":")[4]
    name = role_arn.rsplit("/", 1)[1]
    return {
        "type": "AssumedRole",
        "principalId": f"AROATEST:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{name}/{session}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": "AROATEST", "arn": role_arn, "accountId": account, "userName": name},
            "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
        },
    }


def temporary_user(identity: dict[str, Any], key: str, created: str, *, mfa: bool = False) -> dict[str, Any]:
    """An IAM user (or root) calling with temporary credentials of its own (GetSessionToken, a
    console session): as CloudTrail writes it in ../shared/data/invictus-aws-dataset (user benjamin)."""
    attributes = {"creationDate": created, "mfaAuthenticated": "true" if mfa else "false"}
    return {**identity, "accessKeyId": key, "sessionContext": {"sessionIssuer": {}, "webIdFederationData": {}, "attributes": attributes}}


def root(account: str) -> dict[str, Any]:
    return {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account}


def root_session(account: str, key: str, created: str, *, assumed_root: bool = False) -> dict[str, Any]:
    """Calls with an AssumeRoot session's credentials in the member account, as the IAM User Guide's
    "Track privileged tasks in AWS CloudTrail" shows them (DeleteBucketPolicy): type Root with the
    session's key; ``assumed_root`` adds the sessionContext.assumedRoot flag that CloudTrail also writes."""
    context: dict[str, Any] = {"attributes": {"creationDate": created, "mfaAuthenticated": "false"}}
    if assumed_root:
        context["assumedRoot"] = "true"
    return {**root(account), "accessKeyId": key, "sessionContext": context}


def federated_user(issuer: dict[str, Any], name: str, key: str, created: str) -> dict[str, Any]:
    """Calls with GetFederationToken's credentials, as the CloudTrail User Guide's userIdentity
    element describes them: type FederatedUser, sessionIssuer the IAM user (or root) that asked."""
    account = issuer["accountId"]
    return {
        "type": "FederatedUser",
        "principalId": f"{account}:{name}",
        "arn": f"arn:aws:sts::{account}:federated-user/{name}",
        "accountId": account,
        "accessKeyId": key,
        "sessionContext": {
            "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
            "sessionIssuer": {part: issuer[part] for part in ("type", "principalId", "arn", "accountId", "userName")
                              if part in issuer},
        },
    }


def on_behalf_of(identity: dict[str, Any], user_id: str, store: str) -> dict[str, Any]:
    """A session working for an IAM Identity Center user: userIdentity.onBehalfOf as the CloudTrail
    User Guide's userIdentity element shows it (userId and identityStoreArn)."""
    return {**identity, "onBehalfOf": {"userId": user_id, "identityStoreArn": store}}


def console_login(identity: dict[str, Any], at: datetime) -> dict[str, Any]:
    """A console sign-in as CloudTrail writes it in ../shared/data/invictus-aws-dataset (bert-jan):
    no key (the console's session credentials are not named), eventType AwsConsoleSignIn."""
    signed_in = {name: value for name, value in identity.items() if name != "accessKeyId"}
    record = _record(signed_in, at, "signin.amazonaws.com", "ConsoleLogin", None, {"ConsoleLogin": "Success"})
    record.update(eventType="AwsConsoleSignIn", readOnly=False,
                  additionalEventData={"LoginTo": "https://console.aws.amazon.com/console/home", "MobileVersion": "No",
                                       "MFAUsed": "Yes"})
    return record


def from_console(record: dict[str, Any]) -> dict[str, Any]:
    """A call made in the AWS Management Console: CloudTrail says so at the record's top level."""
    return {**record, "sessionCredentialFromConsole": "true"}


def thin(identity: dict[str, Any]) -> dict[str, Any]:
    """The role owner's copy of a cross-account call names the caller only as an account."""
    return {"type": "AWSAccount", "principalId": identity.get("principalId", "AIDA"), "accountId": identity["accountId"]}


def _fmt(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def assume(
    identity: dict[str, Any],
    role_arn: str | None,
    at: datetime,
    *,
    key: str | None = None,
    event: str = "AssumeRole",
    recipient: str | None = None,
    error: str | None = None,
    shared: str | None = None,
    duration: int | None = 3600,
    source_identity: str | None = None,
    session_name: str = "session",
) -> dict[str, Any]:
    request: dict[str, Any] | None = {"roleArn": role_arn, "roleSessionName": session_name}
    if duration is not None:
        request["durationSeconds"] = duration
    if source_identity:
        request["sourceIdentity"] = source_identity
    response = None
    if error is None:
        response = {
            "credentials": _credentials(key, at, duration or 3600),
            "assumedRoleUser": {"assumedRoleId": "AROATEST:session", "arn": "arn:aws:sts::x:assumed-role/r/session"},
        }
    else:
        request = None
    record = _record(identity, at, "sts.amazonaws.com", event, request, response)
    record["recipientAccountId"] = recipient or (role_arn.split(":")[4] if role_arn else identity.get("accountId"))
    if error:
        record["errorCode"] = error
        record["errorMessage"] = f"User is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
    if shared:
        record["sharedEventID"] = shared
    return record


def _credentials(key: str | None, at: datetime, seconds: int) -> dict[str, Any]:
    expires = at + timedelta(seconds=seconds)
    return {"accessKeyId": key or new_key(), "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
            "expiration": expires.strftime("%b %-d, %Y, %-I:%M:%S %p")}


def _issued(
    identity: dict[str, Any], at: datetime, event: str, request: dict[str, Any], response: dict[str, Any],
    error: str | None, recipient: str | None,
) -> dict[str, Any]:
    record = _record(identity, at, "sts.amazonaws.com", event, None if error else request, None if error else response)
    record["recipientAccountId"] = recipient or identity.get("accountId")
    if error:
        record["errorCode"] = error
        record["errorMessage"] = f"User is not authorized to perform: sts:{event}"
    return record


def assume_root(
    identity: dict[str, Any], target: str, at: datetime, *, key: str | None = None, error: str | None = None,
    task_policy: str = "S3UnlockBucketPolicy",
) -> dict[str, Any]:
    """AssumeRoot as the IAM User Guide's "Track privileged tasks in AWS CloudTrail" shows it:
    targetPrincipal the member account, a task policy, 15 minutes of credentials; logged in the
    calling (management or delegated administrator) account."""
    request = {"targetPrincipal": target, "taskPolicyArn": {"arn": f"arn:aws:iam::aws:policy/root-task/{task_policy}"}}
    return _issued(identity, at, "AssumeRoot", request, {"credentials": _credentials(key, at, 900)}, error, None)


def get_federation_token(
    identity: dict[str, Any], name: str, at: datetime, *, key: str | None = None, duration: int = 43200,
    error: str | None = None,
) -> dict[str, Any]:
    """GetFederationToken in the shape of the STS API reference (request Name, DurationSeconds,
    Policy; response Credentials, FederatedUser, PackedPolicySize), as CloudTrail logs STS calls."""
    account = identity["accountId"]
    request = {"name": name, "durationSeconds": duration, "policy": '{"Version":"2012-10-17","Statement":[]}'}
    response = {
        "credentials": _credentials(key, at, duration),
        "federatedUser": {"federatedUserId": f"{account}:{name}", "arn": f"arn:aws:sts::{account}:federated-user/{name}"},
        "packedPolicySize": 6,
    }
    return _issued(identity, at, "GetFederationToken", request, response, error, None)


def get_session_token(
    identity: dict[str, Any], at: datetime, *, key: str | None = None, duration: int = 43200, error: str | None = None
) -> dict[str, Any]:
    """GetSessionToken in the shape of the STS API reference (request DurationSeconds, response
    Credentials), as CloudTrail logs STS calls."""
    response = {"credentials": _credentials(key, at, duration)}
    return _issued(identity, at, "GetSessionToken", {"durationSeconds": duration}, response, error, None)


def issued_key(record: dict[str, Any]) -> str:
    return record["responseElements"]["credentials"]["accessKeyId"]


def call(identity: dict[str, Any], at: datetime, name: str = "ListBuckets", source: str = "s3.amazonaws.com") -> dict[str, Any]:
    return _record(identity, at, source, name, None, None)


def _record(
    identity: dict[str, Any], at: datetime, source: str, name: str, request: Any, response: Any
) -> dict[str, Any]:
    return {
        "eventVersion": "1.08",
        "userIdentity": identity,
        "eventTime": _fmt(at),
        "eventSource": source,
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0",
        "requestParameters": request,
        "responseElements": response,
        "requestID": str(uuid.uuid4()),
        "eventID": str(uuid.uuid4()),
        "readOnly": True,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": identity.get("accountId"),
        "eventCategory": "Management",
    }


def write_log(path: Path, records: list[dict[str, Any]]) -> Path:
    """A delivery file as AWS writes it: gzip of compact ``{"Records": [...]}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = orjson.dumps({"Records": records})
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)
    return path


class Collect:
    """A sink that keeps what it is sent, for assertions."""

    name = "collect"

    def __init__(self) -> None:
        self.documents: list[Any] = []

    def send(self, documents: Any) -> Any:
        from forwarder.sinks.base import Delivery

        self.documents.extend(documents)
        return Delivery()

    def close(self) -> None:
        pass

    def by_event(self) -> dict[str, dict[str, Any]]:
        return {d.event_id: d.as_dict() for d in self.documents}


def enrich_objects(objects: list[list[dict[str, Any]]], config: Any = None, *, batch: bool = True,
                   flush: bool | None = None) -> Collect:
    """Each inner list is one delivered object, in the order given; then (``flush``, by default in
    batch mode) the input ends and what is held ships."""
    from forwarder.config import Config
    from forwarder.deadletter import StderrDeadLetter
    from forwarder.enrich import Enricher
    from forwarder.pipeline import Pipeline
    from forwarder.state.sqlite import SqliteStore

    sink = Collect()
    pipeline = Pipeline(Enricher(config or Config(), SqliteStore(), batch=batch), [sink], StderrDeadLetter())
    for number, records in enumerate(objects):
        pipeline.process(f"object-{number}.json", orjson.dumps({"Records": records}))
    if batch if flush is None else flush:
        pipeline.flush()
    return sink


def without_baseline(assumerole: dict[str, Any]) -> dict[str, Any]:
    """``assumerole`` less what the behaviour baseline adds (forwarder/enrich/baseline.py), which
    depends on what was seen before: for the tests of what does not."""
    kept = {name: value for name, value in assumerole.items() if name not in ("baseline", "source")}
    if isinstance(kept.get("session"), dict):
        kept["session"] = {name: value for name, value in kept["session"].items()
                           if name not in ("issued_from", "new_network", "unknown_issuance", "reasons")}
    return kept
