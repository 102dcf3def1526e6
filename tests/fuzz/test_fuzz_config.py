"""The configuration loader on any YAML: a Config or a ConfigError, nothing else.

A ConfigError is what every command turns into "forwarder: <file>: <what is wrong>" and exit
2; anything else is a traceback to the operator (and, under systemd, a restart loop)."""

from __future__ import annotations

import tempfile
from datetime import timezone
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from json_strategies import FUZZ, KEYS, ODD_NUMBERS, ODD_STRINGS, Raw, mutated, nested

from forwarder.config import Config, ConfigError, load_config, parse_config

# Every section, each with settings of its own, so that a change can land anywhere.
FULL: dict[str, Any] = {
    "organization": {"accounts": ["111111111111", "222222222222"], "approved_partners": ["444444444444"],
                     "discover": False, "refresh_seconds": 3600},
    "roles": {
        "sensitive": [{"pattern": "arn:aws:iam::*:role/BreakGlass", "approved_principals": ["arn:aws:iam::1:user/c"]}],
        "human": {"patterns": ["arn:aws:iam::*:role/Human*"],
                  "business_hours": {"timezone": "Europe/Berlin", "days": ["mon", "fri"], "start": "07:00",
                                     "end": 1200}},
    },
    "select": "sessions",
    "chains": {"hold_back_seconds": 900, "session_margin_seconds": 3600, "dedup_window_seconds": 3600,
               "account_lag_seconds": 86400},
    "detections": {"max_chain_depth": 3, "failed_assumptions": {"threshold": 5, "window_minutes": 10},
                   "splunk": {"host": "splunk.example.com", "port": 8089, "token": {"env": "SPLUNK_TOKEN"},
                              "forms": ["enriched", "raw"]}},
    "source": {"type": "sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/111111111111/trail",
               "region": "us-east-1", "wait_time_seconds": 20, "visibility_timeout_seconds": 300, "concurrency": 8,
               "max_object_bytes": 1 << 30},
    "state": {"type": "redis", "url": "redis://127.0.0.1:6379/0", "password": {"file": "/run/secrets/redis"},
              "claim_lease_seconds": 120},
    "sinks": [
        {"type": "ndjson", "path": "-"},
        {"type": "elasticsearch", "hosts": ["https://es:9200"], "api_key": {"env": "ES_API_KEY"},
         "index": "cloudtrail-assumerole-{%Y.%m.%d}", "batch_max_docs": 1000, "op_type": "create"},
        {"type": "splunk_hec", "url": "https://splunk:8088", "token": {"env": "HEC_TOKEN"}, "ack": True,
         "indexed_fields": ["assumerole.chain.origin_arn"], "ack_timeout_seconds": 300},
    ],
    "dead_letter": {"path": "/var/lib/forwarder/dead-letter"},
    "metrics": {"listen": "127.0.0.1:9108", "stale_after_seconds": 120},
    "logging": {"level": "INFO", "format": "json"},
}
S3_SOURCE = {"type": "s3", "bucket": "trail", "prefix": "org/", "accounts": ["111111111111"],
             "regions": ["us-east-1"], "poll_interval_seconds": 60, "lookback_minutes": 15}

# What safe_load can hand the loader besides JSON's values: dates and times, bytes (!!binary),
# sets (!!set), infinities and NaN (.inf, .nan), integers of any size (0x..., 0o..., 1_000).
yaml_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20),
    st.sampled_from(ODD_STRINGS), st.sampled_from([n for n in ODD_NUMBERS if not isinstance(n, Raw)]),
    st.builds(lambda size: "x" * size, st.integers(min_value=200, max_value=5000)),
    st.dates(), st.datetimes(), st.datetimes(timezones=st.just(timezone.utc)), st.binary(max_size=8),
    st.frozensets(st.integers(), max_size=3).map(set),
)
yaml_values = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8), st.integers()),
                                               children, max_size=4)),
    max_leaves=10,
)
templates = st.sampled_from([FULL, {**FULL, "source": S3_SOURCE}, {"source": S3_SOURCE}])
configs = templates.flatmap(lambda template: mutated(template, values=yaml_values))

# Text only YAML can write: tags, anchors and aliases, merge keys, directives, complex keys,
# timestamps that are no dates, numbers in other bases, tabs where YAML forbids them.
FRAGMENTS = [
    "source:", "  type: sqs", "  queue_url: q", "state:", "  type: sqlite", "sinks:", "  - type: ndjson",
    "select: all", "chains: {hold_back_seconds: 1e400}", "a: 2001-02-30", "a: 2026-13-01T25:00:00Z",
    "a: !!binary '@@@@'", "a: !!binary aGVsbG8=", "a: !!set {x, y}", "a: !!timestamp nope", "a: !!int x",
    "a: !!float x", "a: !!python/object:os.system ls", "a: !!str", "a: &x [1, *x]", "b: *undefined",
    "<<: {select: all}", "<<: [1, 2]", "? [a, b]\n: c", "? {a: 1}\n: c", "%YAML 9.9\n---", "--- !tag", "...",
    "a: 0x_ff", "a: 0o99", "a: 1_000_000", "a: .inf", "a: -.nan", "a:\t1", "\ta: 1", "a: 'unterminated",
    "a: \"\\ud800\"", "a: \"\\x00\"", "a: |\n  block", "a: >-\n folded", "- list at top", "a: {b: [c, {d: e}]}",
    "roles: {human: {business_hours: {start: 99999999999999999999999999}}}",
    "roles: {human: {business_hours: {start: -1, end: 24:00}}}", "metrics: {listen: '::::'}",
]
yaml_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=8).map("\n".join),
    configs.map(lambda config: yaml.safe_dump(config, allow_unicode=True)),
    st.builds(lambda depth: "a: " + nested(depth).token.decode(), st.integers(min_value=100, max_value=5000)),
)
# A file is bytes: an editor may have written it in another encoding.
yaml_files = st.one_of(
    yaml_texts.map(lambda text: text.encode("utf-8", "surrogatepass")),
    yaml_texts.map(lambda text: text.encode("utf-16", "surrogatepass")),
    st.binary(max_size=200),
)


def _parsed(call: Any, *args: Any) -> Config | None:
    try:
        config = call(*args)
    except ConfigError as exc:
        assert str(exc)
        return None
    assert isinstance(config, Config)
    return config


@FUZZ
@given(yaml_values)
def test_parse_config_takes_any_value(data: Any) -> None:
    _parsed(parse_config, data)


def _hours(**settings: Any) -> dict[str, Any]:
    return {**FULL, "roles": {"human": {"business_hours": settings}}}


@FUZZ
@given(configs)
# Found before: a zone name longer than a file name (OSError), a clock beyond C's long (OverflowError).
@example(_hours(timezone="Europe/" + "x" * 300))
@example(_hours(start=10**30))
def test_parse_config_with_any_setting_replaced(data: dict[str, Any]) -> None:
    _parsed(parse_config, data)


@FUZZ
@given(yaml_files)
# Found before: bytes that are not UTF-8; a YAML timestamp that is no date (ValueError from PyYAML).
@example(b"\xff\xfe")
@example(b"a: 2001-02-30")
def test_load_config_takes_any_file(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "forwarder.yaml"
        path.write_bytes(content)
        _parsed(load_config, path)


def test_the_templates_are_valid() -> None:
    """Unchanged, the templates load: the changes, not the starting point, make them invalid."""
    for template in (FULL, {**FULL, "source": S3_SOURCE}, {"source": S3_SOURCE}):
        assert _parsed(parse_config, template) is not None
