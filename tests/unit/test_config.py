import re
from pathlib import Path

import pytest

from forwarder.cli import main
from forwarder.config import ConfigError, SecretRef, load_config, parse_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forwarder.yaml"
    path.write_text(text)
    return path


def test_schema_keys_load(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """
organization:
  accounts: ["111111111111", "222222222222"]
  approved_partners: ["444444444444"]
roles:
  sensitive:
    - pattern: "arn:aws:iam::*:role/BreakGlassAdministrator"
      approved_principals: ["arn:aws:iam::111111111111:user/carol"]
  human:
    patterns: ["arn:aws:iam::*:role/Human*"]
    business_hours: {timezone: "Europe/Berlin", days: [mon, tue, wed, thu, fri], start: "07:00", end: "20:00"}
""",
        )
    )
    assert config.organization.accounts == ["111111111111", "222222222222"]
    assert config.roles.human.business_hours.start.hour == 7
    assert config.roles.sensitive[0].approved_principals == ["arn:aws:iam::111111111111:user/carol"]


def test_unquoted_clock_time_is_read_as_a_time(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "roles: {human: {business_hours: {start: 07:30, end: 18:00}}}\n"))
    assert (config.roles.human.business_hours.start.hour, config.roles.human.business_hours.start.minute) == (7, 30)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("organization: {accounts: ['12345']}", "organization.accounts"),
        ("roles: {human: {business_hours: {timezone: Mars/Olympus}}}", "roles.human.business_hours.timezone"),
        ("sinks: [{type: splunk_hec, url: 'https://h:8088', token: 'abc'}]", "sinks.0.splunk_hec.token"),
        ("sinks: [{type: kafka}]", "sinks.0"),
        ("organisation: {}", "organisation"),
        ("select: everything", "select"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, named: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert str(path) in message and named in message


@pytest.mark.parametrize(("text", "expected"), [
    ("sinks: [{path: out.ndjson}]", "sinks.0: 'type' is missing: give one of ndjson, elasticsearch, opensearch or splunk_hec"),
    ("source: {queue_url: 'https://sqs.eu-west-1.amazonaws.com/111111111111/q'}",
     "source: 'type' is missing: give one of files, sqs or s3"),
])
def test_a_missing_kind_names_the_kinds_to_choose_from(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(write(tmp_path, text))


def test_state_without_a_type_is_the_default_sqlite_store(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "state: {path: /var/lib/forwarder/state.db}"))
    assert (config.state.type, str(config.state.path)) == ("sqlite", "/var/lib/forwarder/state.db")


def test_inline_secret_is_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never written in the configuration"):
        load_config(write(tmp_path, "sinks: [{type: splunk_hec, url: 'https://h:8088', token: 's3cr3t'}]"))


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML at line 2"):
        load_config(write(tmp_path, "a: 1\n  b: 2\n"))


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEC_TOKEN", "from-env")
    secret_file = tmp_path / "token"
    secret_file.write_text("from-file\n")
    assert SecretRef(env="HEC_TOKEN").get() == "from-env"
    assert SecretRef(file=secret_file).get() == "from-file"
    with pytest.raises(ConfigError, match="NOPE .*is not set"):
        SecretRef(env="NOPE").get()
    assert "from-env" not in repr(SecretRef(env="HEC_TOKEN"))


def test_empty_document_gives_defaults() -> None:
    config = parse_config(None)
    assert config.select == "sessions" and config.sinks[0].type == "ndjson"


SQS = "source: {type: sqs, queue_url: 'https://sqs.eu-west-1.amazonaws.com/111111111111/q'}\n"


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, SQS + "select: all\n")
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and len(out.splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("chains: {hold_back_seconds: -1}\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "chains.hold_back_seconds" in err and "Traceback" not in err


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, SQS + "select: all\nsource: {type: s3, bucket: trail}\n")
    with pytest.raises(ConfigError, match=r"key 'source' is given twice, at line 1 and line 3"):
        load_config(path)
    assert main(["enrich", "--config", str(path), str(tmp_path)]) == 2  # every command, not only check-config
    assert "'source' is given twice" in capsys.readouterr().err


def test_a_nested_key_given_twice_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'hold_back_seconds' is given twice, at line 2 and line 3"):
        load_config(write(tmp_path, "chains:\n  hold_back_seconds: 1\n  hold_back_seconds: 2\n"))


def test_a_merge_key_may_be_overridden(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "sinks:\n  - &out {type: ndjson, path: a.ndjson}\n  - {<<: *out, path: b.ndjson}\n"))
    assert [sink.path for sink in config.sinks] == ["a.ndjson", "b.ndjson"]


