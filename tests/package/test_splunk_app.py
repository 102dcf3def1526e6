"""The Splunk app: Splunk's AppInspect passes it, its alerts are the Sigma rules as `sigma convert`
writes them, its props parse the real records, its CIM mapping leaves the Add-on's own alone."""

from __future__ import annotations

import gzip
import json
import sys
import re
import tarfile
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote

import orjson
import pytest
import yaml
from splunk_appinspect import configuration_parser
from splunk_appinspect.configuration_file import ConfigurationFile

from forwarder.catalogue import load_catalogue, parse_catalogue
from forwarder.cli import main
from forwarder.config import load_config
from forwarder.package import splunk_app
from forwarder.package.cli import report_path
from forwarder.package.panels import PANELS, panels
from forwarder.rules.convert import convert, generated_rules
from forwarder.rules.pipelines import field_names
from paths import DEMO_CONFIG, REPO

sys.path.insert(0, str(REPO / "tests" / "elasticsearch"))  # es_node.public_records: the samples, or a skip
# Kept after the run, beside the app: the report is the build's artefact.
ARTEFACTS = REPO / "build" / "package"
# The calculated fields (EVAL-) of sourcetype aws:cloudtrail in the Splunk Add-on for AWS 7.10.0
# (default/props.conf). A setting of the same name in this app would replace the Add-on's.
ADDON_EVALS = frozenset({
    "rule_action", "msg", "user_arn", "userName", "result", "vendor_account", "user", "user_name", "user_id",
    "user_type", "user_agent", "aws_account_id", "vendor_product", "dest", "object", "object_id", "dest_ip_range",
    "dest_port_range", "direction", "object_attrs", "object_path", "protocol", "protocol_code", "src_ip_range",
    "src_port_range", "authentication_method", "errorCode", "src_user", "src_user_name", "src_user_id",
    "src_user_role", "src_user_type", "user_role",
})
CIM_AUTHENTICATION = {"action", "app", "dest", "signature", "src", "src_user", "user", "user_role"}


@pytest.fixture(scope="module")
def package() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    assert main(["package", "splunk-app", "--config", str(DEMO_CONFIG), "--out", str(ARTEFACTS)]) == 0
    return next(ARTEFACTS.glob("cloudtrail_assumerole-*.tgz"))


@pytest.fixture(scope="module")
def files(package: Path) -> dict[str, str]:
    with tarfile.open(package) as archive:
        return {member.name: archive.extractfile(member).read().decode()  # type: ignore[union-attr]
                for member in archive.getmembers() if member.isfile()}


def conf(text: str) -> dict[str, dict[str, str]]:
    """A .conf file as Splunk reads it (AppInspect's own parser)."""
    parsed = configuration_parser.parse(text, ConfigurationFile(), configuration_parser.configuration_lexer)
    assert not parsed.errors, parsed.errors
    return {section.name: {setting.name: setting.value for setting in section.settings()} for section in parsed.sections()}


def app_file(files: dict[str, str], path: str) -> str:
    return files[f"{splunk_app.APP_ID}/{path}"]


