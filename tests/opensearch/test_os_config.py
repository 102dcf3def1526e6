"""The opensearch sink's configuration: what it refuses, in one line naming the key."""

from __future__ import annotations

import pytest

from forwarder.config import ConfigError, parse_config

BASE = {"type": "opensearch", "hosts": ["https://search.example.com:443"]}


@pytest.mark.parametrize(("sink", "message"), [
    ({"type": "opensearch"}, "sinks.0.opensearch: Value error, give 'hosts'"),
    ({**BASE, "aws_sigv4": {"region": "eu-west-1"}, "username": "u"}, "give either 'aws_sigv4' or 'username'"),
    ({**BASE, "aws_sigv4": {"service": "lambda"}}, "sinks.0.opensearch.aws_sigv4.service"),
    ({**BASE, "ism": {"delete_after": "90x"}}, "ism.delete_after: '90x' is not an age such as 90d, 12h or 30m"),
    ({**BASE, "ism": {"delete_after": "9d", "rollover_size": "5 GB"}}, "'5 GB' is not a size such as 50gb"),
    ({**BASE, "data_stream": "ct", "op_type": "index"}, "a data stream only takes op_type 'create'"),
    ({**BASE, "hosts": ["search.example.com:443"]}, "sinks.0.opensearch.hosts"),
])
def test_refused(sink: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"sinks": [sink]})
    assert message.replace("Value error, ", "") in str(raised.value)


def test_defaults() -> None:
    sink = parse_config({"sinks": [{**BASE, "aws_sigv4": {}, "ism": {"delete_after": "30d"}}]}).sinks[0]
    assert sink.verify_tls and sink.op_type == "create" and sink.index == "cloudtrail-assumerole-{%Y.%m.%d}"
    assert sink.aws_sigv4.service == "es" and sink.aws_sigv4.region is None  # type: ignore[union-attr]
    assert sink.ism.rollover_after == "1d" and sink.ism.rollover_size is None  # type: ignore[union-attr]
