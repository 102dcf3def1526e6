"""GetObject through AWS's Common Runtime (awscrt's native S3 client): about a third of boto3's
CPU per small object (benchmarks/README.md, "A lean object read"). The CRT signs (SigV4),
retries 5xx, SlowDown, resets and bodies cut short with exponential backoff and jitter, and keeps the
connections; the request itself is one plain GET (a CloudTrail object is a few KB).

What botocore knows and the CRT does not is taken from botocore, once per bucket and region:
the credentials (the standard chain: environment, profile, web identity, IMDS, refreshed by
botocore), where a bucket's objects are (botocore's own endpoint rules: the region, FIPS and
dual-stack settings, path style for an IP address or a dotted bucket name, the endpoint_url
override) and the CA bundle (ca_bundle / AWS_CA_BUNDLE, else the one botocore ships). A
bucket in another region is followed as botocore does: S3's answer names the region, the
address is worked out again for it and the request made once more.

The CRT's Python binding has no proxy setting: where a proxy applies to a bucket's address
(HTTPS_PROXY / HTTP_PROXY, less NO_PROXY, as botocore reads them), its objects are read with
boto3. Failures come out as boto3's would (``ClientError`` with S3's code, ``ConnectionError``
for the network), so the caller tells them apart the same way.
"""

from __future__ import annotations

import os
import threading
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import botocore.session
from awscrt.auth import AwsCredentials, AwsCredentialsProvider, AwsSigningConfig
from awscrt.exceptions import AwsCrtError
from awscrt.http import HttpHeaders, HttpRequest
from awscrt.io import ClientBootstrap, ClientTlsContext, DefaultHostResolver, EventLoopGroup, TlsContextOptions
from awscrt.s3 import (S3Client, S3RequestTlsMode, S3RequestType, S3ResponseError, S3RetryConfig,
                       create_default_s3_signing_config)
from botocore.credentials import Credentials
from botocore.exceptions import ClientError, NoCredentialsError
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies

from forwarder import aws

# The CRT's retries past the first attempt: as many as boto3 makes here (forwarder/aws.py).
RETRIES = 5
CONNECT_TIMEOUT_MS = 10_000  # boto3's connect_timeout here
# A request that receives nothing for this long is abandoned (boto3's read_timeout here).
READ_TIMEOUT_SECONDS = 60.0
# S3's answers that the bucket is in another region than the one the request was signed for.
WRONG_REGION = frozenset({"PermanentRedirect", "TemporaryRedirect", "AuthorizationHeaderMalformed",
                          "IllegalLocationConstraintException", "301", "307"})
# S3's answers that the CRT retried until its retries ran out, by the CRT's name for them.
GAVE_UP = {"AWS_ERROR_S3_INTERNAL_ERROR": "InternalError", "AWS_ERROR_S3_SLOW_DOWN": "SlowDown",
           "AWS_ERROR_S3_REQUEST_TIMEOUT": "RequestTimeout", "AWS_ERROR_S3_REQUEST_TIME_TOO_SKEWED": "RequestTimeTooSkewed"}
_PROBE_KEY = "k"


@dataclass(frozen=True, slots=True)
class _Address:
    """Where a bucket's objects are: ``<host><prefix><key>``, signed for ``region``; through a
    proxy (so by boto3) or not."""
    tls: bool
    host: str
    prefix: str
    region: str
    proxied: bool


class _Captured(Exception):  # not an error: carries botocore's prepared request out of it
    def __init__(self, url: str, authorization: str) -> None:
        super().__init__(url)
        self.url = url
        self.authorization = authorization


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request.url, str(request.headers.get("Authorization", "")))


def _signed_region(authorization: str, default: str) -> str:
    # "AWS4-HMAC-SHA256 Credential=<key>/<date>/<region>/s3/aws4_request, ..."
    scope = authorization.partition("Credential=")[2].split(",", 1)[0].split("/")
    return scope[2] if len(scope) >= 5 else default


def _error(status: int, headers: list[tuple[str, str]], body: bytes | None) -> ClientError:
    """S3's error answer as botocore raises it: the code and message from its XML body."""
    code, message, region = str(status), "", ""
    if body:
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            message = body[:200].decode("utf-8", "replace")
        else:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
            region = root.findtext("Region") or ""
    header_map = {name.lower(): value for name, value in headers}
    metadata = {"HTTPStatusCode": status, "HTTPHeaders": header_map}
    error = {"Code": code, "Message": message or f"HTTP {status}"}
    if region or "x-amz-bucket-region" in header_map:
        error["Region"] = header_map.get("x-amz-bucket-region") or region
    return ClientError({"Error": error, "ResponseMetadata": metadata}, "GetObject")


