"""The Elasticsearch document (ECS fields, splicing, displaced keys): pure functions, no node."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import orjson
import pytest
from es_node import public_records
from hypothesis import given, settings
from hypothesis import strategies as st

from forwarder.catalogue import load_catalogue
from forwarder.document import Document
from forwarder.record import MAX_DEPTH, Undecodable, decode, parse_time
from forwarder.sinks import es_document
from forwarder.sinks.es_document import document_id, ecs_fields, event_time, source_ip, to_es
from paths import DATA

VECTORS = DATA / "elastic-integration-cloudtrail" / "vectors.jsonl"


def leaves(value: Any, prefix: str = "") -> set[str]:
    if isinstance(value, dict):
        return set().union(*(leaves(v, f"{prefix}.{k}" if prefix else k) for k, v in value.items())) if value else set()
    return {prefix}


def vectors() -> list[dict[str, Any]]:
    if not VECTORS.exists():
        pytest.skip(f"Elastic's reference vectors are not in {VECTORS.parent.resolve()}")
    return [json.loads(line) for line in VECTORS.read_text().splitlines() if line.strip()]


def test_ecs_fields_match_elastics_integration() -> None:
    """Every ECS field we write has the value Elastic's CloudTrail pipeline gives (where it gives one)."""
    compared = 0
    for vector in vectors():
        ours = ecs_fields(vector["input"], event_time(vector["input"]))
        expected = vector["expected"]
        for path in leaves(ours):
            want: Any = expected
            for part in path.split("."):
                want = want.get(part) if isinstance(want, dict) else None
            got: Any = ours
            for part in path.split("."):
                got = got[part]
            if path == "related.user":  # newer pipelines add principal ids and emails too
                assert want is None or set(got) <= set(want), (vector["source_file"], path)
            elif want is not None:
                assert got == want, (vector["source_file"], path, got, want)
                compared += 1
        if "ip" not in expected.get("source", {}):
            assert "ip" not in ours.get("source", {})
    assert compared >= 40


def test_source_ip_only_for_addresses() -> None:
    for address, ip in [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("fd00::1", "fd00::1"),
        ("ec2.amazonaws.com", None),
        ("AWS Internal", None),
        ("1.2.3", None),
    ]:
        out = ecs_fields({"sourceIPAddress": address}, None)
        assert out["source"]["address"] == address
        assert out["source"].get("ip") == ip
        assert out.get("related", {}).get("ip") == ([ip] if ip else None)


def by_ipaddress(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


# Dotted numbers near and beyond what IPv4 takes: leading zeros, too large, empty, signs, spaces,
# non-ASCII digits; IPv6 in its forms (compressed, exploded, upper case, IPv4-mapped, scoped).
OCTETS = st.one_of(st.integers(0, 255).map(str), st.integers(256, 99999).map(str),
                   st.from_regex(r"0[0-9]{1,3}", fullmatch=True), st.text("0123456789", max_size=4),
                   st.sampled_from(["", " 1", "1 ", "+1", "-0", "0x1", "\u0663", "\u00b2", "1\n"]))
DOTTED = st.one_of(st.lists(OCTETS, min_size=4, max_size=4), st.lists(OCTETS, min_size=1, max_size=6)).map(".".join)
EDGES = ["0.0.0.0", "255.255.255.255", "01.2.3.4", "1.2.3.04", "00.0.0.0", "256.1.1.1", "1.2.3.255", "1.2.3.256",
         "1.2.3", "1.2.3.4.5", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", "\u0661.2.3.4", "1..2.3", "::", "::1", "1::",
         "::ffff:1.2.3.4", "fe80::1%eth0", "2001:DB8::1", "2001:db8::1/64", "1.2.3.4:80", ":"]
IPV6 = st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address).flatmap(lambda address: st.sampled_from([
    address.compressed, address.exploded, address.compressed.upper(), f"{address.compressed}%eth0",
    f"::ffff:{ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)}", address.compressed + ":"]))


@settings(max_examples=1000)
@given(st.one_of(st.text(), DOTTED, IPV6, st.from_regex(r"[0-9a-fA-F:.%]{1,45}", fullmatch=True)))
def test_source_ip_agrees_with_ipaddress_on_any_text(value: str) -> None:
    assert source_ip(value) == by_ipaddress(value)


