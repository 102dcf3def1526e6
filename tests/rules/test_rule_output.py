"""What `forwarder sigma convert` prints names every rule, Splunk's with the configured search
prefix, and `--format savedsearches` is exactly the alerts `forwarder sigma deploy splunk` creates."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml
from splunk_appinspect import configuration_parser
from splunk_appinspect.configuration_file import ConfigurationFile

from forwarder.cli import main
from forwarder.config import Config, load_config
from forwarder.rules.convert import BACKENDS, COMMENTS, NAMED_FORMATS, convert, formats, heading, render
from forwarder.rules.splunk_alerts import CONF_KEYS
from forwarder.rules.splunk_deploy import saved_searches

from paths import DEMO_CONFIG


def _conf(text: str) -> dict[str, dict[str, str]]:
    parsed = configuration_parser.parse(text, ConfigurationFile(), configuration_parser.configuration_lexer)
    assert not parsed.errors, parsed.errors
    return {section.name: {s.name: s.value for s in section.settings()} for section in parsed.sections()}


@pytest.mark.parametrize("target", sorted(BACKENDS))
def test_every_converted_output_names_its_rule(demo_rules: Path, target: str) -> None:
    for form in ("enriched", "raw"):
        for fmt in formats(target):
            conversion = convert(demo_rules / form, target, fmt)
            text = render(conversion)
            for result in conversion.results:
                rule = result.rule
                if fmt in NAMED_FORMATS:  # import files: each object carries the rule's title and id
                    assert str(rule.id) in text and rule.title in text, (target, fmt, rule.name)
                elif fmt == "savedsearches":
                    assert f"[AssumeRole - {rule.name}]" in text
                else:
                    assert heading(rule) in text, (target, fmt, rule.name)


def test_each_query_stands_under_its_heading_as_a_comment_of_its_language(demo_rules: Path) -> None:
    for target in sorted(BACKENDS):
        conversion = convert(demo_rules / "enriched", target)
        blocks = render(conversion).rstrip("\n").split("\n\n")
        assert len(blocks) == len(conversion.results)
        for block, result in zip(blocks, conversion.results):
            first, *query = block.split("\n")
            if result.threshold:  # a Kibana threshold rule: JSON, which has no comments
                assert first == f"# {heading(result.rule)}: a Kibana threshold rule (detection-engine import NDJSON)"
                continue
            assert first == COMMENTS.get(target, "# {}").format(heading(result.rule))
            expected = f"index=main sourcetype=aws:cloudtrail {result.outputs[0]}" if target == "splunk" else result.outputs[0]
            if isinstance(expected, dict):  # a JSON body (OpenSearch's monitor for a burst): on one line
                expected = orjson.dumps(expected, option=orjson.OPT_SORT_KEYS).decode()
            assert query == [line for line in expected.splitlines() if line.strip()]


def _config_with_splunk(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    data["detections"] = {"splunk": {"host": "splunk.example.com", "token": {"env": "UNUSED"},
                                     "search_prefix": "index=aws_security sourcetype=aws:cloudtrail",
                                     "cron_schedule": "*/5 * * * *", "lookback": "6h", "forms": ["enriched", "raw"]}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_splunk_queries_carry_the_configured_search_prefix(demo_rules: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = _config_with_splunk(tmp_path)
    assert main(["sigma", "convert", "--target", "splunk", "--config", str(config), str(demo_rules / "enriched")]) == 0
    blocks = capsys.readouterr().out.rstrip("\n").split("\n\n")
    assert blocks and all(block.split("\n")[1].startswith("index=aws_security sourcetype=aws:cloudtrail ")
                          for block in blocks)


def test_savedsearches_are_the_alerts_deploy_creates(demo_rules: Path, tmp_path: Path, demo_config: Config,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config_path = _config_with_splunk(tmp_path)
    printed: dict[str, dict[str, str]] = {}
    for form in ("enriched", "raw"):
        assert main(["sigma", "convert", "--target", "splunk", "--format", "savedsearches", "--config",
                     str(config_path), str(demo_rules / form)]) == 0
        printed |= _conf(capsys.readouterr().out)
    deployed = saved_searches(load_config(config_path))
    assert set(printed) == {search.name for search in deployed}
    for search in deployed:
        assert printed[search.name] == {CONF_KEYS.get(key, key): value for key, value in search.params.items()}
    burst = printed["AssumeRole - assumerole_failed_assumption_burst"]
    assert burst["cron_schedule"] == "*/5 * * * *" and burst["dispatch.earliest_time"] == "-6h"
    assert "\n| streamstats time_window=10m" in burst["search"]  # a multi-line search, kept across lines
