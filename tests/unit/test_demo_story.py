"""The shipped story end to end, as `make demo` runs it: what a SOC must see in it."""

import contextlib
import io
from datetime import UTC, datetime

import orjson
import pytest

from forwarder.cli import main

ORG, DEV, PROD = "111111111111", "222222222222", "333333333333"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], str]:
    out = tmp_path_factory.mktemp("demo") / "enriched.ndjson"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(["demo", "--out", str(out)]) == 0
    return [orjson.loads(line) for line in out.read_bytes().splitlines()], buffer.getvalue()


def assumptions(docs: list[dict], role_name: str) -> list[dict]:
    return [d["assumerole"] for d in docs if d["assumerole"].get("role", {}).get("name") == role_name]


def test_each_event_once_and_the_digest_skipped(demo: tuple[list[dict], str]) -> None:
    docs, text = demo
    keys = [(d["eventID"], d["recipientAccountId"]) for d in docs]
    assert len(keys) == len(set(keys)) == 121
    assert "2 duplicate deliveries dropped" in text


def test_chain_through_three_accounts_read_children_first(demo: tuple[list[dict], str]) -> None:
    docs, _ = demo
    prod_calls = [
        d["assumerole"]
        for d in docs
        if "role" not in d["assumerole"] and d["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"].endswith("role/ReleaseManager")
    ]
    assert prod_calls
    for ar in prod_calls:
        assert ar["chain"]["origin"]["arn"] == f"arn:aws:iam::{ORG}:user/alice"
        assert ar["chain"]["depth"] == 3 and ar["chain"]["resolved"] is True
        assert [h.rsplit("/", 1)[1] for h in ar["chain"]["hops"]] == ["HumanDeveloper", "DeployRole", "ReleaseManager"]


def test_break_glass(demo: tuple[list[dict], str]) -> None:
    docs, _ = demo
    uses = [a for a in assumptions(docs, "BreakGlassAdministrator") if not a["failed"]]
    approved = {a["chain"]["origin"]["arn"]: a["caller"]["approved"] for a in uses}
    assert approved == {f"arn:aws:iam::{ORG}:user/carol": True, f"arn:aws:iam::{ORG}:user/bob": False}
    denied = [a for a in assumptions(docs, "BreakGlassAdministrator") if a["failed"]]
    assert len(denied) == 8 and {a["caller"]["arn"] for a in denied} == {f"arn:aws:iam::{ORG}:user/dave"}
    assert all(a["role"]["sensitive"] for a in denied)


def test_external_partner_and_after_hours(demo: tuple[list[dict], str]) -> None:
    docs, _ = demo
    vendor = assumptions(docs, "VendorIntegrationRole")[0]
    assert vendor["caller"]["external"] is True and vendor["chain"]["origin"]["account_id"] == "999999999999"
    partner = assumptions(docs, "PartnerReadOnly")[0]
    assert partner["caller"]["approved_partner"] is True and partner["caller"]["external"] is False
    saml = {a["caller"]["arn"]: a["after_hours"] for a in docs_of_type(docs, "SAMLUser")}
    assert saml == {"erin@example.com": True, "frank@example.com": False}  # 07:30 in Berlin, summer time


def docs_of_type(docs: list[dict], kind: str) -> list[dict]:
    return [d["assumerole"] for d in docs if d["assumerole"].get("caller", {}).get("type") == kind]


def test_service_linked_and_deep_chain_and_unlogged_parent(demo: tuple[list[dict], str]) -> None:
    docs, _ = demo
    linked = [d["assumerole"] for d in docs if d["assumerole"].get("role", {}).get("service_linked")]
    assert {a["caller"]["type"] for a in linked} == {"AWSService", "IAMUser"}
    audit = [a for a in assumptions(docs, "SecurityAudit") if a["chain"]["depth"] == 4]
    assert audit and audit[0]["chain"]["origin"]["arn"] == "lambda.amazonaws.com" and audit[0]["caller"]["approved"] is False
    legacy = [d["assumerole"] for d in docs if "LegacyBatchJob" in str(d["userIdentity"])]
    assert len(legacy) == 4 and not any(a["chain"]["resolved"] for a in legacy)


def test_summary_names_what_to_look_at_first(demo: tuple[list[dict], str]) -> None:
    _, text = demo
    for expected in (
        "8 failed role assumptions by arn:aws:iam::111111111111:user/dave",
        "sensitive role BreakGlassAdministrator assumed by a principal that is not approved",
        "origin: arn:aws:iam::111111111111:user/bob",
        "external account 999999999999",
        "human role HumanReadOnly assumed after hours",
        "service-linked role AWSServiceRoleForSupport assumed by IAMUser",
    ):
        assert expected in text


def leaf_paths(value: object, prefix: str) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(leaf_paths(v, f"{prefix}.{k}") for k, v in value.items())) if value else {prefix}
    return {prefix}


def test_every_enriched_field_is_in_the_catalogue(demo: tuple[list[dict], str]) -> None:
    from cloudtrail import assume, enrich_objects, user
    from forwarder.catalogue import load_catalogue

    docs, _ = demo
    odd = assume(user("111111111111", "alice"), "arn:aws:iam::111111111111:role/Deploy", datetime(2026, 3, 31, tzinfo=UTC))
    odd["requestParameters"]["roleSessionName"] = 42  # gives assumerole.notes
    written = set().union(*(leaf_paths(d["assumerole"], "assumerole") for d in docs))
    written |= leaf_paths(enrich_objects([[odd]]).documents[0].assumerole, "assumerole")
    catalogued = {spec.name for spec in load_catalogue().group("assumerole")}
    assert "assumerole.notes" in written and written == catalogued