@pytest.mark.parametrize("value", EDGES)
def test_source_ip_agrees_with_ipaddress_at_the_edges(value: str) -> None:
    assert source_ip(value) == by_ipaddress(value)


def test_an_ipv4_address_builds_no_ipaddress_object(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(value: str) -> None:
        raise AssertionError(f"ipaddress asked about {value!r}")

    monkeypatch.setattr(es_document.ipaddress, "ip_address", refuse)
    for record in [{"sourceIPAddress": "198.51.100.7"}, {"sourceIPAddress": "ec2.amazonaws.com"},
                   {"sourceIPAddress": "AWS Internal"}, {"sourceIPAddress": "10.0.0.256"}]:
        ecs_fields(record, None)


def test_times_in_the_shapes_exporters_write() -> None:
    assert parse_time("2023-07-10T11:45:00Z").isoformat() == "2023-07-10T11:45:00+00:00"
    assert parse_time("2024-06-02 19:41:40.000000000").isoformat() == "2024-06-02T19:41:40+00:00"
    assert parse_time("2024-06-02T21:41:40.5+02:00").isoformat() == "2024-06-02T19:41:40.500000+00:00"
    assert parse_time("yesterday") is None and parse_time(None) is None and parse_time(17) is None
    exported = {"@timestamp": "2020-09-14T00:50:17.000Z", "eventName": "AssumeRole"}
    assert ecs_fields(exported, event_time(exported))["@timestamp"] == "2020-09-14T00:50:17.000Z"
    assert "@timestamp" not in ecs_fields({"eventTime": "not a time"}, event_time({"eventTime": "not a time"}))


def test_failure_outcome_and_user_names() -> None:
    record = {
        "eventName": "AssumeRole",
        "eventSource": "sts.amazonaws.com",
        "errorCode": "AccessDenied",
        "userIdentity": {"type": "IAMUser", "userName": "dave", "principalId": "AIDA1", "accountId": "111111111111"},
        "recipientAccountId": "333333333333",
        "requestParameters": {"userName": "mallory"},
    }
    out = ecs_fields(record, None)
    assert out["event"]["outcome"] == "failure"
    assert out["event"]["category"] == ["authentication"]
    assert out["user"] == {"name": "dave", "id": "AIDA1"}
    assert out["cloud"]["account"]["id"] == "111111111111"  # the caller's, as Elastic's pipeline
    assert out["related"]["user"] == ["dave", "mallory"]


def test_splice_keeps_the_record_bytes_and_equals_the_merged_document() -> None:
    record = {"eventID": "e1", "eventTime": "2026-03-31T07:12:00Z", "eventName": "AssumeRole", "requestParameters": {"a": [1, {"b": None}]}}
    raw = orjson.dumps(record)
    assumerole = {"chain": {"depth": 1, "hops": ["arn:aws:iam::1:role/x"]}}
    spliced = to_es(Document(record, assumerole, "t", raw))
    parsed = to_es(Document(record, assumerole, "t", None))
    assert spliced.body.startswith(raw[:-1])
    assert orjson.loads(spliced.body) == orjson.loads(parsed.body)
    body = orjson.loads(spliced.body)
    assert body["assumerole"] == assumerole and body["event"]["id"] == "e1"
    assert spliced.time is not None and spliced.time.isoformat() == "2026-03-31T07:12:00+00:00"
    assert record == {"eventID": "e1", "eventTime": "2026-03-31T07:12:00Z", "eventName": "AssumeRole", "requestParameters": {"a": [1, {"b": None}]}}


def test_keys_the_mapping_cannot_take_move_aside_unchanged() -> None:
    record = {
        "eventID": "e2",
        "@timestamp": "2020-09-14T00:50:17.000Z",
        "@version": "1",
        "resources": ["{'arn': 'x'}"],
        "requestParameters": "a string",
        "userIdentity": {"type": "IAMUser"},
    }
    body = orjson.loads(to_es(Document(record, None, "t", orjson.dumps(record))).body)
    assert body["aws"]["cloudtrail"]["unindexed"] == {
        "@timestamp": "2020-09-14T00:50:17.000Z",
        "resources": ["{'arn': 'x'}"],
        "requestParameters": "a string",
    }
    assert "resources" not in body and "requestParameters" not in body
    assert body["@timestamp"] == "2020-09-14T00:50:17.000Z" and body["@version"] == "1"
    assert body["userIdentity"] == {"type": "IAMUser"}


def test_every_field_written_is_in_the_catalogue() -> None:
    """ECS output over every public record: each leaf is a catalogued field."""
    declared = {spec.name for spec in load_catalogue().group("ecs")}
    written: set[str] = set()
    for _, records in public_records():
        for record in records:
            body = orjson.loads(to_es(Document(record, None, "t", None)).body)
            written |= {path for path in leaves(body) if path.split(".")[0] in {"event", "source", "user_agent", "cloud", "user", "related", "@timestamp"}}
            if "aws" in body:
                written.add("aws.cloudtrail.unindexed")
    assert written - declared == set()
    assert {"@timestamp", "event.action", "source.ip", "related.user", "aws.cloudtrail.unindexed"} <= written


@pytest.mark.parametrize("event_id", [42, {"id": "e3"}, None, "", ["e3"]], ids=["number", "object", "null", "empty", "array"])
def test_an_event_id_that_is_no_string_gets_a_stable_document_id(event_id: Any) -> None:
    record = {"eventID": event_id, "eventTime": "2026-03-31T07:12:00Z", "recipientAccountId": "111111111111", "a": {"b": 1, "c": 2}}
    compact = orjson.dumps(record)
    reordered = orjson.dumps({**record, "a": {"c": 2, "b": 1}}, option=orjson.OPT_INDENT_2)  # another layout, the same record
    ids = {to_es(Document(None, None, "t", raw)).id for raw in (compact, compact, reordered)}
    ids.add(document_id(Document(record, {"chain": {"depth": 1}}, "t", None)))  # what enrichment added is not the record
    assert len(ids) == 1 and ids.pop().startswith("sha256:")
    other = to_es(Document(None, None, "t", orjson.dumps({**record, "recipientAccountId": "222222222222"}))).id
    assert other != to_es(Document(None, None, "t", compact)).id  # the other copy of a cross-account call
    missing = {key: value for key, value in record.items() if key != "eventID"}
    assert to_es(Document(missing, None, "t", None)).id.startswith("sha256:")


def test_a_string_event_id_is_the_document_id() -> None:
    record = {"eventID": "7c4b6b8e-4b8a-4b0e-9d43-2f2e6f1f0c11", "eventTime": "2026-03-31T07:12:00Z"}
    assert to_es(Document(record, None, "t", orjson.dumps(record))).id == record["eventID"]


def test_a_pretty_printed_record_goes_into_the_bulk_body_as_one_line() -> None:
    record = {"eventID": "e4", "eventTime": "2026-03-31T07:12:00Z", "requestParameters": {"roleArn": "arn:aws:iam::1:role/x"}}
    for raw in (orjson.dumps(record, option=orjson.OPT_INDENT_2), orjson.dumps(record).replace(b",", b",\r\n")):
        body = to_es(Document(decode(raw), {"chain": {"depth": 1}}, "t", raw)).body
        assert b"\n" not in body and b"\r" not in body
        assert orjson.loads(body)["requestParameters"] == record["requestParameters"]


def test_the_deepest_record_decode_accepts_still_fits_in_the_sinks_envelope() -> None:
    deep: Any = 1
    for _ in range(MAX_DEPTH - 1):
        deep = [deep]
    raw = orjson.dumps({"eventID": "deep", "event": deep})  # "event" is the sink's own: it moves aside, 3 levels down
    body = orjson.loads(to_es(Document(decode(raw), None, "t", raw)).body)
    assert body["aws"]["cloudtrail"]["unindexed"]["event"] == deep


def test_what_cannot_be_written_is_undecodable_for_that_document_only() -> None:
    with pytest.raises(Undecodable, match="no double holds"):
        to_es(Document(None, None, "t", b'{"eventID":"e5","requestParameters":{"durationSeconds":1e400}}'))
    record = {"eventID": "e6", "eventTime": "2026-03-31T07:12:00Z"}
    with pytest.raises(Undecodable, match="64-bit"):
        to_es(Document(record, {"session": {"duration_seconds": 2**70}}, "t", orjson.dumps(record)))
