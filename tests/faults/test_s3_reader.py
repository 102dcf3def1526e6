"""The object reader (forwarder/sources/s3get.py, awscrt's S3 client) against moto, directly and
through the fault front: what it reads, how S3's refusals come out, a bucket in another region,
a proxy, a connection that stops answering."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from servers.s3_front import INTERNAL_ERROR, RESET, STALL, TRUNCATE, Fault, FaultFront

from forwarder.sources import s3get
from forwarder.sources.s3get import ObjectReader

KEYS = ["AWSLogs/111111111111/CloudTrail/us-east-1/2026/03/31/a.json.gz", "with space+plus=equals~tilde",
        "ünïcode/é.json.gz", "per%cent#hash?question", "double//slash"]


@pytest.fixture
def bucket(moto_url: str) -> Iterator[str]:
    name = f"reader-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=name)
    for key in KEYS:
        s3.put_object(Bucket=name, Key=key, Body=key.encode() * 50)
    yield name


def _authorization_region(headers: dict[str, str]) -> str:
    return headers["Authorization"].partition("Credential=")[2].split("/")[2]


def test_objects_read_byte_for_byte_whatever_their_key(bucket: str) -> None:
    reader = ObjectReader(None, None)
    for key in KEYS:
        assert reader.get(bucket, key) == key.encode() * 50


def test_s3_refusals_come_out_with_s3s_codes(bucket: str) -> None:
    reader = ObjectReader(None, None)
    with pytest.raises(ClientError) as missing_key:
        reader.get(bucket, "no/such/key")
    with pytest.raises(ClientError) as missing_bucket:
        reader.get(f"{bucket}-gone", "key")
    assert missing_key.value.response["Error"]["Code"] == "NoSuchKey"
    assert missing_bucket.value.response["Error"]["Code"] == "NoSuchBucket"


def test_transient_faults_pass_within_the_retries_and_the_rest_come_out(bucket: str, moto_url: str) -> None:
    key = KEYS[0]
    with FaultFront(moto_url) as front:
        reader = ObjectReader(None, front.url)
        front.plan(key, [RESET, TRUNCATE])
        assert reader.get(bucket, key) == key.encode() * 50
        front.plan(key, [INTERNAL_ERROR] * (s3get.RETRIES + 1))
        with pytest.raises(ClientError) as failing:
            reader.get(bucket, key)
        assert front.pending() == 0
    assert failing.value.response["Error"]["Code"] == "InternalError"  # as boto3 names it: transient


def test_a_bucket_in_another_region_is_read_there(bucket: str, moto_url: str) -> None:
    """S3 names the bucket's region in its refusal of a request signed for another one."""
    key = KEYS[0]
    wrong_region = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AuthorizationHeaderMalformed</Code>'
                    b"<Message>The authorization header is malformed; the region 'us-east-1' is wrong; "
                    b"expecting 'eu-west-1'</Message><Region>eu-west-1</Region><RequestId>R</RequestId></Error>")
    with FaultFront(moto_url) as front:
        reader = ObjectReader("us-east-1", front.url)
        front.plan(key, [Fault("answer", 400, wrong_region)])
        assert reader.get(bucket, key) == key.encode() * 50
        assert reader.get(bucket, KEYS[1]) == KEYS[1].encode() * 50
        signed = [_authorization_region(headers) for method, _, headers in front.requests if method == "GET"]
    assert signed == ["us-east-1", "eu-west-1", "eu-west-1"]


def test_through_a_proxy_the_objects_are_read_with_boto3(bucket: str, moto_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The CRT's Python binding takes no proxy: botocore's reading of HTTP_PROXY decides."""
    key = KEYS[0]
    with FaultFront(moto_url) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        proxy.plan(key, [INTERNAL_ERROR])
        assert ObjectReader(None, moto_url).get(bucket, key) == key.encode() * 50
        assert proxy.pending() == 0
        assert {path for _, path, _ in proxy.requests} == {f"{moto_url}/{bucket}/{key}"}
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert ObjectReader(None, moto_url).get(bucket, key) == key.encode() * 50
        assert len(proxy.requests) == 2  # the retry of the 500, and nothing since


def test_a_connection_that_stops_answering_is_given_up(bucket: str, moto_url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s3get, "READ_TIMEOUT_SECONDS", 1.0)
    with FaultFront(moto_url) as front:
        reader = ObjectReader(None, front.url)
        front.plan(KEYS[0], [STALL])
        with pytest.raises(ConnectionError, match="nothing from"):
            reader.get(bucket, KEYS[0])
        assert reader.get(bucket, KEYS[1]) == KEYS[1].encode() * 50
