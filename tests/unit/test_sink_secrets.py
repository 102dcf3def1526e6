"""No secret of a sink in a log line, an error or a dead-letter reason, whatever fails.

The failures are injected where the HTTP libraries would raise them, quoting the request's
Authorization header as http.client does (``Invalid header value b'Splunk <token>'``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest
import urllib3
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from forwarder.cli import main
from forwarder.config import ConfigError, ElasticsearchSink, SplunkHecSink
from forwarder.document import Document
from forwarder.sinks.base import SinkError
from forwarder.sinks.elasticsearch import ElasticsearchSink as EsSink
from forwarder.sinks.redact import Redactor
from forwarder.sinks.splunk_hec import HecSink

TOKEN = "0f3c9a52-token-that-must-never-show"
DOCUMENT = Document({"eventID": "e-1", "eventTime": "2026-03-31T10:00:00Z"}, {}, "s3://bucket/key")
FAST = {"max_retries": 1, "retry_initial_seconds": 0.01, "retry_max_seconds": 0.01}


def leaked(text: str, secret: str = TOKEN) -> bool:
    return any(part in text for part in (secret, *secret.splitlines(), repr(secret)[1:-1]) if len(part) > 3)


def hec(monkeypatch: pytest.MonkeyPatch, token: str = TOKEN) -> HecSink:
    monkeypatch.setenv("TEST_HEC_TOKEN", token)
    return HecSink(SplunkHecSink(type="splunk_hec", url="http://127.0.0.1:1", token={"env": "TEST_HEC_TOKEN"}, **FAST))


@pytest.mark.parametrize("token", ["first-half\nsecond-half", "first-half\r\nsecond-half", "first-half\x07second-half",
                                   "first-half\u2019second-half"])
def test_a_token_that_cannot_be_a_header_is_refused_before_any_request(monkeypatch: pytest.MonkeyPatch,
                                                                      token: str) -> None:
    with pytest.raises(ConfigError) as caught:
        hec(monkeypatch, token)
    assert "TEST_HEC_TOKEN" in str(caught.value)
    assert "first-half" not in str(caught.value) and "second-half" not in str(caught.value)


def test_run_refuses_such_a_token_with_exit_2_and_without_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_HEC_TOKEN", "first-half\nsecond-half")
    config = tmp_path / "forwarder.yaml"
    config.write_text(
        "source: {type: sqs, queue_url: 'http://127.0.0.1:1/111111111111/q', endpoint_url: 'http://127.0.0.1:1',\n"
        "         region: eu-west-1}\n"
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        f"dead_letter: {{path: {tmp_path / 'dead-letter'}}}\n"
        "metrics: {listen: null}\n"
        "sinks: [{type: splunk_hec, url: 'http://127.0.0.1:1', token: {env: TEST_HEC_TOKEN}}]\n"
    )
    assert main(["run", "--config", str(config), "--exit-when-idle", "1"]) == 2
    err = capsys.readouterr().err
    assert "TEST_HEC_TOKEN" in err and "newline" in err
    assert "first-half" not in err and "second-half" not in err and "Traceback" not in err


@pytest.mark.parametrize("failure", [
    urllib3.exceptions.ProtocolError(f"Connection aborted while sending header 'Splunk {TOKEN}'"),
    ValueError(f"Invalid header value {f'Splunk {TOKEN}'.encode()!r}"),
])
def test_hec_library_errors_are_redacted(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                         failure: Exception) -> None:
    sink = hec(monkeypatch)

    def request(*args: object, **kwargs: object) -> urllib3.BaseHTTPResponse:
        raise failure

    monkeypatch.setattr(sink._http, "request", request)
    with caplog.at_level(logging.DEBUG), pytest.raises(SinkError) as caught:
        sink.send([DOCUMENT])
    assert "***" in str(caught.value)
    assert not leaked(str(caught.value)) and not leaked(caplog.text)


def test_a_collector_echoing_the_token_is_redacted_in_the_rejection(monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    sink = hec(monkeypatch)
    answers = iter([(200, {"text": "HEC is healthy", "code": 17}),
                    (400, {"text": f"Invalid data format near Splunk {TOKEN}", "code": 6, "invalid-event-number": 0})])

    def request(*args: object, **kwargs: object) -> urllib3.BaseHTTPResponse:
        status, body = next(answers)
        return urllib3.HTTPResponse(body=orjson.dumps(body), status=status, preload_content=True)

    monkeypatch.setattr(sink._http, "request", request)
    with caplog.at_level(logging.DEBUG):
        delivery = sink.send([DOCUMENT])
    assert [rejected.reason for rejected in delivery.rejected] == [
        "Splunk HEC refused the event: Invalid data format near Splunk *** (code 6)"]
    assert not leaked(caplog.text)


def es(monkeypatch: pytest.MonkeyPatch) -> EsSink:
    monkeypatch.setenv("TEST_ES_API_KEY", TOKEN)
    return EsSink(ElasticsearchSink(type="elasticsearch", hosts=["http://127.0.0.1:1"], api_key={"env": "TEST_ES_API_KEY"},
                                    check_templates=False, **FAST))


def api_error(status: int, reason: str) -> ApiError:
    meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(), duration=0.0,
                           node=NodeConfig("http", "127.0.0.1", 1))
    return ApiError(reason, meta, {"error": {"type": "illegal_argument_exception", "reason": reason}})


def test_es_transport_errors_are_redacted(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    sink = es(monkeypatch)

    def perform_request(*args: object, **kwargs: object) -> None:
        raise ConnectionError(f"Invalid header value b'ApiKey {TOKEN}'")

    monkeypatch.setattr(sink.client.transport, "perform_request", perform_request)
    with caplog.at_level(logging.DEBUG), pytest.raises(SinkError) as caught:
        sink.send([DOCUMENT])
    assert "***" in str(caught.value)
    assert not leaked(str(caught.value)) and not leaked(caplog.text)


def test_es_refusals_are_redacted_in_the_rejection(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    sink = es(monkeypatch)

    def perform_request(*args: object, **kwargs: object) -> None:
        raise api_error(400, f"header [authorization] value [ApiKey {TOKEN}] is not valid")

    monkeypatch.setattr(sink.client.transport, "perform_request", perform_request)
    with caplog.at_level(logging.DEBUG):
        delivery = sink.send([DOCUMENT])
    assert len(delivery.rejected) == 1
    assert "***" in delivery.rejected[0].reason and not leaked(delivery.rejected[0].reason)
    assert not leaked(caplog.text)


def test_the_redactor_masks_the_escaped_forms_too() -> None:
    redact = Redactor(["first-half\nsecond-half"])
    assert redact(f"Invalid header value {b'Splunk first-half' + bytes([10]) + b'second-half'!r}") == (
        "Invalid header value b'Splunk ***'")
    assert redact("as given: first-half\nsecond-half.") == "as given: ***."