class ObjectReader:
    """``get(bucket, key)``: the object's bytes. ``client`` is a boto3 S3 client of the same
    settings, for the other calls (listing) and for the buckets reached through a proxy."""

    def __init__(self, region: str | None, endpoint_url: str | None, pool: int = 10) -> None:
        self._core = botocore.session.get_session()
        self._session = boto3.Session(botocore_session=self._core)
        self._endpoint_url = endpoint_url
        self._pool = pool
        self.client = aws.client("s3", region, endpoint_url, pool=pool, session=self._session)
        self._credentials: Credentials | None = None  # found at the first read, as boto3 finds them
        self._provider = AwsCredentialsProvider.new_delegate(self._crt_credentials)
        self._lock = threading.Lock()
        self._addresses: dict[str, _Address] = {}
        self._probes: dict[str, Any] = {}  # region -> a boto3 client that only works out addresses
        self._signing: dict[str, AwsSigningConfig] = {}
        self._crt: dict[bool, S3Client] = {}  # by TLS on or off: that is a CRT client's own setting

    def get(self, bucket: str, key: str) -> bytes:
        address = self._addresses.get(bucket) or self._address(bucket, self.client.meta.region_name)
        try:
            return self._read(address, bucket, key)
        except ClientError as exc:
            error = exc.response["Error"]
            region = error.get("Region")
            if error["Code"] not in WRONG_REGION or not region or region == address.region:
                raise
        return self._read(self._address(bucket, region), bucket, key)

    def _read(self, address: _Address, bucket: str, key: str) -> bytes:
        if address.proxied:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        if self._credentials is None:
            self._credentials = self._session.get_credentials()
            if self._credentials is None:
                raise NoCredentialsError()
        chunks: list[bytes] = []
        progress = [time.monotonic()]

        def on_headers(**_: Any) -> None:
            progress[0] = time.monotonic()

        def on_body(chunk: Any, **_: Any) -> None:
            chunks.append(bytes(chunk))  # the CRT's buffer is only lent for the call
            progress[0] = time.monotonic()

        request = HttpRequest("GET", address.prefix + quote(key, safe="/~"), HttpHeaders([("Host", address.host)]))
        pending = self._crt_client(address.tls).make_request(
            type=S3RequestType.DEFAULT, operation_name="GetObject", request=request,
            signing_config=self._signing_config(address.region), on_headers=on_headers, on_body=on_body)
        while True:
            try:
                pending.finished_future.result(timeout=READ_TIMEOUT_SECONDS / 4)
                return b"".join(chunks)
            except TimeoutError:
                if time.monotonic() - progress[0] > READ_TIMEOUT_SECONDS:
                    pending.cancel()
                    raise ConnectionError(f"nothing from {address.host} for {READ_TIMEOUT_SECONDS:.0f} s") from None
            except S3ResponseError as exc:
                raise _error(exc.status_code, exc.headers or [], exc.body) from None
            except AwsCrtError as exc:
                if exc.name in GAVE_UP:
                    error = {"Code": GAVE_UP[exc.name], "Message": f"{exc.message} ({RETRIES} retries)"}
                    raise ClientError({"Error": error}, "GetObject") from None
                # no answer: refused, reset, cut short, and the retries used up
                raise ConnectionError(f"{exc.name}: {exc.message}") from None

    # -- what botocore knows --------------------------------------------------------------------

    def _address(self, bucket: str, region: str) -> _Address:
        """Where botocore itself would send a GetObject in ``bucket`` for ``region``: a request
        prepared and signed by a boto3 client, taken just before it would be sent."""
        with self._lock:
            probe = self._probes.get(region)
            if probe is None:
                probe = self._probes[region] = aws.client("s3", region, self._endpoint_url, session=self._session)
                probe.meta.events.register_first("before-send.s3.GetObject", _capture)
        try:
            probe.get_object(Bucket=bucket, Key=_PROBE_KEY)
            raise AssertionError("botocore sent the address probe")  # _capture raises before it can
        except _Captured as captured:
            url = urlsplit(captured.url)
            address = _Address(url.scheme == "https", url.netloc, url.path[: -len(_PROBE_KEY)],
                               _signed_region(captured.authorization, region),
                               url.scheme in get_environ_proxies(captured.url))
        self._addresses[bucket] = address
        return address

    def _crt_credentials(self) -> AwsCredentials:
        assert self._credentials is not None  # found before the first request
        frozen = self._credentials.get_frozen_credentials()  # botocore refreshes them when due
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token)

    def _signing_config(self, region: str) -> AwsSigningConfig:
        config = self._signing.get(region)
        if config is None:
            config = create_default_s3_signing_config(region=region, credential_provider=self._provider)
            self._signing[region] = config
        return config

    def _crt_client(self, tls: bool) -> S3Client:
        client = self._crt.get(tls)
        if client is None:
            with self._lock:
                client = self._crt.get(tls) or self._new_crt_client(tls)
                self._crt[tls] = client
        return client

    def _new_crt_client(self, tls: bool) -> S3Client:
        # One event-loop thread: the work per request is small, and the GIL serialises the rest.
        group = EventLoopGroup(1)
        bootstrap = ClientBootstrap(group, DefaultHostResolver(group))
        tls_options = None
        if tls:
            # The CA bundle botocore would use: ca_bundle / AWS_CA_BUNDLE, REQUESTS_CA_BUNDLE, its own.
            verify = self._core.get_config_variable("ca_bundle") or os.environ.get("REQUESTS_CA_BUNDLE", True)
            context = TlsContextOptions()
            context.override_default_trust_store_from_path(ca_filepath=get_cert_path(verify))
            tls_options = ClientTlsContext(context).new_connection_options()
        region = self.client.meta.region_name
        return S3Client(bootstrap=bootstrap, region=region, signing_config=self._signing_config(region),
                        tls_mode=S3RequestTlsMode.ENABLED if tls else S3RequestTlsMode.DISABLED,
                        tls_connection_options=tls_options, max_active_connections_override=self._pool,
                        retry_config=S3RetryConfig(max_retries=RETRIES), connect_timeout_ms=CONNECT_TIMEOUT_MS)
