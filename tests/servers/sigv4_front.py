"""Amazon OpenSearch Service's door in front of the test node: AWS Signature Version 4.

Every request must carry a SigV4 ``Authorization`` for the expected access key, region and service
(``es`` for OpenSearch Service, ``aoss`` for Serverless), a fresh ``X-Amz-Date``, the session
token when the credentials have one, and an ``X-Amz-Content-SHA256`` that is the body's. The
signature is computed again here with botocore (AWS's own SDK core) from the same credentials,
over what arrived: the method, the path, the query as AWS puts it in canonical form, the signed
headers and the body. Anything else is answered 403 with AWS's message, as the service does;
what passes goes to the node unchanged (NodeFront's relay).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import ssl
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from servers.es_front import NodeFront

AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
                           r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})")
MISMATCH = ("The request signature we calculated does not match the signature you provided. Check your AWS Secret "
            "Access Key and signing method. Consult the service documentation for details.")
SKEW = timedelta(minutes=15)


def canonical_query(query: str) -> str:
    """The query as SigV4 signs it: each name and value percent-encoded but for A-Z a-z 0-9 - _ . ~"""
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{quote(name, safe='-_.~')}={quote(value, safe='-_.~')}" for name, value in pairs)


class SigV4Front(NodeFront):
    """``credentials`` are the ones the client was given; ``signed`` counts the requests let through."""

    def __init__(self, upstream: str, credentials: Credentials, region: str, service: str,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(upstream, tls=tls)
        self.credentials = credentials
        self.region = region
        self.service = service
        self.signed = 0
        self.refused: list[str] = []

    def problem(self, method: str, target: str, headers: Any, body: bytes) -> str | None:
        """Why AWS would refuse the request, or None."""
        found = AUTHORIZATION.fullmatch(headers.get("Authorization") or "")
        if found is None:
            return "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters."
        if found["key"] != self.credentials.access_key:
            return "The security token included in the request is invalid."
        if (found["region"], found["service"]) != (self.region, self.service):
            return f"Credential should be scoped to a valid region and service ({self.region}, {self.service})."
        stamp = headers.get("X-Amz-Date") or ""
        try:
            when = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        if stamp[:8] != found["day"] or abs(datetime.now(UTC) - when) > SKEW:
            return "Signature expired or not yet valid."
        if headers.get("X-Amz-Content-SHA256") != hashlib.sha256(body).hexdigest():
            return "The provided 'x-amz-content-sha256' header does not match what was computed."
        if self.credentials.token and headers.get("X-Amz-Security-Token") != self.credentials.token:
            return "The security token included in the request is invalid."
        names = found["signed"].split(";")
        if not {"host", "x-amz-date", "x-amz-content-sha256"} <= set(names) or (
                self.credentials.token and "x-amz-security-token" not in names):
            return "The request must sign host, x-amz-date, x-amz-content-sha256 and the session token."
        parts = urlsplit(target)
        query = canonical_query(parts.query)
        request = AWSRequest(method=method, url=f"http://{headers['Host']}{parts.path}{'?' + query if query else ''}",
                             data=body, headers={name: headers[name] for name in names if name != "host"})
        request.context["timestamp"] = stamp
        signer = SigV4Auth(self.credentials, self.service, self.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != found["signed"] or not hmac.compare_digest(
                expected, found["signature"]):
            return MISMATCH
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        relay = super()._handler()
        front = self

        class Handler(relay):  # type: ignore[valid-type,misc]
            def _verified(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                problem = front.problem(self.command, self.path, self.headers, body)
                if problem is not None:
                    with front._lock:
                        front.refused.append(problem)
                    self._answer(403, [("Content-Type", "application/json")], json.dumps({"message": problem}).encode())
                    return
                with front._lock:
                    front.signed += 1
                connection, self.rfile = self.rfile, io.BytesIO(body)  # the relay reads the body again
                try:
                    self._relay()
                finally:
                    self.rfile = connection  # the next request on this connection comes from there

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _verified

        return Handler