def test_an_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["organization:", "  approved_partners: &a0 ['444444444444', '444444444444', '444444444444']"]
    lines += [f"  x{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]  # 3 * 10**9 values
    with pytest.raises(ConfigError, match=r"aliases .* expand the document beyond"):
        load_config(write(tmp_path, "\n".join(lines) + "\n"))


def test_an_alias_inside_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"contains an alias of itself"):
        load_config(write(tmp_path, "organization: {accounts: &a [*a]}\n"))


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "forwarder.yaml"
    path.write_bytes("select: all\n".encode("utf-16"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text"):
        load_config(path)


@pytest.mark.parametrize(("text", "key"), [
    ("sinks: [{type: elasticsearch, hosts: [es.example.com:9200]}]", "sinks.0.elasticsearch.hosts"),
    ("sinks: [{type: splunk_hec, url: 'splunk:8088', token: {env: T}}]", "sinks.0.splunk_hec.url"),
    ("sinks: [{type: splunk_hec, url: 'https://h:99999', token: {env: T}}]", "sinks.0.splunk_hec.url"),
    ("source: {type: sqs, queue_url: 'q', region: eu-west-1}", "source.sqs.queue_url"),
    ("source: {type: s3, bucket: b, endpoint_url: 'localhost:4566'}", "source.s3.endpoint_url"),
    ("state: {type: redis, url: 'localhost:6379'}", "state.redis.url"),
])
def test_addresses_must_be_urls(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(write(tmp_path, text))


@pytest.mark.parametrize("text", [
    "sinks: [{type: elasticsearch, hosts: ['https://elastic:hunter2-secret@es:9200']}]",
    "state: {type: redis, url: 'redis://:hunter2-secret@redis:6379/0'}",
])
def test_a_password_inside_a_url_is_refused_without_repeating_it(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match="password") as caught:
        load_config(write(tmp_path, text))
    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize("value", ["line one\nline two", "tab\tinside", "bell\x07inside", "carriage\rreturn"])
def test_a_secret_with_a_newline_or_control_character_is_refused_without_its_value(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str) -> None:
    monkeypatch.setenv("TEST_SECRET", value)
    secret_file = tmp_path / "secret"
    secret_file.write_text(value + "\n")
    for ref, where in ((SecretRef(env="TEST_SECRET"), "TEST_SECRET"), (SecretRef(file=secret_file), str(secret_file))):
        with pytest.raises(ConfigError) as caught:
            ref.get()
        message = str(caught.value)
        assert where in message and ("newline" in message or "control character" in message)
        assert not any(part in message for part in ("line one", "line two", "tab", "bell", "carriage", "return"))


def test_a_file_secret_loses_one_trailing_newline_only(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("value\n")
    assert SecretRef(file=secret_file).get() == "value"
    secret_file.write_text("value\n\n")
    with pytest.raises(ConfigError, match="newline"):
        SecretRef(file=secret_file).get()
    secret_file.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        SecretRef(file=secret_file).get()


def check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str) -> tuple[int, str]:
    code = main(["check-config", str(write(tmp_path, text))])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err


def test_check_config_refuses_a_source_run_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for text in ("select: all\n", "source: {type: files}\n"):
        code, output = check_config(tmp_path, capsys, text)
        assert code == 2 and "source: type files" in output and "forwarder enrich" in output


def test_check_config_finds_every_unusable_secret_without_showing_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TEST_UNSET", raising=False)
    monkeypatch.setenv("TEST_TWO_LINES", "secret-one\nsecret-two")
    code, output = check_config(tmp_path, capsys, SQS + f"""
state: {{type: redis, password: {{file: {tmp_path / 'missing'}}}}}
sinks:
  - {{type: splunk_hec, url: 'https://splunk:8088', token: {{env: TEST_UNSET}}}}
  - {{type: elasticsearch, hosts: ['https://es:9200'], username: u, password: {{file: {tmp_path}}}}}
  - {{type: elasticsearch, hosts: ['https://es:9200'], api_key: {{env: TEST_TWO_LINES}}}}
""")
    assert code == 2
    problems = [line for line in output.splitlines() if line.startswith("  ")]
    assert len(problems) == 4
    for key, what in (("state.password", "missing"), ("sinks.0.token", "TEST_UNSET"),
                      ("sinks.1.password", str(tmp_path)), ("sinks.2.api_key", "TEST_TWO_LINES")):
        assert any(f": {key}: " in line and what in line for line in problems), (key, problems)
    assert "secret-one" not in output and "secret-two" not in output


def test_check_config_looks_at_the_sinks_files_and_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    not_pem = tmp_path / "not-a-certificate.pem"
    not_pem.write_text("hello\n")
    code, output = check_config(tmp_path, capsys, SQS + f"""
sinks:
  - {{type: ndjson, path: {tmp_path / 'no-such-directory' / 'out.ndjson'}}}
  - {{type: splunk_hec, url: 'https://splunk:8088', token: {{file: {not_pem}}}, ca_file: {tmp_path / 'missing.pem'}}}
  - {{type: elasticsearch, hosts: ['https://es:9200'], ca_file: {not_pem}, index: 'ct-{{%Y'}}
""")
    assert code == 2
    for expected in ("sinks.0.path: ", "no-such-directory does not exist", "sinks.1.ca_file: ", "missing.pem",
                     "sinks.2.ca_file: ", "no PEM certificate", "sinks.2.index: ", "unclosed"):
        assert expected in output, expected


def test_check_config_passes_what_run_can_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_HEC_TOKEN", "0f3c9a52-ok")
    token = tmp_path / "es-api-key"
    token.write_text("c2VjcmV0\n")
    code, output = check_config(tmp_path, capsys, SQS + f"""
metrics: {{listen: '0.0.0.0:9108'}}
sinks:
  - {{type: ndjson, path: {tmp_path / 'out.ndjson'}}}
  - {{type: splunk_hec, url: 'https://splunk:8088', token: {{env: TEST_HEC_TOKEN}}}}
  - {{type: elasticsearch, hosts: ['https://es:9200'], api_key: {{file: {token}}}}}
""")
    assert (code, output.count("\n")) == (0, 1) and "valid" in output
    assert "0f3c9a52-ok" not in output and "c2VjcmV0" not in output


def test_a_claim_lease_must_end_before_the_queue_hands_a_message_out_again() -> None:
    from forwarder.config import ConfigError, parse_config

    source = {"type": "sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/111111111111/q",
              "visibility_timeout_seconds": 300}
    assert parse_config({"source": source, "state": {"type": "redis"}}).state.claim_lease_seconds == 120
    with pytest.raises(ConfigError, match="claim_lease_seconds .300. must be shorter than source.visibility_timeout"):
        parse_config({"source": source, "state": {"type": "redis", "claim_lease_seconds": 300}})
