"""Each enrichment rule of SCHEMA.md, including the awkward callers."""

import copy
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from cloudtrail import assume, enrich_objects, saml, service, session_identity, thin, user, web_identity
from forwarder.config import parse_config
from forwarder.enrich.assumption import read_assumption
from forwarder.enrich.identity import caller_of

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
        "identity_center": False,
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
    assert ar["chain"]["origin"] == {"arn": "rds.amazonaws.com", "type": "AWSService", "account_id": None,
                                     "identity_provider": None}


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


@pytest.mark.parametrize(
    ("caller_account", "role_account", "error", "ingested", "config", "primary"),
    [
        (ORG, ORG, None, ("caller",), CONFIG, "caller"),  # a same-account call has one copy
        (ORG, PROD, None, ("caller", "owner"), CONFIG, "owner"),
        (ORG, PROD, "AccessDenied", ("caller",), CONFIG, "caller"),  # the role's account logs no denial
        (ORG, PARTNER, None, ("caller",), CONFIG, "caller"),  # a role in an account whose trail is not read
        (OUTSIDE, DEV, None, ("owner",), CONFIG, "owner"),  # a caller whose trail is not read
        (ORG, PROD, None, ("caller", "owner"), parse_config({}), "owner"),  # no organization: every trail counts as read
    ],
    ids=["same-account", "cross-account", "denied", "role-trail-not-read", "caller-trail-not-read", "no-organization"],
)
def test_exactly_one_ingested_copy_of_each_call_is_primary(
    caller_account: str, role_account: str, error: str | None, ingested: tuple[str, ...], config: object, primary: str
) -> None:
    caller = user(caller_account, "alice")
    full = assume(caller, f"arn:aws:iam::{role_account}:role/Deploy", NOON, recipient=caller_account, shared="s-1",
                  error=error)
    copies = {"caller": full, "owner": dict(full, userIdentity=thin(caller), recipientAccountId=role_account, eventID="owner")}
    docs = enrich_objects([[copies[name] for name in ingested]], config).by_event()
    assert {name: docs[copies[name]["eventID"]]["assumerole"]["primary"] for name in ingested} == {
        name: name == primary for name in ingested
    }


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


def _set(record: dict, path: str, value: object) -> dict:
    *parents, last = path.split(".")
    target = record
    for key in parents:
        target = target[key]
    target[last] = value
    return record


def _roleless(record: dict) -> dict:
    del record["requestParameters"]["roleArn"]
    return record


SESSION_CALLER = session_identity(f"arn:aws:iam::{ORG}:role/Ops", "ASIATESTNOTES0000001", "2026-03-31T09:00:00Z")


