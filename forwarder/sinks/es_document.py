"""The Elasticsearch document for one enriched record: the record, ``assumerole`` and ECS fields.

Pure functions, no state. The record's bytes are reused as they came (no parse, no deep copy,
no second serialisation): only the small added objects are encoded, then spliced in.
The ECS fields follow Elastic's AWS CloudTrail integration (its ingest pipeline's names and
rules), so that dashboards built for it keep working.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson

from forwarder.catalogue import load_catalogue
from forwarder.document import Document
from forwarder.record import Undecodable, mapping, one_line, parse_time, text

# Every STS call that issues credentials is an authentication event in ECS terms.
ROLE_ASSUMPTIONS = frozenset({"AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot",
                              "GetFederationToken", "GetSessionToken"})
UNINDEXED = "unindexed"  # aws.cloudtrail.unindexed: kept in _source, never mapped


@dataclass(frozen=True, slots=True)
class EsDocument:
    id: str  # the _id (document_id)
    body: bytes  # the _source, serialised once
    time: datetime | None  # the event's time (UTC), for date-named indices


def document_id(document: Document) -> str:
    """The ``_id``: the eventID, so that a record delivered again overwrites itself. A record
    whose eventID is no string (a number, an object, null, missing) is named by a digest of its
    canonical JSON instead: the same on every read of the same record, whatever its layout."""
    if event_id := document.event_id:
        return event_id
    canonical = orjson.dumps(document.record, option=orjson.OPT_SORT_KEYS)
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


@cache
def _layout() -> tuple[frozenset[str], frozenset[str]]:
    """(top-level keys the sink writes itself, top-level CloudTrail keys mapped as objects)."""
    catalogue = load_catalogue()
    own = frozenset(spec.name.split(".")[0] for spec in catalogue.group("ecs")) | {"assumerole"}
    objects = frozenset(
        spec.name.split(".")[0]
        for spec in catalogue.group("cloudtrail")
        if "." in spec.name or spec.type == "flattened"
    )
    return own, objects


def event_time(record: dict[str, Any]) -> datetime | None:
    return parse_time(record.get("eventTime")) or parse_time(record.get("@timestamp"))


def _timestamp(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ip(value: str) -> str | None:
    if not value or not (value[0].isdigit() or ":" in value):  # service names: "ec2.amazonaws.com"
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _text(container: object, key: str) -> str | None:
    return text(mapping(container).get(key))


def ecs_fields(record: dict[str, Any], when: datetime | None) -> dict[str, Any]:
    """The ECS fields for ``record`` (``when`` is its event time, see ``event_time``)."""
    out: dict[str, Any] = {}
    if when is not None:
        out["@timestamp"] = _timestamp(when)

    action = _text(record, "eventName")
    provider = _text(record, "eventSource")
    event: dict[str, Any] = {"kind": "event", "type": ["info"]}
    if action:
        event["action"] = action
    if provider:
        event["provider"] = provider
    event["outcome"] = "failure" if record.get("errorCode") or record.get("errorMessage") else "success"
    if event_id := _text(record, "eventID"):
        event["id"] = event_id
    if action in ROLE_ASSUMPTIONS and provider == "sts.amazonaws.com":
        event["category"] = ["authentication"]
    out["event"] = event

    related: dict[str, list[str]] = {}
    if address := _text(record, "sourceIPAddress"):
        out["source"] = {"address": address}
        if ip := _ip(address):
            out["source"]["ip"] = ip
            related["ip"] = [ip]

    if agent := _text(record, "userAgent"):
        out["user_agent"] = {"original": agent}

    identity = mapping(record.get("userIdentity"))
    issuer = mapping(identity.get("sessionContext")).get("sessionIssuer")

    cloud: dict[str, Any] = {"provider": "aws"}
    if account := _text(identity, "accountId") or _text(record, "recipientAccountId"):
        cloud["account"] = {"id": account}
    if region := _text(record, "awsRegion"):
        cloud["region"] = region
    out["cloud"] = cloud

    user: dict[str, str] = {}
    # As Elastic's pipeline: a role session is named by its role (the issuer), a user by itself.
    if name := _text(issuer, "userName") or _text(identity, "userName"):
        user["name"] = name
    if principal := _text(identity, "principalId"):
        user["id"] = principal
    if user:
        out["user"] = user

    parameters = record.get("requestParameters")
    names = [
        _text(identity, "userName"),
        _text(issuer, "userName"),
        _text(parameters, "userName"),
        _text(parameters, "newUserName"),
    ]
    if users := list(dict.fromkeys(name for name in names if name)):
        related["user"] = users
    if related:
        out["related"] = related
    return out


def _indexable_object(value: object) -> bool:
    if value is None or isinstance(value, dict):
        return True
    return isinstance(value, list) and all(item is None or isinstance(item, dict) for item in value)


def to_es(document: Document) -> EsDocument:
    """The document as Elasticsearch indexes it; Undecodable if this one cannot be written.

    Record keys that the sink writes itself (an exporter's ``@timestamp``, ``event``...) or
    that hold a value their mapping cannot take (``resources`` as a string) move, unchanged,
    to ``aws.cloudtrail.unindexed``: kept, never a mapping error.
    """
    try:
        return _to_es(document)
    except orjson.JSONEncodeError as exc:
        raise Undecodable(f"the Elasticsearch document cannot be written as JSON: {exc}") from None


def _to_es(document: Document) -> EsDocument:
    record = document.record
    own, objects = _layout()
    when = event_time(record)
    extra = ecs_fields(record, when)
    if document.assumerole is not None:
        extra["assumerole"] = document.assumerole
    displaced = [key for key in own if key in record]
    displaced += [key for key in objects if key in record and not _indexable_object(record[key])]

    raw = document.raw
    if not displaced and raw is not None and record and raw[-1:] == b"}" and one_line(raw):
        # The common case: the record's own bytes, then the added keys.
        return EsDocument(document_id(document), b"".join((raw[:-1], b",", orjson.dumps(extra)[1:])), when)

    merged = {key: value for key, value in record.items() if key not in displaced}
    merged.update(extra)
    if displaced:
        merged["aws"] = {"cloudtrail": {UNINDEXED: {key: record[key] for key in displaced}}}
    return EsDocument(document_id(document), orjson.dumps(merged), when)
