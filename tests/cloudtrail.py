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


def saml(subject: str) -> dict[str, Any]:
    return {"type": "SAMLUser", "principalId": f"abc123==:{subject}", "userName": subject, "identityProvider": "abc123=="}


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
        expires = at + timedelta(seconds=duration or 3600)
        response = {
            "credentials": {
                "accessKeyId": key or new_key(),
                "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
                "expiration": expires.strftime("%b %-d, %Y, %-I:%M:%S %p"),
            },
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


def enrich_objects(objects: list[list[dict[str, Any]]], config: Any = None, *, batch: bool = True) -> Collect:
    """Each inner list is one delivered object, in the order given."""
    from forwarder.config import Config
    from forwarder.deadletter import StderrDeadLetter
    from forwarder.enrich import Enricher
    from forwarder.pipeline import Pipeline
    from forwarder.state.sqlite import SqliteStore

    sink = Collect()
    pipeline = Pipeline(Enricher(config or Config(), SqliteStore(), batch=batch), [sink], StderrDeadLetter())
    for number, records in enumerate(objects):
        pipeline.process(f"object-{number}.json", orjson.dumps({"Records": records}))
    if batch:
        pipeline.flush()
    return sink
