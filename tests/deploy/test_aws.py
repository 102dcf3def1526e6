"""The AWS side: cfn-lint on the templates, parliament on the policy, and the policy's actions
against the boto3 operations the forwarder's code really calls."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import botocore.session
from botocore import xform_name
from cfnlint.decode import cfn_yaml
from artifacts import DEPLOY, tool
from paths import REPO

AWS = DEPLOY / "aws"
TEMPLATES = [AWS / "forwarder.yaml", AWS / "organization-discovery-role.yaml"]
POLICY = AWS / "forwarder-policy.json"

# Where an operation's IAM action is not "<service>:<OperationName>".
ACTION_OF = {
    "s3:ListObjectsV2": "s3:ListBucket",
    "s3:HeadObject": "s3:GetObject",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "sqs:SendMessageBatch": "sqs:SendMessage",
}
# Reading an SSE-KMS object makes S3 decrypt with the caller's permission: no kms call in code.
IMPLIED = {"s3:GetObject": {"kms:Decrypt"}}


def code_actions() -> dict[str, set[str]]:
    """IAM action -> the files whose boto3 calls need it: every ``client("service")`` in the
    package, then every operation (method call, paginator or operation name in a string) of
    those services that the code names."""
    sources = {path: path.read_text() for path in sorted((REPO / "forwarder").rglob("*.py"))}
    services = {name for text in sources.values() for name in re.findall(r"client\(\s*[\"']([a-z0-9-]+)[\"']", text)}
    assert {"sqs", "s3"} <= services, f"found clients {services}: the search for client(...) calls is broken"
    session = botocore.session.get_session()
    found: dict[str, set[str]] = {}
    for service in sorted(services):
        model = session.get_service_model(service)
        prefix = model.signing_name or model.endpoint_prefix
        operations = {xform_name(name): name for name in model.operation_names}
        for path, text in sources.items():
            named = set(re.findall(r"\.([a-z0-9_]+)\(", text)) | set(re.findall(r"[\"']([a-z0-9_]+)[\"']", text))
            for python_name in named & operations.keys():
                action = f"{prefix}:{operations[python_name]}"
                action = ACTION_OF.get(action, action)
                for needed in {action} | IMPLIED.get(action, set()):
                    found.setdefault(needed, set()).add(str(path.relative_to(REPO)))
    return found


def policy_actions(document: dict[str, Any]) -> dict[str, list[str]]:
    return {statement["Sid"]: list(statement["Action"]) for statement in document["Statement"]}


def template_policy() -> dict[str, Any]:
    template = cfn_yaml.load(str(AWS / "forwarder.yaml"))
    document = template["Resources"]["ForwarderPolicy"]["Properties"]["PolicyDocument"]
    statements = []
    for statement in document["Statement"]:
        if "Fn::If" in statement:  # present under a condition: take the statement itself
            statement = statement["Fn::If"][1]
        statements.append(statement)
    return {"Statement": statements}


def test_templates_pass_cfn_lint() -> None:
    result = subprocess.run([tool("cfn-lint"), *map(str, TEMPLATES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_finds_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text((AWS / "forwarder.yaml").read_text().replace("Type: AWS::SQS::Queue", "Type: AWS::SQS::Queu", 1))
    result = subprocess.run([tool("cfn-lint"), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0 and "AWS::SQS::Queu" in result.stdout


def parliament(policy: str, *options: str) -> list[dict[str, Any]]:
    # --string, not --file: parliament refuses --file whenever standard input is not a terminal.
    result = subprocess.run([tool("parliament"), "--json", *options, "--string", policy],
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert result.returncode in (0, 1), result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def test_policy_passes_parliament() -> None:
    assert parliament(POLICY.read_text(), "--minimum_severity", "LOW") == []


def test_policy_community_auditors_flag_only_the_discovery_role() -> None:
    # sts:AssumeRole returns credentials by design: the one role of organization discovery.
    findings = parliament(POLICY.read_text(), "--include-community-auditors", "--minimum_severity", "LOW")
    assert [(f["issue"], f["location"].get("actions")) for f in findings] == [("CREDENTIALS_EXPOSURE", ["sts:assumerole"])]


def test_parliament_catches_a_bad_policy() -> None:
    bad = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bucket"}]}
    assert any(f["issue"] == "RESOURCE_MISMATCH" for f in parliament(json.dumps(bad)))


def test_policy_has_no_wildcards_and_scoped_resources() -> None:
    document = json.loads(POLICY.read_text())
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            assert "*" not in action and "?" not in action, f"{statement['Sid']}: wildcard action {action}"
        if statement["Resource"] == "*":
            # Organizations has no resource-level permission for ListAccounts.
            assert statement["Action"] == ["organizations:ListAccounts"], statement["Sid"]


def test_policy_actions_are_exactly_what_the_code_calls() -> None:
    used = code_actions()
    granted = {action for actions in policy_actions(json.loads(POLICY.read_text())).values() for action in actions}
    missing = {action: sorted(files) for action, files in used.items() if action not in granted}
    unused = granted - used.keys()
    assert not missing, f"the code calls these but the policy does not allow them: {missing}"
    assert not unused, f"the policy allows these but no code calls them: {sorted(unused)}"


def test_template_policy_is_the_json_policy() -> None:
    assert policy_actions(template_policy()) == policy_actions(json.loads(POLICY.read_text()))


def test_bucket_notification_filters_on_the_template_prefix() -> None:
    notification = json.loads((AWS / "bucket-notification.json").read_text())
    (queue,) = notification["QueueConfigurations"]
    assert queue["Events"] == ["s3:ObjectCreated:*"]
    rules = {rule["Name"]: rule["Value"] for rule in queue["Filter"]["Key"]["FilterRules"]}
    template = cfn_yaml.load(str(AWS / "forwarder.yaml"))
    # The template's prefix for a trail without its own prefix is what the shipped file filters on.
    assert template["Outputs"]["NotificationPrefix"]["Value"]["Fn::If"][2] == rules["prefix"]
