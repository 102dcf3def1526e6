"""`forwarder setup kibana` against the test server that answers as Kibana's import APIs do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from forwarder.cli import main
from forwarder.package import kibana
from paths import DEMO_CONFIG
from servers.certificates import issue
from servers.kibana_server import KibanaServer



@pytest.fixture
def server() -> Iterator[KibanaServer]:
    with KibanaServer() as srv:
        yield srv


def _config(tmp_path: Path, url: str, **kibana_settings: object) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["kibana"] = {"url": url, "api_key": {"env": "TEST_KIBANA_API_KEY"}, **kibana_settings}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _imports(server: KibanaServer) -> list[str]:
    return [path for method, path in server.state.calls if path.endswith("/_import")]


def test_imports_everything_then_a_second_run_changes_nothing(tmp_path: Path, server: KibanaServer,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_KIBANA_API_KEY", server.state.api_key)
    config = _config(tmp_path, server.url)
    assert main(["setup", "kibana", "--config", str(config), "--dry-run"]) == 0
    assert server.state.writes == 0 and not _imports(server)
    assert "would create" in capsys.readouterr().out

    assert main(["setup", "kibana", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    objects = {key[1:] for key in server.state.objects}
    assert (("index-pattern", kibana.DATA_VIEW_ID) in objects and ("dashboard", kibana.DASHBOARD_ID) in objects
            and len(objects) == out.count("saved object "))
    assert len(server.state.rules) == out.count("detection rule ") > 5
    assert _imports(server) == ["/api/saved_objects/_import", "/api/detection_engine/rules/_import"]
    writes, stored = server.state.writes, (dict(server.state.objects), dict(server.state.rules))

    assert main(["setup", "kibana", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert server.state.writes == writes and (server.state.objects, server.state.rules) == stored
    assert len(_imports(server)) == 2 and out.count(": unchanged") == len(out.splitlines())


def test_an_object_or_rule_changed_in_kibana_is_put_back_alone(tmp_path: Path, server: KibanaServer,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_KIBANA_API_KEY", server.state.api_key)
    config = _config(tmp_path, server.url)
    assert main(["setup", "kibana", "--config", str(config)]) == 0
    capsys.readouterr()
    key = ("default", "dashboard", kibana.DASHBOARD_ID)
    server.state.objects[key]["attributes"] = {**server.state.objects[key]["attributes"], "title": "edited"}
    rule_key = next(iter(server.state.rules))
    server.state.rules[rule_key] = {**server.state.rules[rule_key], "severity": "low"}
    writes = server.state.writes
    assert main(["setup", "kibana", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert f"saved object dashboard {kibana.DASHBOARD_ID}: update" in out
    assert out.count(": update") == 2 and server.state.writes == writes + 2
    assert server.state.objects[key]["attributes"]["title"] != "edited"
    assert server.state.rules[rule_key]["severity"] != "low"


def test_a_space_and_an_api_key_from_a_file(tmp_path: Path, server: KibanaServer) -> None:
    server.state.spaces.add("soc")
    key_file = tmp_path / "kibana-key"
    key_file.write_text(server.state.api_key + "\n")
    data = yaml.safe_load(_config(tmp_path, server.url, space="soc").read_text())
    data["kibana"]["api_key"] = {"file": str(key_file)}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert main(["setup", "kibana", "--config", str(tmp_path / "config.yaml")]) == 0
    assert {space for space, *_ in server.state.objects} == {"soc"}
    assert all(path.startswith("/s/soc/api/") for _, path in server.state.calls)


def test_a_refused_key_stops_without_showing_it(tmp_path: Path, server: KibanaServer, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_KIBANA_API_KEY", "not-the-key-42")
    assert main(["setup", "kibana", "--config", str(_config(tmp_path, server.url))]) == 3
    err = capsys.readouterr().err
    assert "refused the API key of kibana.api_key (401" in err and "not-the-key-42" not in err
    assert server.state.writes == 0


def test_an_unknown_space_and_no_kibana_section_are_one_line_each(tmp_path: Path, server: KibanaServer,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TEST_KIBANA_API_KEY", server.state.api_key)
    assert main(["setup", "kibana", "--config", str(_config(tmp_path, server.url, space="nope"))]) == 3
    assert f"kibana {server.url}: reading the saved objects answered 404" in capsys.readouterr().err
    assert main(["setup", "kibana", "--config", str(DEMO_CONFIG)]) == 3
    assert "no kibana section" in capsys.readouterr().err
    assert main(["setup", "kibana", "--config", str(_config(tmp_path, server.url, space="Not A Space"))]) == 2
    assert "is not a Kibana space id" in capsys.readouterr().err


def test_tls_is_verified_against_the_configured_ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    certificate = issue(tmp_path)
    with KibanaServer(certificate) as server:
        monkeypatch.setenv("TEST_KIBANA_API_KEY", server.state.api_key)
        assert main(["setup", "kibana", "--config", str(_config(tmp_path, server.url))]) == 3
        assert "does not verify" in capsys.readouterr().err and server.state.writes == 0
        assert main(["setup", "kibana", "--config", str(_config(tmp_path, server.url, ca_file=str(certificate.ca_file)))]) == 0
        assert server.state.writes > 0


def test_the_server_is_as_strict_as_kibana(server: KibanaServer) -> None:
    auth = {"Authorization": f"ApiKey {server.state.api_key}"}
    objects = kibana.saved_objects(kibana.KibanaContent())
    upload = {"file": ("pack.ndjson", kibana.saved_objects_file(objects), "application/ndjson")}
    no_xsrf = requests.post(f"{server.url}/api/saved_objects/_import", headers=auth, files=upload, timeout=10)
    assert no_xsrf.status_code == 400 and "kbn-xsrf" in no_xsrf.json()["message"]
    headers = {**auth, "kbn-xsrf": "true"}
    wrong_name = requests.post(f"{server.url}/api/saved_objects/_import", headers=headers, timeout=10,
                               files={"file": ("pack.json", b"{}", "application/json")})
    assert wrong_name.status_code == 400 and "Invalid file extension" in wrong_name.json()["message"]
    orphan = requests.post(f"{server.url}/api/saved_objects/_import", headers=headers, timeout=10,
                           files={"file": ("pack.ndjson", kibana.saved_objects_file([o for o in objects if o["type"] == "lens"]),
                                           "application/ndjson")})
    assert {e["error"]["type"] for e in orphan.json()["errors"]} == {"missing_references"}
    assert requests.post(f"{server.url}/api/saved_objects/_import", headers=headers, files=upload,
                         timeout=10).json()["success"]
    again = requests.post(f"{server.url}/api/saved_objects/_import", headers=headers, files=upload, timeout=10).json()
    assert {e["error"]["type"] for e in again["errors"]} == {"conflict"}  # without overwrite
    rule = {"rule_id": "x", "name": "x", "description": "x", "risk_score": 101, "severity": "high", "type": "query"}
    bad = requests.post(f"{server.url}/api/detection_engine/rules/_import", headers=headers, timeout=10,
                        files={"file": ("r.ndjson", kibana.rules_file([rule]), "application/ndjson")}).json()
    assert not bad["success"] and "risk_score" in bad["errors"][0]["error"]["message"]


def test_refusals_of_an_import_name_what_was_refused(tmp_path: Path, server: KibanaServer,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    import servers.kibana_server as fake

    monkeypatch.setenv("TEST_KIBANA_API_KEY", server.state.api_key)
    config = str(_config(tmp_path, server.url))
    monkeypatch.setattr(fake, "RULE_TYPES", {"query": ("query", "language")})  # a Kibana without threshold rules
    assert main(["setup", "kibana", "--config", config]) == 3
    err = capsys.readouterr().err
    assert "the detection rule import failed: 87ef47fd-936a-441c-8c85-b3991894a334: type: Invalid discriminator" in err
    monkeypatch.setattr(fake, "MAX_IMPORT_BYTES", 1000)  # savedObjects.maxImportPayloadBytes
    server.state.objects.clear()
    assert main(["setup", "kibana", "--config", config]) == 3
    assert "/api/saved_objects/_import answered 413: Payload content length greater than maximum allowed" in capsys.readouterr().err


def test_a_kibana_that_cannot_be_reached_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from servers.ports import free_port

    monkeypatch.setenv("TEST_KIBANA_API_KEY", "k")
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["setup", "kibana", "--config", str(_config(tmp_path, url))]) == 3
    assert capsys.readouterr().err == f"forwarder: kibana {url}: cannot be reached: ConnectionError\n"


def test_check_config_does_not_ask_a_daemon_host_for_the_kibana_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("TEST_KIBANA_API_KEY", raising=False)
    config = _config(tmp_path, "https://kibana.example.com:5601")
    main(["check-config", str(config)])
    out = capsys.readouterr()
    assert "kibana" not in out.out + out.err and "TEST_KIBANA_API_KEY" not in out.out + out.err
    assert main(["setup", "kibana", "--config", str(config)]) == 2  # the command that needs it says so
    assert "environment variable TEST_KIBANA_API_KEY (named for a secret) is not set" in capsys.readouterr().err
