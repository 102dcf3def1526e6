"""`forwarder enrich` into the configured sinks: a downloaded trail into Splunk in one command."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from hec_setup import INDEX, TOKEN
from servers.hec_server import HecServer

from cloudtrail import assume, user, write_log
from paths import REPO

from forwarder.cli import main

DEMO = REPO / "forwarder" / "samples" / "demo"


def test_enrich_ships_the_demo_story_to_hec_and_dead_letters_what_it_refuses(
        hec: HecServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    monkeypatch.setenv("TEST_HEC_TOKEN", TOKEN)
    config = tmp_path / "forwarder.yaml"
    sink = {"type": "splunk_hec", "url": hec.url, "token": {"env": "TEST_HEC_TOKEN"}, "index": INDEX,
            "retry_initial_seconds": 0.01, "retry_max_seconds": 0.05}
    config.write_text(yaml.safe_dump({"sinks": [sink], "dead_letter": {"path": str(tmp_path / "dead-letter")}}))
    broken = write_log(tmp_path / "extra" / "broken.json", [])
    broken.write_bytes(b'{"Records": [' + orjson.dumps(assume(user("111111111111", "eve"), None, datetime.now(UTC)))
                       .replace(b'"durationSeconds":3600', b'"durationSeconds":1180591620717411303424') + b"]}")

    assert main(["enrich", "--config", str(config), str(DEMO), str(broken)]) == 1  # one record dead-lettered
    out, err = capsys.readouterr()
    assert out == ""  # nothing on standard output: the documents went to the sink
    assert main(["enrich", str(DEMO)]) == 0  # the same story to standard output, for comparison
    expected = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
    shipped = [event.event for event in hec.events(INDEX)]
    assert sorted(d["eventID"] for d in shipped) == sorted(d["eventID"] for d in expected)
    assert {d["eventID"]: d["assumerole"] for d in shipped} == {d["eventID"]: d["assumerole"] for d in expected}
    dead = (tmp_path / "dead-letter" / "documents.ndjson").read_bytes().splitlines()
    assert len(dead) == 1 and "64-bit" in orjson.loads(dead[0])["reason"]
    assert "1 dead-lettered" in err and str(broken) in err
