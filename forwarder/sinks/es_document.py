"""The Elasticsearch document for one enriched record: the record, ``assumerole`` and ECS fields.

Pure functions, no state. The record's bytes are reused as they came (no parse, no deep copy,
no second serialisation): only the small added objects are encoded, then spliced in.
The ECS fields follow Elastic's AWS CloudTrail integration (its ingest pipeline's names and
rules), so that dashboards built for it keep working.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

import orjson

from forwarder.catalogue import load_catalogue
from forwarder.document import Document
from forwarder.record import Undecodable, mapping, one_line, parse_time

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


# A dotted-quad IPv4 address, each number 0-255 without a leading zero: exactly the IPv4 text
# ipaddress accepts, and gives back unchanged.
_IPV4 = re.compile(r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])")


def source_ip(value: str) -> str | None:
    """``value`` as an IP address in its canonical text (ECS ``source.ip``), None if it is none
    ("ec2.amazonaws.com", "AWS Internal"). The common case, IPv4, is one regular expression;
    only text with a colon (IPv6) goes to ipaddress, which takes no other IPv4 form."""
    if _IPV4.fullmatch(value):
        return value
    if ":" not in value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _text(value: object) -> str | None:
    return value if type(value) is str and value else None


def ecs_fields(record: dict[str, Any], when: datetime | None) -> dict[str, Any]:
    """The ECS fields for ``record`` (``when`` is its event time, see ``event_time``). Each
    field of the record is read once."""
    out: dict[str, Any] = {}
    if when is not None:
        out["@timestamp"] = _timestamp(when)

    get = record.get
    action = _text(get("eventName"))
    provider = _text(get("eventSource"))
    event: dict[str, Any] = {"kind": "event", "type": ["info"]}
    if action:
        event["action"] = action
    if provider:
        event["provider"] = provider
    event["outcome"] = "failure" if get("errorCode") or get("errorMessage") else "success"
    if event_id := _text(get("eventID")):
        event["id"] = event_id
    if action in ROLE_ASSUMPTIONS and provider == "sts.amazonaws.com":
        event["category"] = ["authentication"]
    out["event"] = event

    related: dict[str, list[str]] = {}
    if address := _text(get("sourceIPAddress")):
        source = out["source"] = {"address": address}
        if ip := source_ip(address):
            source["ip"] = ip
            related["ip"] = [ip]

    if agent := _text(get("userAgent")):
        out["user_agent"] = {"original": agent}

    identity = mapping(get("userIdentity"))
    issuer = mapping(mapping(identity.get("sessionContext")).get("sessionIssuer"))
    identity_name = _text(identity.get("userName"))
    issuer_name = _text(issuer.get("userName"))

    cloud: dict[str, Any] = {"provider": "aws"}
    if account := _text(identity.get("accountId")) or _text(get("recipientAccountId")):
        cloud["account"] = {"id": account}
    if region := _text(get("awsRegion")):
        cloud["region"] = region
    out["cloud"] = cloud

    user: dict[str, str] = {}
    # As Elastic's pipeline: a role session is named by its role (the issuer), a user by itself.
    if name := issuer_name or identity_name:
        user["name"] = name
    if principal := _text(identity.get("principalId")):
        user["id"] = principal
    if user:
        out["user"] = user

    parameters = mapping(get("requestParameters"))
    names = (identity_name, issuer_name, _text(parameters.get("userName")), _text(parameters.get("newUserName")))
    if users := list(dict.fromkeys(name for name in names if name)):
        related["user"] = users
    if related:
        out["related"] = related
    return out


def _geography(extra: dict[str, Any], assumerole: dict[str, Any]) -> None:
    """ECS names for what the enrichment found of the source address (the sink looks nothing up)."""
    found = assumerole.get("source")
    if type(found) is not dict or "source" not in extra:
        return
    if found.get("country"):
        extra["source"]["geo"] = {"country_iso_code": found["country"]}
    if found.get("as_number") is not None:
        extra["source"]["as"] = {"number": found["as_number"]}


def _indexable_object(value: object) -> bool:
    if value is None or type(value) is dict:
        return True
    return type(value) is list and all(item is None or type(item) is dict for item in value)


def _displaced(record: dict[str, Any]) -> list[str]:
    """The record's keys that move to ``aws.cloudtrail.unindexed`` (see ``to_es``); mostly none."""
    own, objects = _layout()
    displaced = list(own.intersection(record))
    displaced += [key for key in objects.intersection(record) if not _indexable_object(record[key])]
    return displaced


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
    when = event_time(record)
    extra = ecs_fields(record, when)
    if document.assumerole is not None:
        extra["assumerole"] = document.assumerole
        _geography(extra, document.assumerole)
    # The ECS event.id is the string eventID, which is what document_id would read again.
    ident = extra["event"].get("id") or document_id(document)
    displaced = _displaced(record)

    raw = document.raw
    if not displaced and raw is not None and record and raw[-1:] == b"}" and one_line(raw):
        # The common case: the record's own bytes, then the added keys.
        return EsDocument(ident, b"".join((raw[:-1], b",", orjson.dumps(extra)[1:])), when)

    merged = {key: value for key, value in record.items() if key not in displaced}
    merged.update(extra)
    if displaced:
        merged["aws"] = {"cloudtrail": {UNINDEXED: {key: record[key] for key in displaced}}}
    return EsDocument(ident, orjson.dumps(merged), when)
