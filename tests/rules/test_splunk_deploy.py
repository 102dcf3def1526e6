"""`forwarder sigma deploy splunk` against the saved-search REST test server, through splunk-sdk."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from forwarder.cli import main
from forwarder.rules.generate import TEMPLATES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "servers"))
from splunk_rest_server import SplunkRestServer  # noqa: E402


@pytest.fixture
def server() -> Iterator[SplunkRestServer]:
    srv = SplunkRestServer().start()
    yield srv
    srv.stop()


def _config(tmp_path: Path, server: SplunkRestServer, monkeypatch: pytest.MonkeyPatch, **auth: object) -> Path:
    monkeypatch.setenv("TEST_SPLUNK_PASSWORD", server.state.password)
    data = yaml.safe_load(Path("forwarder/samples/demo-config.yaml").read_text())
    data["detections"] = {"splunk": {"host": "127.0.0.1", "port": server.port, "scheme": "http",
                                     **(auth or {"username": "admin", "password": {"env": "TEST_SPLUNK_PASSWORD"}})}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_create_then_idempotent_then_update(tmp_path: Path, server: SplunkRestServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = _config(tmp_path, server, monkeypatch)
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path), "--dry-run"]) == 0
    assert server.state.searches == {}
    assert "would create 'AssumeRole - assumerole_sensitive_role_unapproved'" in capsys.readouterr().out

    assert main(["sigma", "deploy", "splunk", "--config", str(config_path)]) == 0
    searches = {name: content for (_, _, name), content in server.state.searches.items()}
    enriched = len(list((TEMPLATES / "enriched").glob("*.yml")))  # one search a file: the burst's is its correlation
    assert len(searches) == enriched
    burst = searches["AssumeRole - assumerole_failed_assumption_burst"]
    assert burst["search"].startswith("index=main sourcetype=aws:cloudtrail eventSource=")
    assert "streamstats time_window=10m" in burst["search"]
    assert burst["cron_schedule"] == "*/10 * * * *" and burst["alert.severity"] == "4"
    assert "87ef47fd-936a-441c-8c85-b3991894a334" in burst["description"]
    capsys.readouterr()

    posts = sum(1 for method, *_ in server.state.calls if method == "POST")
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path)]) == 0
    assert sum(1 for method, *_ in server.state.calls if method == "POST") == posts + 1  # only the login
    assert capsys.readouterr().out.count("unchanged") == enriched

    searches["AssumeRole - assumerole_human_role_after_hours"]["alert.severity"] = "1"  # edited by hand in Splunk
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path), "--dry-run"]) == 0
    assert "would update 'AssumeRole - assumerole_human_role_after_hours': alert.severity" in capsys.readouterr().out
    assert searches["AssumeRole - assumerole_human_role_after_hours"]["alert.severity"] == "1"
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path)]) == 0
    assert searches["AssumeRole - assumerole_human_role_after_hours"]["alert.severity"] == "3"


def test_token_auth_and_refusals(tmp_path: Path, server: SplunkRestServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_SPLUNK_TOKEN", "tok-123")
    server.state.tokens.add("tok-123")
    config_path = _config(tmp_path, server, monkeypatch, token={"env": "TEST_SPLUNK_TOKEN"})
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path)]) == 0
    assert not any(path == "/services/auth/login" for _, path, _ in server.state.calls)
    server.state.tokens.clear()
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path)]) == 1
    assert "not logged in" in capsys.readouterr().err


def test_bad_password_is_a_clear_error(tmp_path: Path, server: SplunkRestServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = _config(tmp_path, server, monkeypatch)
    server.state.password = "other"
    assert main(["sigma", "deploy", "splunk", "--config", str(config_path)]) == 1
    assert "login refused for user 'admin'" in capsys.readouterr().err


def test_server_is_strict(server: SplunkRestServer) -> None:
    from splunklib import binding, client

    service = client.connect(host="127.0.0.1", port=server.port, scheme="http", username="admin", password="changeme",
                             owner="nobody", app="search")
    service.saved_searches.create("x", search="index=main")
    with pytest.raises(binding.HTTPError) as conflict:
        service.saved_searches.create("x", search="index=main")
    assert conflict.value.status == 409
    with pytest.raises(binding.HTTPError) as unknown:
        service.saved_searches.create("y", search="index=main", bogus="1")
    assert unknown.value.status == 400
    with pytest.raises(KeyError):
        service.saved_searches["missing"]
