"""Which region the boto3 clients get: creating a client calls nothing, so no network is needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from forwarder import aws
from forwarder.cli import main
from forwarder.config import ConfigError


@pytest.fixture(autouse=True)
def _no_region_from_the_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_aws_region_alone_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert aws.client("sqs").meta.region_name == "eu-west-3"


def test_aws_default_region_comes_before_aws_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert aws.client("sqs").meta.region_name == "ap-south-1"


def test_the_configured_region_comes_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert aws.client("sqs", "us-west-2").meta.region_name == "us-west-2"


def test_no_region_anywhere_is_a_configuration_error_naming_where_to_set_one() -> None:
    with pytest.raises(ConfigError) as caught:
        aws.client("sqs")
    message = str(caught.value)
    assert all(name in message for name in ("source.region", "AWS_REGION", "AWS_DEFAULT_REGION"))


def test_run_without_a_region_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "forwarder.yaml"
    config.write_text(
        "source: {type: sqs, queue_url: 'https://sqs.eu-west-1.amazonaws.com/111111111111/q'}\n"
        f"state: {{path: {tmp_path / 'state.db'}}}\n"
        f"dead_letter: {{path: {tmp_path / 'dead-letter'}}}\n"
        "metrics: {listen: null}\n"
    )
    assert main(["run", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "AWS_REGION" in err and "source.region" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
