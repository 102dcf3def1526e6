"""Each enrichment rule of SCHEMA.md, including the awkward callers."""

from datetime import UTC, datetime

import pytest

from cloudtrail import assume, enrich_objects, saml, service, thin, user, web_identity
from forwarder.config import parse_config

ORG, DEV, PROD, PARTNER, OUTSIDE = "111111111111", "222222222222", "333333333333", "444444444444", "999999999999"
CONFIG = parse_config(
    {
        "organization": {"accounts": [ORG, DEV, PROD], "approved_partners": [PARTNER]},
        "roles": {
            "sensitive": [
                {
                    "pattern": "arn:aws:iam::*:role/BreakGlass*",
                    "approved_principals": [f"arn:aws:iam::{ORG}:user/carol", f"arn:aws:iam::{ORG}:role/Approver"],
                }
            ],
            "human": {
                "patterns": ["arn:aws:iam::*:role/Human*"],
                "business_hours": {"timezone": "Europe/Berlin", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "07:00", "end": "20:00"},
            },
        },
    }
)
NOON = datetime(2026, 3, 31, 10, 0, tzinfo=UTC)  # a Tuesday, 12:00 in Berlin (summer time)


def enriched(record: dict) -> dict:
    return enrich_objects([[record]], CONFIG).documents[0].assumerole


def test_role_fields() -> None:
    ar = enriched(assume(user(ORG, "alice"), f"arn:aws:iam::{PROD}:role/HumanDeveloper", NOON))
    assert ar["role"] == {
        "arn": f"arn:aws:iam::{PROD}:role/HumanDeveloper",
        "name": "HumanDeveloper",
        "account_id": PROD,
        "service_linked": False,
        "sensitive": False,
        "human": True,
    }
    assert ar["cross_account"] is True and ar["caller"]["in_org"] is True and ar["caller"]["external"] is False
    with_path = enriched(assume(user(ORG, "alice"), f"arn:aws:iam::{PROD}:role/team/HumanDeveloper", NOON))
    assert with_path["role"]["name"] == "HumanDeveloper" and with_path["role"]["human"] is False  # Human* is no path


def test_every_schema_field_is_present_and_null_when_unknown() -> None:
    ar = enriched(assume(user(ORG, "dave"), f"arn:aws:iam::{PROD}:role/BreakGlassAdmin", NOON, error="AccessDenied"))
    assert set(ar) >= {"role", "caller", "cross_account", "primary", "after_hours", "failed", "error_code", "session", "chain"}
    assert ar["session"] == {"name": None, "source_identity": None, "access_key_id": None, "expiration": None, "duration_seconds": None}
    assert ar["failed"] is True and ar["error_code"] == "AccessDenied"
    # requestParameters is null on the denial; the role still comes from the error message.
    assert ar["role"]["arn"] == f"arn:aws:iam::{PROD}:role/BreakGlassAdmin"
    assert ar["caller"]["approved"] is False and ar["after_hours"] is None


def test_service_linked_role_and_aws_service_caller() -> None:
    role = f"arn:aws:iam::{DEV}:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS"
    ar = enriched(assume(service("rds.amazonaws.com"), role, NOON, recipient=DEV))
    assert ar["role"]["service_linked"] is True
    assert ar["caller"] == {
        "arn": "rds.amazonaws.com",
        "type": "AWSService",
        "account_id": None,
        "in_org": None,
        "approved_partner": False,
        "external": False,
        "approved": None,
    }
    assert ar["cross_account"] is False and ar["primary"] is True
    assert ar["chain"]["origin"] == {"arn": "rds.amazonaws.com", "type": "AWSService", "account_id": None}


@pytest.mark.parametrize(
    ("caller_account", "partner", "external"),
    [(OUTSIDE, False, True), (PARTNER, True, False), (ORG, False, False)],
)
def test_external_and_partner_callers(caller_account: str, partner: bool, external: bool) -> None:
    ar = enriched(assume(user(caller_account, "x"), f"arn:aws:iam::{DEV}:role/Vendor", NOON, recipient=caller_account))
    assert ar["caller"]["approved_partner"] is partner
    assert ar["caller"]["external"] is external
    assert ar["caller"]["in_org"] is (caller_account == ORG)
    assert ar["primary"] is False  # the caller's copy, logged in the caller's account


def test_saml_and_web_identity_callers() -> None:
    role = f"arn:aws:iam::{DEV}:role/HumanReadOnly"
    ar = enriched(assume(saml("erin@example.com"), role, NOON, event="AssumeRoleWithSAML"))
    assert ar["caller"]["arn"] == "erin@example.com" and ar["caller"]["type"] == "SAMLUser"
    assert ar["caller"]["account_id"] is None and ar["caller"]["in_org"] is None and ar["cross_account"] is False
    assert ar["chain"]["origin"]["type"] == "SAMLUser" and ar["chain"]["resolved"] is True
    web = enriched(assume(web_identity("repo:example/app:ref:refs/heads/main"), role, NOON, event="AssumeRoleWithWebIdentity"))
    assert web["caller"]["arn"] == "repo:example/app:ref:refs/heads/main" and web["caller"]["type"] == "WebIdentityUser"