def test_appinspect_passes_with_no_failure_and_no_error(package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from forwarder.package.cli import inspect

    assert inspect(package) == 0
    report = json.loads(report_path(package).read_text())
    summary = report["summary"]
    assert summary["failure"] == 0 and summary["error"] == 0, summary
    results = {check["name"]: check["result"] for rep in report["reports"] for group in rep["groups"]
               for check in group["checks"]}
    # The checks that read what the app holds ran on it (not "not applicable").
    for name in ("check_for_valid_package_id", "check_for_gratuitous_cron_scheduling", "check_simplexml_standards_version",
                 "check_kos_are_accessible"):
        assert results[name] in ("success", "warning"), (name, results[name])
    assert f"report {report_path(package)}" in capsys.readouterr().out


def test_the_package_is_an_installable_app_directory(package: Path, files: dict[str, str], tmp_path: Path) -> None:
    with tarfile.open(package) as archive:
        members = archive.getmembers()
    assert all(m.name.split("/")[0] == splunk_app.APP_ID for m in members)
    assert all(m.uid == 0 and m.mode in (0o644, 0o755) for m in members)
    app = conf(app_file(files, "default/app.conf"))
    assert app["package"]["id"] == app["id"]["name"] == splunk_app.APP_ID
    assert json.loads(app_file(files, "app.manifest"))["info"]["id"]["name"] == splunk_app.APP_ID
    again = splunk_app.build(load_config(DEMO_CONFIG), tmp_path)
    assert again.read_bytes() == package.read_bytes()  # reproducible


def test_each_alert_is_a_sigma_rule_as_sigma_convert_writes_it(files: dict[str, str], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    shipped = conf(app_file(files, "default/savedsearches.conf"))
    config = load_config(DEMO_CONFIG)
    with generated_rules(config) as rules:
        converted = convert(rules / "enriched", "splunk").results
        assert main(["sigma", "convert", "--target", "splunk", "--format", "savedsearches", str(rules / "enriched")]) == 0
    printed = conf(capsys.readouterr().out)
    assert set(shipped) == set(printed) == {f"AssumeRole - {c.rule.name}" for c in converted}
    for result in converted:
        name = f"AssumeRole - {result.rule.name}"
        alert, cli = shipped[name], printed[name]
        assert alert["search"] == f"`assumerole_events` {result.outputs[0].rstrip()}"
        assert cli["search"] == f"index=main sourcetype=aws:cloudtrail {result.outputs[0].rstrip()}"
        assert str(result.rule.id) in alert["description"]
        assert {k: v for k, v in alert.items() if not k.startswith(("search", "request."))} == {
            k: v for k, v in cli.items() if k != "search"}
        assert alert["enableSched"] == "1" and alert["counttype"] == "number of events" and alert["quantity"] == "0"


def test_macros_come_from_the_hec_sink(tmp_path: Path) -> None:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["sinks"] = [{"type": "splunk_hec", "url": "https://splunk.example.com:8088", "token": {"env": "T"},
                      "index": "aws_security", "sourcetype": "aws:cloudtrail:forwarder"}]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    built = splunk_app.app_files(load_config(path))
    macros = conf(built["default/macros.conf"])
    assert macros["assumerole_index"]["definition"] == 'index="aws_security"'
    assert macros["assumerole_sourcetype"]["definition"] == 'sourcetype="aws:cloudtrail:forwarder"'
    assert "aws:cloudtrail:forwarder" in conf(built["default/props.conf"])
    assert 'sourcetype="aws:cloudtrail:forwarder"' in conf(built["default/eventtypes.conf"])["assumerole_authentication"]["search"]


CLOUDTRAIL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _shipped_lines() -> list[bytes]:
    """The public CloudTrail samples, the demo story and a 150 KB call, as the forwarder ships them
    (select: all), one document per line as the NDJSON and HEC sinks write them."""
    from datetime import UTC

    from cloudtrail import call, enrich_objects, user
    from es_node import public_records

    from forwarder.config import parse_config

    objects = [records for _, records in public_records()]
    objects += [orjson.loads(gzip.decompress(p.read_bytes()))["Records"]
                for p in sorted((REPO / "forwarder" / "samples" / "demo").rglob("*.json.gz")) if "Digest" not in p.name]
    large = call(user("111111111111", "alice"), datetime(2026, 3, 31, 9, 0, tzinfo=UTC), "PutBucketPolicy")
    large["requestParameters"] = {"bucketName": "b", "bucketPolicy": {"Statement": ["s3:GetObject" * 14000]}}
    objects.append([large])
    return [doc.to_json() for doc in enrich_objects(objects, parse_config({"select": "all"})).documents]


def test_props_break_and_time_the_real_records(files: dict[str, str]) -> None:
    props = conf(app_file(files, "default/props.conf"))["aws:cloudtrail"]
    lines = _shipped_lines()
    stream = b"\n".join(lines) + b"\n"
    assert len([e for e in re.split(props["LINE_BREAKER"].encode(), stream) if e.strip()]) == len(lines)
    prefix = re.compile(props["TIME_PREFIX"].encode())
    lookahead = int(props["MAX_TIMESTAMP_LOOKAHEAD"])
    timed, exported = 0, []
    for line in lines:
        record = orjson.loads(line)
        if not CLOUDTRAIL_TIME.match(str(record.get("eventTime"))):
            exported.append(record.get("eventTime"))  # an exporter's copy: no eventTime, or its own format
            continue
        match = prefix.search(line)
        assert match, line[:200]
        parsed = datetime.strptime(line[match.end():match.end() + lookahead].decode(), props["TIME_FORMAT"])
        assert parsed.strftime("%Y-%m-%dT%H:%M:%SZ") == record["eventTime"]
        timed += 1
    assert timed > 3000 and len(exported) < 30, (timed, exported)
    assert 100_000 < max(len(line) for line in lines) < int(props["TRUNCATE"])
    assert props["TZ"] == "UTC" and props["KV_MODE"] == "json" and props["SHOULD_LINEMERGE"] == "false"


def test_cim_authentication_fields_from_catalogued_fields_without_replacing_the_addons(files: dict[str, str]) -> None:
    props = conf(app_file(files, "default/props.conf"))["aws:cloudtrail"]
    splunk_names = set(field_names("splunk").values())
    aliases = re.findall(r"(\S+) ASNEW (\S+)", props["FIELDALIAS-assumerole_cim_authentication"])
    assert all(source in splunk_names for source, _ in aliases), aliases
    evals = {key.removeprefix("EVAL-") for key in props if key.startswith("EVAL-")}
    assert not evals & ADDON_EVALS, "a calculated field of the Splunk Add-on for AWS would be replaced"
    assert {cim for _, cim in aliases} | evals >= CIM_AUTHENTICATION
    assert "'assumerole.failed'" in props["EVAL-action"]
    eventtypes = conf(app_file(files, "default/eventtypes.conf"))
    tags = conf(app_file(files, "default/tags.conf"))
    assert tags["eventtype=assumerole_authentication"]["authentication"] == "enabled"
    assert tags["eventtype=assumerole_privileged_authentication"]["privileged"] == "enabled"
    for stanza in eventtypes.values():
        for name in re.findall(r"\b(assumerole\.[\w.]+)=", stanza["search"]):
            assert name in splunk_names, name
    meta = conf(app_file(files, "metadata/default.meta"))
    assert all(meta[kind]["export"] == "system" for kind in ("props", "eventtypes", "tags", "macros"))


def test_every_dashboard_panel_has_catalogued_fields_and_drills_down_to_its_events(files: dict[str, str]) -> None:
    view = ET.fromstring(app_file(files, f"default/data/ui/views/{splunk_app.DASHBOARD}.xml"))
    assert view.get("version") == "1.1"
    shown = view.findall(".//panel")
    catalogued = {spec.name for spec in load_catalogue().fields}
    expected = panels()
    assert [p.findtext("title") for p in shown] == [p.title for p in expected]
    for element, panel in zip(shown, expected):
        assert panel.fields() <= catalogued
        query = element.findtext(".//query") or ""
        assert query.startswith("`assumerole_events` ")
        for name in panel.fields():
            assert splunk_app.spl_field(name) in query
        link = unquote(element.findtext(".//drilldown/link") or "")
        assert link.startswith("search?q=search `assumerole_events` ")
        for name, value in panel.where:
            assert splunk_app.spl_condition(name, value) in link
        tokens = re.findall(r"\$(click\.name2|row\.\w+)\|u\$", link)
        assert len(tokens) == len(panel.by if panel.chart != "timeline" else panel.by[:1])


def test_the_baseline_panel_appears_once_the_catalogue_has_its_fields() -> None:
    data = yaml.safe_load((REPO / "mappings" / "fields.yml").read_text())
    fields = data["groups"]["assumerole"]["fields"]
    without = [f for f in fields if not f["name"].startswith("assumerole.baseline.")]
    data["groups"]["assumerole"]["fields"] = without
    assert "baseline-findings" not in {p.key for p in panels(parse_catalogue(data))}
    data["groups"]["assumerole"]["fields"] = [*without, {"name": "assumerole.baseline.reasons", "type": "keyword",
                                                          "array": True}]
    assert {p.key for p in panels(parse_catalogue(data))} == {p.key for p in PANELS}


def test_a_panel_naming_an_uncatalogued_field_is_refused() -> None:
    from forwarder.catalogue import CatalogueError

    data = yaml.safe_load((REPO / "mappings" / "fields.yml").read_text())
    data["groups"]["assumerole"]["fields"] = [f for f in data["groups"]["assumerole"]["fields"]
                                              if f["name"] != "assumerole.caller.external"]
    with pytest.raises(CatalogueError, match="External callers.*assumerole.caller.external"):
        panels(parse_catalogue(data))


def test_inspect_says_when_appinspect_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from forwarder.package import cli

    monkeypatch.setattr(cli.shutil, "which", lambda *args, **kwargs: None)
    assert cli.inspect(tmp_path / "x.tgz") == 2
    assert "splunk-appinspect is not installed" in capsys.readouterr().err
