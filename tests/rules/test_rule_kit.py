"""The rule kit without servers: templates and generated rules validate, convert everywhere,
the pipelines match the catalogue, the SPL matches its reviewed golden text, nothing goes online."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from forwarder.config import Config, parse_config
from forwarder.rules import pipelines
from forwarder.rules.check import check
from forwarder.rules.convert import BACKENDS, convert, formats, render
from forwarder.rules.generate import TEMPLATES, GenerateError, generate

from test_rule_checks import rule

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """pySigma must take ATT&CK data from the local file: any download attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr("sigma.data.mitre_attack.urlopen", refuse)
    monkeypatch.setattr("sigma.data.mitre_d3fend.urlopen", refuse)


def test_templates_pass_the_validators() -> None:
    assert check(TEMPLATES) == []


def test_generated_rules_pass_the_validators(demo_rules: Path, scenario_rules: Path) -> None:
    assert check(demo_rules) == []
    assert check(scenario_rules) == []


@pytest.mark.parametrize("target", sorted(BACKENDS))
def test_every_rule_converts_in_every_format(demo_rules: Path, target: str) -> None:
    names = {p.stem for p in demo_rules.rglob("*.yml")}
    for fmt in formats(target):
        conversion = convert(demo_rules, target, fmt)
        assert render(conversion).strip()
        converted = {c.rule.name for c in conversion.results}
        # every file's rule (or its per-role variants) is there; the burst as correlation or threshold
        assert all(any(n.startswith(name) for n in converted) for name in names), (target, fmt)


def test_kibana_rules_carry_attack_threat_from_local_data(demo_rules: Path) -> None:
    rules = [out for c in convert(demo_rules / "enriched", "lucene", "siem_rule_ndjson").results for out in c.outputs]
    assert all(rule["threat"] for rule in rules)
    threshold = next(rule for rule in rules if rule["type"] == "threshold")
    assert threshold["threshold"] == {"field": ["assumerole.caller.arn"], "value": 6, "cardinality": []}
    assert (threshold["from"], threshold["interval"]) == ("now-600s", "300s")


def test_pipelines_match_the_catalogue() -> None:
    assert pipelines.drift() == [], "run: python -m forwarder.rules.pipelines"


def test_generation_follows_the_configuration(scenario_rules: Path) -> None:
    burst = (scenario_rules / "enriched" / "assumerole_failed_assumption_burst.yml").read_text()
    assert "timespan: 5m" in burst and "gte: 4" in burst
    chain = (scenario_rules / "enriched" / "assumerole_deep_or_sensitive_chain.yml").read_text()
    assert "assumerole.chain.depth|gt: 2" in chain
    enumeration = (scenario_rules / "raw" / "cloudtrail_trust_policy_enumeration_burst.yml").read_text()
    assert "timespan: 5m" in enumeration and "gte: 3" in enumeration
    root = (scenario_rules / "raw" / "cloudtrail_assume_root_unapproved.yml").read_text()
    assert "userIdentity.sessionContext.sessionIssuer.arn: arn:aws:iam::111122223333:role/RootTaskAdmin" in root
    again = generate(Config.model_validate(parse_config({}).model_dump()))
    assert any("roles.sensitive is empty" in reason for reason in again.skipped)


def test_per_role_rules_have_stable_distinct_ids(demo_config: Config) -> None:
    first, second = generate(demo_config), generate(demo_config)
    assert first.files == second.files
    text = first.files["raw/cloudtrail_sensitive_role_unapproved.yml"]
    assert text.count("\nid: ") + text.startswith("id: ") == 2


def test_no_approved_principals_drops_only_the_exception() -> None:
    config = parse_config({"roles": {"sensitive": [{"pattern": "arn:aws:iam::*:role/Admin"}]}})
    text = generate(config).files["raw/cloudtrail_sensitive_role_unapproved.yml"]
    assert "approved_caller" not in text and "condition: assumption and not failed and not account_only_copy\n" in text


def test_every_assume_root_alerts_without_approved_principals() -> None:
    text = generate(parse_config({})).files["raw/cloudtrail_assume_root_unapproved.yml"]
    assert "approved_caller" not in text and "approved_session" not in text and "condition: assume_root\n" in text


def test_splunk_matches_a_literal_star_by_regular_expression(tmp_path: Path) -> None:
    # SPL has no escape for "*": the backend's policy="*\"Action\":\"\*\"*" would match any action.
    rule(tmp_path, """  selection:
    eventName: GetFederationToken
    requestParameters.policy|contains: '"Action":"\\*"'
  narrow:
    requestParameters.policy|contains:
      - '"Action":"s3:\\*"'
      - '"Action":"s3:GetObject"'
  condition: selection and not narrow
""")
    spl = convert(tmp_path / "rules", "splunk").results[0].outputs[0]
    assert spl.splitlines() == [  # under OR, rex and eval; else regex (SPL unquotes \\ to \ for the regex)
        'eventName="GetFederationToken"',
        '| rex field=requestParameters.policy "(?<policyMatch>(?i)\\"Action\\":\\"s3:\\\\*\\")"',
        '| eval policyCondition=if(isnotnull(policyMatch), "true", "false")',
        '| search NOT (policyCondition="true" OR requestParameters.policy="*\\"Action\\":\\"s3:GetObject\\"*")',
        '| regex requestParameters.policy="(?i)\\"Action\\":\\"\\\\*\\""',
    ]
    lucene = convert(tmp_path / "rules", "lucene").results[0].outputs[0]  # Lucene escapes it
    assert 'requestParameters.policy:*\\"Action\\"\\:\\"\\*\\"*' in lucene


def test_character_classes_are_refused() -> None:
    config = parse_config({"roles": {"sensitive": [{"pattern": "arn:aws:iam::*:role/Admin[12]"}]}})
    with pytest.raises(GenerateError, match=r"roles.sensitive\[0\].pattern"):
        generate(config)


def test_spl_matches_the_reviewed_golden_text(demo_rules: Path) -> None:
    for form in ("enriched", "raw"):
        for converted in convert(demo_rules / form, "splunk").results:
            path = GOLDEN / f"{converted.rule.name}.spl"
            text = converted.outputs[0].rstrip("\n") + "\n"
            if os.environ.get("UPDATE_GOLDEN"):
                path.write_text(text)
            assert path.read_text() == text, f"{path.name} drifted; review and rerun with UPDATE_GOLDEN=1"