def test_approved_principals_of_sensitive_roles() -> None:
    role = f"arn:aws:iam::{PROD}:role/BreakGlassAdministrator"
    assert enriched(assume(user(ORG, "carol"), role, NOON))["caller"]["approved"] is True
    assert enriched(assume(user(ORG, "bob"), role, NOON))["caller"]["approved"] is False
    assert enriched(assume(user(ORG, "bob"), f"arn:aws:iam::{PROD}:role/Other", NOON))["caller"]["approved"] is None


@pytest.mark.parametrize(
    ("moment", "after"),
    [
        (datetime(2026, 3, 31, 1, 7, tzinfo=UTC), True),  # 03:07 in Berlin
        (datetime(2026, 3, 31, 5, 30, tzinfo=UTC), False),  # 07:30 CEST: inside only with daylight saving
        (datetime(2026, 1, 13, 5, 30, tzinfo=UTC), True),  # 06:30 CET in winter
        (datetime(2026, 3, 31, 17, 59, tzinfo=UTC), False),  # 19:59
        (datetime(2026, 3, 31, 18, 0, tzinfo=UTC), True),  # 20:00 is closing time
        (datetime(2026, 4, 4, 10, 0, tzinfo=UTC), True),  # a Saturday
    ],
)
def test_after_hours_in_the_configured_zone(moment: datetime, after: bool) -> None:
    ar = enriched(assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/HumanAdmin", moment))
    assert ar["after_hours"] is after


def test_after_hours_is_null_for_other_roles() -> None:
    ar = enriched(assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", datetime(2026, 3, 31, 1, 0, tzinfo=UTC)))
    assert ar["after_hours"] is None


def test_session_fields_parse_cloudtrail_expiration() -> None:
    record = assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", NOON, duration=None, source_identity="alice")
    record["responseElements"]["credentials"]["expiration"] = "Mar 31, 2026, 11:00:00 AM"
    ar = enriched(record)
    assert ar["session"]["expiration"] == "2026-03-31T11:00:00Z"
    assert ar["session"]["duration_seconds"] == 3600
    assert ar["session"]["source_identity"] == "alice"
    assert ar["session"]["access_key_id"] == record["responseElements"]["credentials"]["accessKeyId"]


def test_cross_account_copies_describe_the_same_call() -> None:
    caller = user(ORG, "alice")
    full = assume(caller, f"arn:aws:iam::{PROD}:role/Deploy", NOON, recipient=ORG, shared="shared-1")
    owner = dict(full, userIdentity=thin(caller), recipientAccountId=PROD, eventID="owner-copy")
    for order in ([owner], [full]), ([full], [owner]):
        docs = {d.event_id: d.assumerole for d in enrich_objects(list(order), CONFIG).documents}
        assert docs["owner-copy"]["primary"] is True and docs[full["eventID"]]["primary"] is False
        for ar in docs.values():
            assert ar["caller"]["arn"] == f"arn:aws:iam::{ORG}:user/alice" and ar["caller"]["type"] == "IAMUser"
            assert ar["chain"]["origin"]["arn"] == f"arn:aws:iam::{ORG}:user/alice" and ar["chain"]["resolved"]


def test_thin_copy_of_an_outside_caller_keeps_what_it_has() -> None:
    record = assume(thin(user(OUTSIDE, "mallory")), f"arn:aws:iam::{DEV}:role/Vendor", NOON, recipient=DEV, shared="s2")
    ar = enriched(record)
    assert ar["caller"]["type"] == "AWSAccount" and ar["caller"]["account_id"] == OUTSIDE and ar["caller"]["arn"] is None
    assert ar["caller"]["external"] is True and ar["primary"] is True
    assert ar["chain"]["resolved"] is False and ar["chain"]["origin"]["account_id"] == OUTSIDE


def test_unexpected_field_type_ships_with_a_note() -> None:
    record = assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", NOON)
    record["requestParameters"]["roleSessionName"] = 42
    record["requestParameters"]["durationSeconds"] = "an hour"
    ar = enriched(record)
    assert ar["session"]["name"] is None and ar["role"]["name"] == "Deploy"
    assert any("roleSessionName" in note for note in ar["notes"])
    record = assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", NOON)
    record["eventName"] = ["AssumeRole"]  # not even the peek can read it: the slow path takes it
    record["userIdentity"] = "alice"
    assert enrich_objects([[record]], parse_config({"select": "all"})).documents[0].record == record
