"""Which TLS failures stop a sink (a certificate that does not verify) and which are retried."""

import socket
import threading
from pathlib import Path

import pytest
import urllib3
from elastic_transport import TlsError
from servers.certificates import ServerCertificate, issue

from forwarder.sinks.tls import certificate_refused


def handshake_error(certificate: ServerCertificate | None) -> urllib3.exceptions.HTTPError:
    """What urllib3 raises against a server that shows a certificate of a CA the client does not
    know, or (``None``) hangs up in the middle of the handshake."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        if certificate is None:
            connection.close()
            return
        try:
            certificate.server_context().wrap_socket(connection, server_side=True).close()
        except OSError:  # the client refused the certificate: what the test expects
            pass

    threading.Thread(target=serve, daemon=True).start()
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", retries=False)
    try:
        pool.request("GET", f"https://127.0.0.1:{listener.getsockname()[1]}/")
    except urllib3.exceptions.HTTPError as exc:
        return exc
    finally:
        listener.close()
    raise AssertionError("the request should have failed")


def test_an_unverified_certificate_is_refused(tmp_path: Path) -> None:
    assert certificate_refused(handshake_error(issue(tmp_path)))


def test_a_hang_up_during_the_handshake_is_not() -> None:
    assert not certificate_refused(handshake_error(None))


@pytest.mark.parametrize(("message", "refused"), [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate (_ssl.c:1006)", True),
    ("[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)", False),
])
def test_elastic_transport_keeps_only_the_message(message: str, refused: bool) -> None:
    # Once its retries are done, elastic-transport's TlsError carries the reason in .message alone.
    assert certificate_refused(TlsError(message)) is refused
