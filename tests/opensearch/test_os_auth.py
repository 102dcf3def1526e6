"""How the OpenSearch sink proves who it is, and checks who it talks to.

The node runs with security off (its integ-test zip has no security plugin), so fronts stand in
for a secured cluster: tests/servers/sigv4_front.py verifies AWS Signature Version 4 as Amazon
OpenSearch Service and Serverless do (the signature recomputed with botocore from the same
credentials), and tests/servers/es_front.py serves the node over HTTPS and asks for a password.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from botocore.credentials import Credentials
from opensearchpy.exceptions import ConnectionError as NoAnswer
from os_node import Namespace
from servers.certificates import ServerCertificate, issue
from servers.es_front import NodeFront
from servers.sigv4_front import SigV4Front
from test_sink import story

from forwarder.cli import main
from forwarder.config import OpenSearchSink
from forwarder.document import Document
from forwarder.sinks.base import SinkError, SinkFatal
from forwarder.sinks.opensearch import OpenSearchSink as Sink

pytestmark = pytest.mark.opensearch

KEY, SECRET, TOKEN = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "IQoJb3JpZ2luX2VjEXAMPLE+token/=="
REGION = "eu-central-1"
USER, PASSWORD = "ingest", "s3cret-Passw0rd-for-tests"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only these credentials in the boto3 chain: no profile or instance role of the machine."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return issue(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("service", ["es", "aoss"])
def test_sigv4_signed_requests_index(ns: Namespace, aws: None, documents, caplog: pytest.LogCaptureFixture,
                                     service: str) -> None:
    ns.sink()  # the templates straight onto the node; the sink then checks them through the front
    # botocore logs what it signs at DEBUG (the session token included): the forwarder keeps it at
    # WARNING (forwarder/logs.py), as here; everything else is heard at DEBUG.
    caplog.set_level(logging.WARNING, logger="botocore")
    with SigV4Front(ns.url, Credentials(KEY, SECRET, TOKEN), REGION, service) as front, caplog.at_level(logging.DEBUG):
        sink = ns.sink(setup=False, hosts=[front.url], aws_sigv4={"region": REGION, "service": service})
        assert sink.send(documents(story())).rejected == []
        assert front.refused == [] and front.signed == 2  # the template check and one bulk request
    assert ns.count() == 3
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_a_wrong_secret_is_refused_at_start_without_retrying(ns: Namespace, aws: None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    ns.sink()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-the-front-knows")
    with SigV4Front(ns.url, Credentials(KEY, SECRET, TOKEN), REGION, "es") as front:
        with pytest.raises(SinkFatal, match="HTTP 403: The request signature we calculated does not match") as raised:
            ns.sink(setup=False, hosts=[front.url], aws_sigv4={"region": REGION})
        assert front.refused == [front.refused[0]] and front.signed == 0  # one try: no retry makes it right
    assert "not-the-secret" not in str(raised.value)


def test_a_bulk_request_signed_for_another_region_stops_the_sink(ns: Namespace, aws: None, documents) -> None:
    ns.sink()
    with SigV4Front(ns.url, Credentials(KEY, SECRET, TOKEN), REGION, "es") as front:
        sink = ns.sink(setup=False, check_templates=False, hosts=[front.url], aws_sigv4={"region": "us-east-1"})
        with pytest.raises(SinkFatal, match="refused the credentials: HTTP 403: Credential should be scoped"):
            sink.send(documents(story()))
        assert len(front.refused) == 1
    assert ns.count() == 0


def test_sigv4_needs_credentials_and_a_region(ns: Namespace, aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SinkFatal, match="needs a region"):
        ns.sink(setup=False, aws_sigv4={})
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    with pytest.raises(SinkFatal, match="found no AWS credentials"):
        ns.sink(setup=False, aws_sigv4={"region": REGION})


def test_setup_through_sigv4_from_the_command_line(ns: Namespace, aws: None, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with SigV4Front(ns.url, Credentials(KEY, SECRET, TOKEN), REGION, "es") as front:
        config = tmp_path / "forwarder.yaml"
        config.write_text(yaml.safe_dump({"sinks": [ns.config(hosts=[front.url], aws_sigv4={"region": REGION}).model_dump(
            mode="json", exclude_defaults=True)]}))
        assert main(["setup", "opensearch", "--config", str(config)]) == 0
        first = capsys.readouterr().out.splitlines()
        assert main(["setup", "opensearch", "--config", str(config)]) == 0
        second = capsys.readouterr().out.splitlines()
        assert front.refused == []
    assert len(first) == 6 and all(line.endswith(": created") for line in first)
    assert len(second) == 6 and all(line.endswith(": unchanged") for line in second)


@pytest.fixture
def secured(ns: Namespace, certificate: ServerCertificate) -> Iterator[NodeFront]:
    ns.sink()
    accepted = {"Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    with NodeFront(ns.url, tls=certificate.server_context(), accept=accepted) as running:
        yield running


def test_password_from_a_file_over_verified_tls(ns: Namespace, secured: NodeFront, certificate: ServerCertificate,
                                                tmp_path: Path, documents, caplog: pytest.LogCaptureFixture) -> None:
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    with caplog.at_level(logging.DEBUG):
        sink = ns.sink(setup=False, hosts=[secured.url], username=USER, password={"file": str(secret)},
                       ca_file=str(certificate.ca_file))
        assert sink.send(documents(story())).rejected == []
    assert ns.count() == 3 and secured.unauthenticated == 0
    assert PASSWORD not in caplog.text


def test_a_wrong_password_stops_the_sink(ns: Namespace, secured: NodeFront, certificate: ServerCertificate,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OS_PASSWORD", "wrong-password")
    with pytest.raises(SinkFatal, match="refused the credentials") as raised:
        ns.sink(setup=False, hosts=[secured.url], username=USER, password={"env": "TEST_OS_PASSWORD"},
                ca_file=str(certificate.ca_file))
    assert "wrong-password" not in str(raised.value) and secured.unauthenticated == 1


def test_tls_is_verified_by_default(ns: Namespace, secured: NodeFront, monkeypatch: pytest.MonkeyPatch,
                                    documents) -> None:
    monkeypatch.setenv("TEST_OS_PASSWORD", PASSWORD)
    login = {"username": USER, "password": {"env": "TEST_OS_PASSWORD"}}
    with pytest.raises(SinkFatal, match=r"the certificate of https://127\.0\.0\.1:\d+ did not verify .*give the CA .* in ca_file"):
        ns.sink(setup=False, hosts=[secured.url], **login)
    sink = ns.sink(setup=False, hosts=[secured.url], verify_tls=False, **login)
    assert sink.send(documents(story())).rejected == []
    assert secured.forwarded_bulk == 1


def test_what_the_client_quotes_of_the_login_is_masked(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A library error quoting the request's headers (the password as given, or base64 in the
    Authorization header) is masked before it is raised or logged; no node needed."""
    monkeypatch.setenv("TEST_OS_PASSWORD", PASSWORD)
    header = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    sink = Sink(OpenSearchSink(type="opensearch", hosts=["http://127.0.0.1:1"], username=USER,
                               password={"env": "TEST_OS_PASSWORD"}, check_templates=False, max_retries=1,
                               retry_initial_seconds=0.01, retry_max_seconds=0.01))

    def perform_request(*args: object, **kwargs: object) -> None:
        raise NoAnswer("N/A", f"header 'Authorization: {header}' refused; password {PASSWORD}", None)

    monkeypatch.setattr(sink.client.transport, "perform_request", perform_request)
    with caplog.at_level(logging.DEBUG), pytest.raises(SinkError) as raised:
        sink.send([Document({"eventID": "e-1", "eventTime": "2026-03-31T10:00:00Z"}, {}, "s3://bucket/key")])
    assert "***" in str(raised.value)
    for text in (str(raised.value), caplog.text):
        assert PASSWORD not in text and header.split()[1] not in text

