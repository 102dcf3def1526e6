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
    ("sinks: [{path: out.ndjson}]", "sinks.0: 'type' is missing: give one of ndjson, elasticsearch or splunk_hec"),
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


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "select: all\n")
    assert main(["check-config", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("chains: {hold_back_seconds: -1}\n")
    assert main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "chains.hold_back_seconds" in err and "Traceback" not in err
