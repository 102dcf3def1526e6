"""Credentials and TLS: the sink against a front that serves the node over HTTPS with a
certificate of its own CA and asks for credentials, as a secured cluster does."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from es_node import Namespace
from servers.certificates import ServerCertificate, issue
from servers.es_front import NodeFront

from cloudtrail import assume, user
from forwarder.cli import main
from forwarder.sinks.base import SinkFatal
from forwarder.sinks.elasticsearch import ElasticsearchSink as Sink

pytestmark = pytest.mark.elasticsearch

API_KEY = base64.b64encode(b"VuaCfGcBCdbkQm-e5aOx:ui2lp2axTNmsyakw9tvNnw").decode()
USER, PASSWORD = "ingest", "s3cret-Passw0rd-for-tests"
ACCEPTED = {f"ApiKey {API_KEY}", "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return issue(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def front(ns: Namespace, certificate: ServerCertificate) -> Iterator[NodeFront]:
    ns.sink()  # the templates go straight onto the node; the sink under test then checks them through the front
    with NodeFront(ns.url, tls=certificate.server_context(), accept=ACCEPTED) as running:
        yield running


def records() -> list[dict]:
    at = datetime(2026, 11, 2, 8, 30, tzinfo=UTC)
    return [assume(user("111111111111", f"user{n}"), "arn:aws:iam::222222222222:role/Deploy", at) for n in range(3)]


def test_api_key_from_the_environment_over_verified_tls(ns: Namespace, front: NodeFront, certificate: ServerCertificate,
                                                       documents, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TEST_ES_API_KEY", API_KEY)
    with caplog.at_level(logging.DEBUG):
        sink = ns.sink(setup=False, hosts=[front.url], api_key={"env": "TEST_ES_API_KEY"}, ca_file=str(certificate.ca_file))
        assert sink.send(documents(records())).rejected == []
    assert ns.count() == 3
    assert front.forwarded_bulk == 1 and front.unauthenticated == 0
    assert API_KEY not in caplog.text


def test_password_from_a_file(ns: Namespace, front: NodeFront, certificate: ServerCertificate, documents,
                              tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "es-password"
    secret.write_text(PASSWORD + "\n")  # as `echo` or a mounted Kubernetes secret leaves it
    with caplog.at_level(logging.DEBUG):
        sink = ns.sink(setup=False, hosts=[front.url], username=USER, password={"file": str(secret)},
                       ca_file=str(certificate.ca_file))
        assert sink.send(documents(records())).rejected == []
    assert ns.count() == 3
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize("check_templates", [True, False], ids=["at-start", "at-first-bulk"])
def test_refused_credentials_stop_the_sink_with_a_clear_error(ns: Namespace, front: NodeFront, certificate: ServerCertificate,
                                                              documents, monkeypatch: pytest.MonkeyPatch,
                                                              check_templates: bool) -> None:
    wrong = base64.b64encode(b"revoked:key-that-was-rotated").decode()
    monkeypatch.setenv("TEST_ES_API_KEY", wrong)
    cfg = ns.config(hosts=[front.url], api_key={"env": "TEST_ES_API_KEY"}, ca_file=str(certificate.ca_file),
                    check_templates=check_templates, max_retries=5)
    with pytest.raises(SinkFatal, match="refused the credentials: security_exception: unable to authenticate") as raised:
        Sink(cfg).send(documents(records()))
    assert wrong not in str(raised.value)
    assert front.unauthenticated == 1  # no retry: another try cannot make the key right
    assert ns.count() == 0


def test_certificate_is_verified_by_default(ns: Namespace, front: NodeFront, documents, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ES_API_KEY", API_KEY)
    cfg = ns.config(hosts=[front.url], api_key={"env": "TEST_ES_API_KEY"}, check_templates=False, max_retries=5)
    assert cfg.verify_tls
    sink = Sink(cfg)
    with pytest.raises(SinkFatal, match=r"the certificate of https://127\.0\.0\.1:\d+ did not verify .*give the CA .* in ca_file"):
        sink.send(documents(records()))
    sink.close()
    assert front.forwarded_bulk == 0 and ns.count() == 0


def test_verification_can_be_turned_off(ns: Namespace, front: NodeFront, documents, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_ES_API_KEY", API_KEY)
    sink = ns.sink(setup=False, hosts=[front.url], api_key={"env": "TEST_ES_API_KEY"}, verify_tls=False)
    assert sink.send(documents(records())).rejected == []
    assert ns.count() == 3


def test_setup_command_names_a_certificate_it_cannot_verify(ns: Namespace, front: NodeFront, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_ES_API_KEY", API_KEY)
    sink = ns.config(hosts=[front.url], api_key={"env": "TEST_ES_API_KEY"}).model_dump(mode="json", exclude_none=True)
    config = tmp_path / "forwarder.yaml"
    config.write_text(yaml.safe_dump({"sinks": [sink]}))
    assert main(["setup", "elasticsearch", "--config", str(config)]) == 3
    err = capsys.readouterr().err
    assert "did not verify" in err and "ca_file" in err and "Traceback" not in err
    assert API_KEY not in err