@pytest.mark.parametrize(
    ("identity", "path", "value", "note"),
    [
        (None, "responseElements.credentials.expiration", 1774962000,
         "responseElements.credentials.expiration 1774962000 is not a time CloudTrail writes"),
        (None, "responseElements.credentials.expiration", "31/03/2026",
         'responseElements.credentials.expiration "31/03/2026" is not a time CloudTrail writes'),
        (None, "responseElements.credentials.accessKeyId", 7, "responseElements.credentials.accessKeyId is a number, not a string"),
        (None, "responseElements.credentials", "ASIA...", "responseElements.credentials is a string, not an object"),
        (None, "responseElements", [], "responseElements is an array, not an object"),
        (None, "requestParameters.roleArn", 5, "requestParameters.roleArn is a number, not a string"),
        (None, "requestParameters.roleSessionName", ["s"], "requestParameters.roleSessionName is an array, not a string"),
        (None, "requestParameters.sourceIdentity", {"id": 1}, "requestParameters.sourceIdentity is an object, not a string"),
        (None, "requestParameters.durationSeconds", "3600", 'requestParameters.durationSeconds "3600" is not a number of seconds'),
        (None, "requestParameters.durationSeconds", True, "requestParameters.durationSeconds true is not a number of seconds"),
        (None, "requestParameters.durationSeconds", -5, "requestParameters.durationSeconds -5 is not a number of seconds"),
        (None, "requestParameters", "roleArn=x", "requestParameters is a string, not an object"),
        (None, "eventTime", "31/03/2026 12:00", 'eventTime "31/03/2026 12:00" is not a time CloudTrail writes'),
        (None, "eventTime", "9999-12-31T23:59:59-01:00", 'eventTime "9999-12-31T23:59:59-01:00" is not a time CloudTrail writes'),
        (None, "sharedEventID", 7, "sharedEventID is a number, not a string"),
        (None, "errorCode", 403, "errorCode is a number, not a string"),
        (None, "resources", "arn:aws:iam::111111111111:role/Deploy", "resources is a string, not an array"),
        (None, "resources", [7], "resources[0] is a number, not an object"),
        (None, "resources", [{"ARN": 7}], "resources[0].ARN is a number, not a string"),
        (None, "errorMessage", {"text": "denied"}, "errorMessage is an object, not a string"),
        (user(ORG, "alice"), "userIdentity", "alice", "userIdentity is a string, not an object"),
        (user(ORG, "alice"), "userIdentity.arn", 7, "userIdentity.arn is a number, not a string"),
        (user(ORG, "alice"), "userIdentity.type", ["IAMUser"], "userIdentity.type is an array, not a string"),
        (service("ec2.amazonaws.com"), "userIdentity.invokedBy", 7, "userIdentity.invokedBy is a number, not a string"),
        (saml("erin@example.com"), "userIdentity.userName", 7, "userIdentity.userName is a number, not a string"),
        (saml("erin@example.com"), "userIdentity.identityProvider", 7, "userIdentity.identityProvider is a number, not a string"),
        (SESSION_CALLER, "userIdentity.onBehalfOf", "u", "userIdentity.onBehalfOf is a string, not an object"),
        (SESSION_CALLER, "userIdentity.sessionContext", "s", "userIdentity.sessionContext is a string, not an object"),
        (SESSION_CALLER, "userIdentity.sessionContext.sessionIssuer.arn", 7,
         "userIdentity.sessionContext.sessionIssuer.arn is a number, not a string"),
        (SESSION_CALLER, "userIdentity.sessionContext.attributes.creationDate", 1774947600,
         "userIdentity.sessionContext.attributes.creationDate 1774947600 is not a time CloudTrail writes"),
        (SESSION_CALLER, "userIdentity.sessionContext.sourceIdentity", False,
         "userIdentity.sessionContext.sourceIdentity is a boolean, not a string"),
    ],
)
def test_a_field_of_an_unexpected_type_always_leaves_a_note(identity: dict | None, path: str, value: object, note: str) -> None:
    record = assume(copy.deepcopy(identity or user(ORG, "alice")), f"arn:aws:iam::{ORG}:role/Deploy", NOON)
    if path.startswith(("resources", "errorMessage")):
        record = _roleless(record)  # they are read only to find a role that requestParameters does not name
    ar = enriched(_set(record, path, value))
    assert note in ar["notes"]


def test_notes_name_only_what_is_wrong() -> None:
    for record in (
        assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", NOON),
        assume(user(ORG, "dave"), f"arn:aws:iam::{PROD}:role/Deploy", NOON, error="AccessDenied"),  # requestParameters: null
        assume(SESSION_CALLER, f"arn:aws:iam::{PROD}:role/Deploy", NOON),
    ):
        assert "notes" not in enriched(record)


def test_a_wrong_field_does_not_take_what_is_right_with_it() -> None:
    record = assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", NOON)
    record["responseElements"]["credentials"]["expiration"] = 1774962000
    record["errorCode"] = 403
    ar = enriched(record)
    assert ar["session"]["expiration"] is None and ar["session"]["duration_seconds"] == 3600  # from durationSeconds
    assert ar["failed"] is True and ar["error_code"] is None  # an error code all the same, just not a keyword


def test_integers_beyond_what_a_long_holds_are_noted_not_encoded() -> None:
    record = assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/Deploy", NOON)
    record["requestParameters"]["durationSeconds"] = 2**70
    facts = read_assumption(record)
    assert facts.duration == 3600  # expiration minus eventTime
    assert facts.notes == [f"requestParameters.durationSeconds {2**70} is not a number of seconds"]


def test_caller_notes() -> None:
    assert caller_of(None).notes == () and caller_of(user(ORG, "alice")).notes == ()
    caller = caller_of(_set(copy.deepcopy(SESSION_CALLER), "sessionContext.attributes", "today"))
    assert caller.notes == ("userIdentity.sessionContext.attributes is a string, not an object",)
    assert caller.created is None and caller.issuer_arn == f"arn:aws:iam::{ORG}:role/Ops"
    assert caller == replace(caller_of(SESSION_CALLER), created=None)  # notes are about the record, not the caller


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "0001-01-01T00:30:00+01:00"])
def test_a_time_at_the_ends_of_the_calendar_is_noted_not_a_crash(moment: str) -> None:
    record = assume(user(ORG, "alice"), f"arn:aws:iam::{ORG}:role/HumanAdmin", NOON)  # business hours: a time zone
    record["eventTime"] = moment
    ar = enriched(record)
    assert ar["after_hours"] is None and f'eventTime "{moment}" is not a time CloudTrail writes' in ar["notes"]
