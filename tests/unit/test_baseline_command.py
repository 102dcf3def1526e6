"""The baseline through the commands: `forwarder enrich` on a story where a session's credentials
are used from another network than they were issued to; a configured .mmdb file's countries and
autonomous systems on the documents and in Elasticsearch's ECS fields; `forwarder baseline build`
and `show`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cloudtrail import assume, call, issued_key, session_identity, user, write_log
from forwarder.cli import main
from forwarder.document import Document
from forwarder.sinks.es_document import to_es

ORG = "111111111111"
ROLE = f"arn:aws:iam::{ORG}:role/Deploy"
START = datetime(2026, 3, 31, 8, 0, tzinfo=UTC)
OFFICE, THIEF = "85.214.132.7", "175.45.176.3"


def _story(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Alice assumes Deploy at the office and works with the session; the key is then used from
    elsewhere, twice. Each in the file of its five minutes, as the trail delivers them."""
    issued = assume(user(ORG, "alice"), ROLE, START)
    issued["sourceIPAddress"] = OFFICE
    calls = []
    for minutes, ip in ((2, OFFICE), (9, THIEF), (11, THIEF)):
        used = call(session_identity(ROLE, issued_key(issued), issued["eventTime"]), START + timedelta(minutes=minutes))
        used["sourceIPAddress"] = ip
        calls.append(used)
    for number, records in enumerate(([issued, calls[0]], [calls[1]], [calls[2]])):
        write_log(root / "AWSLogs" / ORG / "CloudTrail" / "eu-central-1" / f"{ORG}_CloudTrail_{number}.json.gz", records)
    return issued, calls


def _enrich(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, dict[str, Any]]:
    assert main(["enrich", *args]) == 0
    return {doc["eventID"]: doc for doc in map(orjson.loads, capsys.readouterr().out.splitlines())}


def test_forwarder_enrich_flags_a_session_used_from_another_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    issued, (office, stolen, again) = _story(tmp_path / "trail")
    docs = _enrich(capsys, str(tmp_path / "trail"))
    session = docs[stolen["eventID"]]["assumerole"]["session"]
    assert session["new_network"] is True and session["unknown_issuance"] is False
    assert session["issued_from"] == {"ip": OFFICE, "network": "85.214.132.0/24", "country": "DE",
                                      "vpc_endpoint_id": None, "user_agent": "aws-cli"}
    assert session["reasons"] == [
        f"The session key {issued_key(issued)} of Deploy was issued on a call from 85.214.132.0/24 (DE) and is now "
        "used from 175.45.176.0/24 (KP): its first call from this network."]
    assert docs[stolen["eventID"]]["assumerole"]["source"] == {"network": "175.45.176.0/24", "country": "KP",
                                                               "as_number": None}
    for quiet in (office, again):  # from where it was issued; the same other network again
        assert docs[quiet["eventID"]]["assumerole"]["session"]["new_network"] is False
    assumption = docs[issued["eventID"]]["assumerole"]["baseline"]
    assert assumption["learning"] is True and assumption["new_pair"] is False  # one day: still learning


def _mmdb(path: Path, kind: str, networks: dict[str, dict[str, Any]]) -> Path:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=kind)
    for network, data in networks.items():
        writer.insert_network(IPSet([network]), data)
    writer.to_db_file(str(path))
    return path


def test_configured_mmdb_files_name_the_country_and_autonomous_system(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    issued, (_, stolen, _) = _story(tmp_path / "trail")
    country = _mmdb(tmp_path / "country.mmdb", "GeoLite2-Country", {
        "85.214.132.0/24": {"country": {"iso_code": "NL"}}, "175.45.176.0/24": {"country": {"iso_code": "FR"}}})
    asn = _mmdb(tmp_path / "asn.mmdb", "GeoLite2-ASN", {
        "85.214.0.0/16": {"autonomous_system_number": 6724}, "175.45.176.0/22": {"autonomous_system_number": 131279}})
    config = tmp_path / "forwarder.yaml"
    config.write_text(f"baseline:\n  mmdb: [{country}, {asn}]\n")
    docs = _enrich(capsys, "--config", str(config), str(tmp_path / "trail"))
    stolen_doc = docs[stolen["eventID"]]
    assert stolen_doc["assumerole"]["source"] == {"network": "175.45.176.0/24", "country": "FR", "as_number": 131279}
    assert stolen_doc["assumerole"]["session"]["issued_from"]["country"] == "NL"  # the file replaces the built-in
    assert "85.214.132.0/24 (AS6724, NL)" in stolen_doc["assumerole"]["session"]["reasons"][0]
    body = orjson.loads(to_es(Document({k: v for k, v in stolen_doc.items() if k != "assumerole"},
                                       stolen_doc["assumerole"], "test")).body)
    assert body["source"] == {"address": THIEF, "ip": THIEF, "geo": {"country_iso_code": "FR"}, "as": {"number": 131279}}


def test_an_mmdb_file_that_cannot_be_read_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    config = tmp_path / "forwarder.yaml"
    config.write_text(f"baseline:\n  mmdb: [{broken}]\n")
    _story(tmp_path / "trail")
    assert main(["enrich", "--config", str(config), str(tmp_path / "trail")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"forwarder: baseline.mmdb[0] {broken}: cannot be read as a MaxMind DB (.mmdb) file: ")
    assert len(error.splitlines()) == 1
    run = tmp_path / "run.yaml"  # `forwarder check-config` finds it before `forwarder run` would start
    run.write_text("source: {type: sqs, queue_url: 'https://sqs.eu-west-1.amazonaws.com/111111111111/q'}\n"
                   f"baseline:\n  mmdb: [{broken}]\n")
    assert main(["check-config", str(run)]) == 2
    assert f"  {run}: baseline.mmdb[0] {broken}: cannot be read as a MaxMind DB (.mmdb) file" in capsys.readouterr().err


def test_baseline_build_then_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _story(tmp_path / "trail")
    config = tmp_path / "forwarder.yaml"
    config.write_text(f"state: {{path: {tmp_path / 'state.db'}}}\n")
    assert main(["baseline", "build", "--config", str(config), str(tmp_path / "trail")]) == 0
    built = capsys.readouterr()
    assert built.out == "" and "3 files, 4 records read into sqlite state; 1 (subject, role) pairs known" in built.err
    alice = f"arn:aws:iam::{ORG}:user/alice"
    assert main(["baseline", "show", "--config", str(config), alice]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"{alice} as a subject\n  seen         2026-03-31T08:00:00Z .. 2026-03-31, on 1 days")
    assert "alice assuming Deploy" in shown and "  networks     85.214.132.0/24" in shown
    assert main(["baseline", "show", "--config", str(config), "--json", ROLE]) == 0
    role = orjson.loads(capsys.readouterr().out)
    assert role["subject"] is None and [s["value"] for s in role["role"]["subjects"]] == [alice]
    assert list(role["pairs"]) == [f"{alice}|{ROLE}"] and role["pairs"][f"{alice}|{ROLE}"]["daily_counts"] == {"2026-03-31": 1}
    assert main(["baseline", "show", "--config", str(config), "nobody"]) == 1
    assert "the baseline knows no subject or role of that name" in capsys.readouterr().err
