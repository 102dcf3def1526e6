"""The HEC sink against the protocol-faithful HEC test server."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from hec_setup import ACK_TOKEN, INDEX, TOKEN
from servers.certificates import issue
from servers.hec_server import HecServer, Token

from forwarder.config import SplunkHecSink
from forwarder.document import Document
from forwarder.sinks.base import SinkError, SinkFatal
from forwarder.sinks.splunk_hec import HecSink, hec_time

Build = Callable[..., HecSink]


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def expected_epoch(document: Document) -> float | None:
    """``eventTime`` as epoch seconds, worked out independently of the sink."""
    text = document.event_time
    if text is None:
        return None
    stamp = datetime.strptime(text[:19].replace("T", " "), "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc)
    fraction = text[20:23] if len(text) > 20 and text[19] == "." else "0"
    return stamp.timestamp() + int(fraction.ljust(3, "0")) / 1000


def assert_arrived_once(hec: HecServer, documents: list[Document]) -> None:
    stored = hec.events()
    assert Counter(canonical(e.event) for e in stored) == Counter(canonical(d.as_dict()) for d in documents)
    by_body = {canonical(d.as_dict()): d for d in documents}
    for event in stored:
        document = by_body[canonical(event.event)]
        assert (event.index, event.sourcetype, event.host) == (INDEX, "aws:cloudtrail", "forwarder-test")
        assert event.source == document.source
        assert event.time == pytest.approx(expected_epoch(document), abs=1e-6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-07-10T11:45:00Z", b"1688989500.000"),
        ("2020-09-14T00:50:17.123Z", b"1600044617.123"),
        ("2024-06-02 19:41:40.000000000", b"1717357300.000"),
        ("2024-06-02 19:41:40.98765", b"1717357300.987"),
        ("2023-07-10T13:45:00+02:00", b"1688989500.000"),
        ("not a time", None),
        ("2023-02-30T00:00:00Z", None),
        (None, None),
    ],
)
def test_hec_time_is_epoch_seconds_with_milliseconds(text: str | None, expected: bytes | None) -> None:
    assert hec_time(text) == expected


@pytest.mark.parametrize("gzip", [True, False])
def test_documents_arrive_complete_once_with_sourcetype_index_source_and_time(
        hec: HecServer, make_sink: Build, documents: list[Document], gzip: bool) -> None:
    sink = make_sink(gzip=gzip, batch_max_events=50, batch_max_bytes=64 * 1024)
    assert sink.send(documents).rejected == []
    assert_arrived_once(hec, documents)
    assert len(hec.codes("/event")) > len(documents) // 50  # many envelopes per request, several requests
    assert all(event.channel is None for event in hec.events())


def test_indexed_fields_are_flat_strings(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(indexed_fields=["assumerole.caller.external", "assumerole.chain.hops", "recipientAccountId",
                                     "assumerole.role"])
    assumption = next(d for d in documents
                      if d.assumerole and "caller" in d.assumerole and d.assumerole["chain"]["hops"])
    plain = Document(assumption.record, None, assumption.source)
    sink.send([assumption, plain])
    first, second = hec.events()
    assert first.fields == {
        "assumerole.caller.external": str(assumption.assumerole["caller"]["external"]).lower(),
        "assumerole.chain.hops": assumption.assumerole["chain"]["hops"],
        "recipientAccountId": assumption.record["recipientAccountId"],
    }
    assert second.fields == {"recipientAccountId": plain.record["recipientAccountId"]}


def test_with_ack_send_returns_only_after_the_indexer_acknowledges(
        hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(token=ACK_TOKEN, ack=True, batch_max_events=40)
    hec.hold_acks()
    outcome: list[Any] = []
    sender = threading.Thread(target=lambda: outcome.append(sink.send(documents)))
    sender.start()
    deadline = time.monotonic() + 10
    while hec.event_count < len(documents) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # several poll rounds, all answered false
    assert hec.event_count == len(documents)
    assert sender.is_alive() and outcome == [], "send() reported delivery before the indexer acknowledged"
    assert sum(len(ids) for ids in hec.pending_acks().values()) == len(hec.codes("/event"))
    hec.release_acks()
    sender.join(timeout=10)
    assert not sender.is_alive() and outcome[0].rejected == []
    assert hec.pending_acks() == {}
    assert_arrived_once(hec, documents)
    assert len({event.channel for event in hec.events()}) == 1


def test_a_batch_not_acknowledged_in_time_is_sent_again(
        hec: HecServer, make_sink: Build, documents: list[Document], caplog: pytest.LogCaptureFixture) -> None:
    sink = make_sink(token=ACK_TOKEN, ack=True, batch_max_events=40, ack_timeout_seconds=0.3)
    hec.lose_next(1)  # accepted with an ackId, then lost: its ack never comes
    with caplog.at_level(logging.WARNING):
        assert sink.send(documents).rejected == []
    assert_arrived_once(hec, documents)
    assert len(hec.codes("/event")) == -(-len(documents) // 40) + 1
    assert "not acknowledged within 0.3s" in caplog.text


def test_acks_that_never_come_end_in_sink_error(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(token=ACK_TOKEN, ack=True, ack_timeout_seconds=0.1, max_retries=1)
    hec.hold_acks()
    with pytest.raises(SinkError, match="not acknowledged by the indexer within 0.1s"):
        sink.send(documents[:5])


def test_a_busy_server_delays_but_loses_nothing(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(batch_max_events=100, max_retries=6)
    hec.busy(requests=5)
    assert sink.send(documents).rejected == []
    assert_arrived_once(hec, documents)
    assert hec.codes("/event").count(9) == 5


def test_busy_for_a_while_with_ack(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(token=ACK_TOKEN, ack=True, max_retries=10, retry_max_seconds=0.1)
    hec.busy(seconds=0.3)
    assert sink.send(documents).rejected == []
    assert_arrived_once(hec, documents)


def test_busy_beyond_the_retries_raises_sink_error(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(max_retries=2)
    hec.busy(requests=100)
    with pytest.raises(SinkError, match=r"failed after 3 attempts: HTTP 503 Server is busy \(code 9\)") as raised:
        sink.send(documents[:3])
    assert not isinstance(raised.value, SinkFatal)
    assert hec.events() == []


def test_dropped_connections_are_retried(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(batch_max_events=100)
    hec.drop_connections(3)
    assert sink.send(documents).rejected == []
    assert_arrived_once(hec, documents)


@pytest.mark.parametrize(
    ("break_token", "message"),
    [
        (lambda hec: hec.remove_token(TOKEN), "does not know the HEC token (code 4, Invalid token)"),
        (lambda hec: hec.disable_token(TOKEN), "token is disabled in Splunk (code 1, Token disabled)"),
    ],
)
def test_a_bad_token_raises_sink_fatal_with_a_clear_message_without_the_token(
        hec: HecServer, make_sink: Build, documents: list[Document], caplog: pytest.LogCaptureFixture,
        break_token: Callable[[HecServer], None], message: str) -> None:
    sink = make_sink()
    sink.check_health()  # the token is fine at start; it is revoked or disabled later
    break_token(hec)
    with caplog.at_level(logging.DEBUG), pytest.raises(SinkFatal) as raised:
        sink.send(documents[:3])
    text = str(raised.value)
    assert message in text and "TEST_HEC_TOKEN" in text and hec.url in text
    assert TOKEN not in text and TOKEN not in repr(sink) and TOKEN not in caplog.text
    assert hec.events() == []


def test_an_unknown_token_is_caught_by_the_health_check_at_start(make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(token="not-the-token")
    with pytest.raises(SinkFatal, match="refused the token at its health check") as raised:
        sink.send(documents[:1])
    assert "not-the-token" not in str(raised.value)


def test_an_unhealthy_collector_is_a_clear_error(hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    hec.unhealthy = True
    with pytest.raises(SinkError, match=r"health check failed .* HEC is unhealthy, queues are full \(code 18\)"):
        make_sink(max_retries=1).send(documents[:1])


@pytest.mark.parametrize(
    ("token", "ack", "message"),
    [(ACK_TOKEN, False, "set 'ack: true'"), (TOKEN, True, "indexer acknowledgement is off for this HEC token")],
)
def test_ack_setting_that_does_not_match_the_token_is_fatal(
        make_sink: Build, documents: list[Document], token: str, ack: bool, message: str) -> None:
    with pytest.raises(SinkFatal, match=message):
        make_sink(token=token, ack=ack).send(documents[:2])


def test_an_index_the_token_may_not_write_is_dead_lettered_not_retried(
        hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    sink = make_sink(index="main", batch_max_events=50)
    delivery = sink.send(documents)
    assert [r.document for r in delivery.rejected] == list(documents)
    assert all("Incorrect index (code 7)" in r.reason and "'main'" in r.reason for r in delivery.rejected)
    assert hec.codes("/event") == [7] * -(-len(documents) // 50)  # one refusal per batch, no retries
    assert hec.events() == []


@pytest.mark.parametrize("ack", [False, True])
def test_one_bad_event_is_dead_lettered_and_its_neighbours_delivered(
        hec: HecServer, make_sink: Build, documents: list[Document], ack: bool) -> None:
    empty = Document({}, None, "s3://trail-bucket/broken.json")  # "event": {} -> code 13
    batch = [*documents[:7], empty, *documents[7:12]]
    sink = make_sink(token=ACK_TOKEN if ack else TOKEN, ack=ack)
    delivery = sink.send(batch)
    assert [r.document for r in delivery.rejected] == [empty]
    assert "Event field cannot be blank (code 13)" in delivery.rejected[0].reason
    stored = Counter(canonical(e.event) for e in hec.events())
    good = [canonical(d.as_dict()) for d in documents[:12]]
    assert set(stored) == set(good)
    # Without ack the events HEC indexed before the bad one count as delivered; with ack they
    # had no ackId and are sent again, so they may be indexed twice (at least once).
    assert all(stored[body] == (2 if ack and i < 7 else 1) for i, body in enumerate(good))


def test_a_request_over_the_collectors_size_limit_is_split(
        hec: HecServer, make_sink: Build, documents: list[Document]) -> None:
    # An older Splunk refuses bodies over 1 MB (max_content_length) with HTTP 413.
    sizes = sorted(len(d.to_json()) for d in documents[:40])
    hec.max_content_length = sizes[-1] * 4 + 4096
    huge = Document({"eventID": "huge", "eventTime": "2026-03-31T10:00:00Z", "padding": "x" * hec.max_content_length},
                    None, "s3://trail-bucket/huge.json")
    sink = make_sink(gzip=False, batch_max_events=40)
    delivery = sink.send([*documents[:40], huge])
    assert [r.document for r in delivery.rejected] == [huge] and "HTTP 413" in delivery.rejected[0].reason
    assert_arrived_once(hec, documents[:40])
    assert 413 in [status for _, status, _ in hec.requests]


def test_tls_is_verified_by_default_and_ca_file_trusts_the_collector(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, documents: list[Document]) -> None:
    certificate = issue(tmp_path)
    monkeypatch.setenv("TEST_HEC_TOKEN", TOKEN)
    settings = {"type": "splunk_hec", "token": {"env": "TEST_HEC_TOKEN"}, "index": INDEX, "max_retries": 0}
    with HecServer([Token(TOKEN, indexes=[INDEX])], tls=(str(certificate.cert_file), str(certificate.key_file))) as hec:
        assert hec.url.startswith("https://")
        untrusted = HecSink(SplunkHecSink.model_validate({**settings, "url": hec.url}))
        with pytest.raises(SinkFatal, match=r"the certificate of https://127\.0\.0\.1:\d+ did not verify .*CERTIFICATE_VERIFY_FAILED.*ca_file"):
            untrusted.send(documents[:2])
        trusted = HecSink(SplunkHecSink.model_validate({**settings, "url": hec.url, "ca_file": str(certificate.ca_file)}))
        assert trusted.send(documents[:2]).rejected == []
        assert len(hec.events()) == 2
