"""The HEC test server is as strict as Splunk: otherwise a sink passing against it proves nothing."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from typing import Any

import pytest
import urllib3
from hec_setup import ACK_TOKEN, INDEX, TOKEN
from servers.hec_server import HecServer

EVENT = "/services/collector/event"


def call(hec: HecServer, path: str, body: bytes | str | None = None, token: str | None = TOKEN,
         method: str = "POST", **headers: str) -> tuple[int, dict[str, Any]]:
    if token is not None:
        headers.setdefault("Authorization", f"Splunk {token}")
    if isinstance(body, str):
        body = body.encode()
    response = urllib3.request(method, hec.url + path, body=body, headers=headers, retries=False)
    return response.status, json.loads(response.data)


def envelopes(*items: dict[str, Any]) -> str:
    return "".join(json.dumps(item) for item in items)


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, 2),
        ({"Authorization": TOKEN}, 401, 3),
        ({"Authorization": f"Bearer {TOKEN}"}, 401, 3),
        ({"Authorization": "Splunk not-a-known-token"}, 403, 4),
    ],
)
def test_authorization_is_checked_with_the_documented_codes(hec: HecServer, headers: dict[str, str], status: int,
                                                            code: int) -> None:
    texts = {2: "Token is required", 3: "Invalid authorization", 4: "Invalid token"}
    assert call(hec, EVENT, '{"event": "x"}', token=None, **headers) == (status, {"text": texts[code], "code": code})
    assert hec.events() == []


def test_basic_auth_works_and_query_string_token_is_refused_by_default(hec: HecServer) -> None:
    basic = "Basic " + base64.b64encode(f"x:{TOKEN}".encode()).decode()
    assert call(hec, EVENT, '{"event": "a"}', token=None, Authorization=basic) == (200, {"text": "Success", "code": 0})
    assert call(hec, f"{EVENT}?token={TOKEN}", '{"event": "b"}', token=None) == (
        400, {"text": "Query string authorization is not enabled", "code": 16})
    hec.disable_token(TOKEN)
    assert call(hec, EVENT, '{"event": "c"}') == (403, {"text": "Token disabled", "code": 1})
    assert [e.event for e in hec.events()] == ["a"]


def test_several_envelopes_in_one_gzip_body_are_stored_with_their_metadata(hec: HecServer) -> None:
    body = envelopes(
        {"time": 1688989500.123, "host": "h", "source": "s3://b/k", "sourcetype": "aws:cloudtrail",
         "index": INDEX, "event": {"eventName": "AssumeRole"}, "fields": {"flag": "true", "many": ["a", "b"]}},
        {"time": "1688989501", "event": "plain text"},
    ) + "\n"
    status, answer = call(hec, EVENT, gzip.compress(body.encode()), **{"Content-Encoding": "gzip"})
    assert (status, answer) == (200, {"text": "Success", "code": 0})
    first, second = hec.events(INDEX)
    assert (first.time, first.host, first.source) == (1688989500.123, "h", "s3://b/k")
    assert first.sourcetype == "aws:cloudtrail"
    assert first.event == {"eventName": "AssumeRole"} and first.fields == {"flag": "true", "many": ["a", "b"]}
    assert (second.time, second.sourcetype, second.event) == (1688989501.0, "httpevent", "plain text")


@pytest.mark.parametrize(
    ("bad", "code", "text"),
    [
        ({"time": 1}, 12, "Event field is required"),
        ({"event": None}, 12, "Event field is required"),
        ({"event": ""}, 13, "Event field cannot be blank"),
        ({"event": {}}, 13, "Event field cannot be blank"),
        ({"event": "x", "time": "yesterday"}, 6, "Invalid data format"),
        ({"event": "x", "host": 7}, 6, "Invalid data format"),
        ({"event": "x", "fields": {"nested": {"a": "b"}}}, 15, "Error in handling indexed fields"),
        ({"event": "x", "fields": {"n": 1}}, 15, "Error in handling indexed fields"),
        ({"event": "x", "index": "not_allowed"}, 7, "Incorrect index"),
    ],
)
def test_a_malformed_envelope_fails_with_its_number_and_only_earlier_events_are_kept(
        hec: HecServer, bad: dict[str, Any], code: int, text: str) -> None:
    body = envelopes({"event": "before"}, bad, {"event": "after"})
    assert call(hec, EVENT, body) == (400, {"text": text, "code": code, "invalid-event-number": 1})
    assert [e.event for e in hec.events()] == ["before"]


def test_unparseable_json_empty_bodies_and_broken_gzip(hec: HecServer) -> None:
    assert call(hec, EVENT, '{"event": "ok"}{"event": "cut') == (
        400, {"text": "Invalid data format", "code": 6, "invalid-event-number": 1})
    assert call(hec, EVENT, '["event"]') == (400, {"text": "Invalid data format", "code": 6, "invalid-event-number": 0})
    assert call(hec, EVENT, "  \n") == (400, {"text": "No data", "code": 5})
    assert call(hec, EVENT, b"not gzip", **{"Content-Encoding": "gzip"}) == (
        400, {"text": "Invalid data format", "code": 6})


def test_channels_ack_ids_and_the_ack_endpoint(hec: HecServer) -> None:
    channel = str(uuid.uuid4())
    assert call(hec, EVENT, '{"event": "a"}', token=ACK_TOKEN) == (400, {"text": "Data channel is missing", "code": 10})
    assert call(hec, EVENT, '{"event": "a"}', token=ACK_TOKEN, **{"X-Splunk-Request-Channel": "chan-1"}) == (
        400, {"text": "Invalid data channel", "code": 11})
    assert call(hec, EVENT, '{"event": "a"}', token=ACK_TOKEN, **{"X-Splunk-Request-Channel": channel})[1]["ackId"] == 0
    hec.hold_acks()
    assert call(hec, f"{EVENT}?channel={channel}", '{"event": "b"}', token=ACK_TOKEN)[1] == {
        "text": "Success", "code": 0, "ackId": 1}
    ack = "/services/collector/ack"
    query = json.dumps({"acks": [0, 1, 7]})
    assert call(hec, ack, query, token=ACK_TOKEN, **{"X-Splunk-Request-Channel": channel}) == (
        200, {"acks": {"0": False, "1": False, "7": False}})
    hec.release_acks()
    assert call(hec, ack, query, token=ACK_TOKEN, **{"X-Splunk-Request-Channel": channel}) == (
        200, {"acks": {"0": True, "1": True, "7": False}})
    # An ack reported true is forgotten, as in Splunk.
    assert call(hec, ack, query, token=ACK_TOKEN, **{"X-Splunk-Request-Channel": channel})[1]["acks"]["0"] is False
    assert call(hec, ack, query, token=ACK_TOKEN) == (400, {"text": "Data channel is missing", "code": 10})
    assert call(hec, ack, query, **{"X-Splunk-Request-Channel": channel}) == (
        400, {"text": "ACK is disabled", "code": 14})
    # Without ack on the token, a channel is optional and no ackId comes back.
    answer = call(hec, EVENT, '{"event": "c"}', **{"X-Splunk-Request-Channel": channel})[1]
    assert answer == {"text": "Success", "code": 0}


def test_raw_endpoint_needs_a_channel_and_splits_lines(hec: HecServer) -> None:
    raw = "/services/collector/raw?sourcetype=text&source=unit"
    assert call(hec, raw, "one\ntwo\n") == (400, {"text": "Data channel is missing", "code": 10})
    assert call(hec, raw, "one\ntwo\n", **{"X-Splunk-Request-Channel": str(uuid.uuid4())})[0] == 200
    stored = [(e.event, e.sourcetype, e.source) for e in hec.events()]
    assert stored == [("one", "text", "unit"), ("two", "text", "unit")]


def test_health_and_fault_switches(hec: HecServer) -> None:
    health = "/services/collector/health"
    assert call(hec, health, method="GET") == (200, {"text": "HEC is healthy", "code": 17})
    assert call(hec, health, method="GET", token="wrong")[0] == 400
    hec.unhealthy = True
    assert call(hec, health, method="GET") == (503, {"text": "HEC is unhealthy, queues are full", "code": 18})
    hec.busy(requests=1)
    assert call(hec, EVENT, '{"event": "x"}') == (503, {"text": "Server is busy", "code": 9})
    hec.drop_connections(1)
    with pytest.raises(urllib3.exceptions.ProtocolError):
        call(hec, EVENT, '{"event": "x"}')
    assert call(hec, EVENT, '{"event": "x"}')[0] == 200
    assert call(hec, "/services/collector/nothing", "{}")[0] == 404
    assert len(hec.events()) == 1
