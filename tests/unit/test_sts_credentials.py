"""Every credential STS issues starts or extends a chain, with the right origin: AssumeRoot,
GetFederationToken, GetSessionToken, console sessions, SAML and web identity subjects, IAM Identity
Center users; sourceIdentity carried along a chain and a change of it flagged.

Each scenario runs in batch mode and in the daemon (hold-back), its objects delivered children
first, and both give the same documents. Records are built in the shapes AWS documents (see the
builders in tests/cloudtrail.py, which say which documentation each follows); the public samples
have none of these kinds but console sessions (tests/unit/test_public_samples.py).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloudtrail import (
    assume,
    assume_root,
    call,
    console_login,
    enrich_objects,
    federated_user,
    from_console,
    get_federation_token,
    get_session_token,
    issued_key,
    on_behalf_of,
    root,
    root_session,
    saml,
    session_identity,
    temporary_user,
    thin,
    user,
    web_identity,
    without_baseline,
)
from forwarder.config import parse_config

MGMT, MEMBER, PROD = "111111111111", "222222222222", "333333333333"
ORGANIZATION = {"accounts": [MGMT, MEMBER, PROD]}
BATCH = parse_config({"organization": ORGANIZATION})
DAEMON = parse_config({"organization": ORGANIZATION, "chains": {"hold_back_seconds": 900}})
T0 = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)
ADMIN = f"arn:aws:iam::{MGMT}:role/OrgAdmin"
MEMBER_ROOT = f"arn:aws:iam::{MEMBER}:root"
CAROL = f"arn:aws:iam::{MGMT}:user/carol"
SSO_ROLE = f"arn:aws:iam::{PROD}:role/aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdministratorAccess_0123456789abcdef"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def origin(arn: str | None, kind: str | None, account: str | None, provider: str | None = None) -> dict[str, Any]:
    return {"arn": arn, "type": kind, "account_id": account, "identity_provider": provider}


MODES = ["batch", "daemon"]


def run(mode: str, objects: list[list[dict]]) -> dict[str, dict]:
    """``objects`` from parents to children, delivered the other way round: the daemon holds the
    children back until their parents come, a batch resolves over the whole input."""
    delivered = objects[::-1]
    sink = enrich_objects(delivered, BATCH) if mode == "batch" else enrich_objects(delivered, DAEMON, batch=False)
    docs = {event_id: without_baseline(doc["assumerole"]) for event_id, doc in sink.by_event().items()}
    assert len(docs) == sum(map(len, objects)), "every record ships (none is left waiting)"
    return docs


def both_modes(objects: list[list[dict]]) -> dict[str, dict]:
    batch, daemon = run("batch", objects), run("daemon", objects)
    assert daemon == batch
    return batch


# -- AssumeRoot ------------------------------------------------------------------------------


def test_assume_root_session_stands_for_the_management_principal_that_asked() -> None:
    issuance = assume_root(user(MGMT, "carol"), MEMBER, at(0))
    key = issued_key(issuance)
    bucket = call(root_session(MEMBER, key, issuance["eventTime"]), at(1), "DeleteBucketPolicy")
    docs = both_modes([[issuance], [bucket]])
    ar = docs[issuance["eventID"]]
    assert ar["role"] == {"arn": MEMBER_ROOT, "name": None, "account_id": MEMBER, "service_linked": False,
                          "sensitive": False, "human": False, "identity_center": False}
    assert ar["caller"]["arn"] == CAROL and ar["caller"]["type"] == "IAMUser" and ar["caller"]["account_id"] == MGMT
    assert ar["cross_account"] is True and ar["caller"]["external"] is False
    assert ar["primary"] is True  # logged only in the management account: no other copy exists
    assert ar["session"] == {"name": None, "source_identity": None, "access_key_id": key,
                             "expiration": stamp(at(15)), "duration_seconds": 900}
    expected = {"origin": origin(CAROL, "IAMUser", MGMT), "depth": 1, "hops": [MEMBER_ROOT], "resolved": True,
                "source_identity_changed": False}
    assert ar["chain"] == expected
    assert docs[bucket["eventID"]] == {"session": {"access_key_id": key}, "chain": expected}


def test_assume_root_flagged_session_without_its_issuance_names_no_origin() -> None:
    flagged = call(root_session(MEMBER, "ASIAROOTNEVERSEEN001", stamp(at(0)), assumed_root=True), at(1), "DeleteBucketPolicy")
    chain = run("batch", [[flagged]])[flagged["eventID"]]["chain"]
    assert chain == {"origin": origin(None, None, None), "depth": 1, "hops": [MEMBER_ROOT], "resolved": False,
                     "source_identity_changed": False}


def test_root_temporary_credentials_without_an_assume_root_are_roots_own() -> None:
    # A console session or GetSessionToken of the root user looks like an AssumeRoot session.
    own = call(root_session(MEMBER, "ASIAROOTCONSOLE00001", stamp(at(0))), at(1), "ListBuckets")
    chain = run("batch", [[own]])[own["eventID"]]["chain"]
    assert chain == {"origin": origin(MEMBER_ROOT, "Root", MEMBER), "depth": 0, "hops": [], "resolved": False,
                     "source_identity_changed": False}
    token = get_session_token(root(MEMBER), at(0))
    later = call(root_session(MEMBER, issued_key(token), token["eventTime"]), at(1), "ListBuckets")
    docs = both_modes([[token], [later]])
    assert docs[later["eventID"]]["chain"] == {"origin": origin(MEMBER_ROOT, "Root", MEMBER), "depth": 0, "hops": [],
                                               "resolved": True, "source_identity_changed": False}


# -- GetFederationToken, GetSessionToken ----------------------------------------------------------


@pytest.mark.parametrize("asker", [user(MGMT, "alice"), root(MGMT)], ids=["iam-user", "root"])
def test_federated_user_stands_for_whoever_asked_for_the_token(asker: dict) -> None:
    issuance = get_federation_token(asker, "partner-bob", at(0))
    key = issued_key(issuance)
    federated = f"arn:aws:sts::{MGMT}:federated-user/partner-bob"
    listing = call(federated_user(asker, "partner-bob", key, issuance["eventTime"]), at(5), "ListBuckets")
    docs = both_modes([[issuance], [listing]])
    ar = docs[issuance["eventID"]]
    assert ar["role"]["arn"] == federated and ar["role"]["name"] == "partner-bob" and ar["role"]["account_id"] == MGMT
    assert ar["caller"]["arn"] == asker["arn"] and ar["caller"]["type"] == asker["type"]
    assert ar["cross_account"] is False and ar["primary"] is True
    assert ar["session"]["name"] == "partner-bob" and ar["session"]["duration_seconds"] == 43200
    expected = {"origin": origin(asker["arn"], asker["type"], MGMT), "depth": 1, "hops": [federated], "resolved": True,
                "source_identity_changed": False}
    assert ar["chain"] == expected
    assert docs[listing["eventID"]] == {"session": {"access_key_id": key}, "chain": expected}


def test_session_token_acts_as_the_user_itself_and_chains_on() -> None:
    dave = user(MGMT, "dave")
    token = get_session_token(dave, at(0), duration=3600)
    key = issued_key(token)
    with_mfa = temporary_user(dave, key, token["eventTime"], mfa=True)
    listing = call(with_mfa, at(1), "ListUsers", "iam.amazonaws.com")
    onwards = assume(with_mfa, ADMIN, at(2))
    admin_call = call(session_identity(ADMIN, issued_key(onwards), onwards["eventTime"]), at(3), "ListAccounts")
    docs = both_modes([[token], [listing], [onwards], [admin_call]])
    ar = docs[token["eventID"]]
    assert ar["role"] == {"arn": None, "name": None, "account_id": None, "service_linked": False, "sensitive": False,
                          "human": False, "identity_center": False}
    assert ar["caller"]["arn"] == dave["arn"] and ar["cross_account"] is False and ar["primary"] is True
    assert ar["session"] == {"name": None, "source_identity": None, "access_key_id": key,
                             "expiration": stamp(at(60)), "duration_seconds": 3600}
    itself = {"origin": origin(dave["arn"], "IAMUser", MGMT), "depth": 0, "hops": [], "resolved": True,
              "source_identity_changed": False}
    assert ar["chain"] == itself
    assert docs[listing["eventID"]] == {"session": {"access_key_id": key}, "chain": itself}
    assert docs[onwards["eventID"]]["caller"]["type"] == "IAMUser"
    for event_id in (onwards["eventID"], admin_call["eventID"]):
        assert docs[event_id]["chain"] == {**itself, "depth": 1, "hops": [ADMIN]}


# -- console sessions -------------------------------------------------------------------------


def test_console_sign_in_then_switch_role() -> None:
    bob, ops = user(MGMT, "bob"), f"arn:aws:iam::{PROD}:role/HumanOps"
    login = console_login(bob, at(0))
    console = temporary_user(bob, "ASIACONSOLEBOB000001", login["eventTime"], mfa=True)
    browse = from_console(call(console, at(1), "DescribeInstances", "ec2.amazonaws.com"))
    switch = from_console(assume(console, ops, at(2), recipient=MGMT, shared="switch-1"))
    owner = dict(switch, userIdentity=thin(console), recipientAccountId=PROD, eventID="switch-1-owner")
    switched = from_console(call(session_identity(ops, issued_key(switch), switch["eventTime"]), at(3), "StopInstances",
                                 "ec2.amazonaws.com"))
    assert enrich_objects([[login]], BATCH).documents == []  # a sign-in names no credentials: not shipped
    docs = both_modes([[browse], [switch], [owner], [switched]])
    bob_origin = origin(bob["arn"], "IAMUser", MGMT)
    assert docs[browse["eventID"]]["chain"] == {"origin": bob_origin, "depth": 0, "hops": [], "resolved": True,
                                                "source_identity_changed": False}
    for event_id in (switch["eventID"], "switch-1-owner", switched["eventID"]):
        assert docs[event_id]["chain"] == {"origin": bob_origin, "depth": 1, "hops": [ops], "resolved": True,
                                           "source_identity_changed": False}
    assert docs["switch-1-owner"]["caller"]["arn"] == bob["arn"]
    assert [docs[switch["eventID"]]["primary"], docs["switch-1-owner"]["primary"]] == [False, True]


# -- federated subjects, IAM Identity Center -----------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "event", "provider"),
    [
        (saml("erin@example.com", "SampleUkh1i4+ExamplexL/jEvs="), "AssumeRoleWithSAML", "SampleUkh1i4+ExamplexL/jEvs="),
        (web_identity("repo:example/app:ref:refs/heads/main"), "AssumeRoleWithWebIdentity",
         "token.actions.githubusercontent.com"),
    ],
    ids=["saml", "web-identity"],
)
def test_federated_subjects_are_named_by_provider_and_subject(subject: dict, event: str, provider: str) -> None:
    role = f"arn:aws:iam::{PROD}:role/Deploy"
    issuance = assume(subject, role, at(0), event=event, recipient=PROD)
    used = call(session_identity(role, issued_key(issuance), issuance["eventTime"]), at(1))
    docs = both_modes([[issuance], [used]])
    for ar in docs.values():
        assert ar["chain"]["origin"] == origin(subject["userName"], subject["type"], None, provider)
        assert ar["chain"]["resolved"] is True


def test_identity_center_user_behind_a_permission_set_role() -> None:
    store = "arn:aws:identitystore::111111111111:identitystore/d-9067642ac7"
    sign_in = assume(saml("alice@example.com", "AWSSSO_0123456789abcdef_DO_NOT_DELETE"), SSO_ROLE, at(0),
                     event="AssumeRoleWithSAML", recipient=PROD, session_name="alice@example.com")
    session = session_identity(SSO_ROLE, issued_key(sign_in), sign_in["eventTime"], "alice@example.com")
    plain = call(session, at(1))
    enhanced = call(on_behalf_of(session, "544894e8-80c1-707f-60e3-3ba6510dfac1", store), at(2), "GetObject")
    docs = both_modes([[sign_in], [plain, enhanced]])
    assert docs[sign_in["eventID"]]["role"]["identity_center"] is True
    assert docs[sign_in["eventID"]]["role"]["name"] == "AWSReservedSSO_AdministratorAccess_0123456789abcdef"
    sso = origin("alice@example.com", "SAMLUser", None, "AWSSSO_0123456789abcdef_DO_NOT_DELETE")
    assert docs[plain["eventID"]]["chain"] == {"origin": sso, "depth": 1, "hops": [SSO_ROLE], "resolved": True,
                                               "source_identity_changed": False}
    assert docs[enhanced["eventID"]]["chain"] == {
        "origin": origin("544894e8-80c1-707f-60e3-3ba6510dfac1", "IdentityCenterUser", None, store),
        "depth": 1, "hops": [SSO_ROLE], "resolved": True, "source_identity_changed": False,
    }


# -- a chain through a SAML user, a role and an AssumeRoot session ------------------------------------


def test_saml_user_role_and_assume_root_session_end_to_end() -> None:
    provider = "SampleUkh1i4+ExamplexL/jEvs="
    federation = assume(saml("erin@example.com", provider), ADMIN, at(0), event="AssumeRoleWithSAML",
                        recipient=MGMT, source_identity="erin")
    admin = session_identity(ADMIN, issued_key(federation), federation["eventTime"])
    privileged = assume_root(admin, MEMBER, at(2))
    key = issued_key(privileged)
    deleted = call(root_session(MEMBER, key, privileged["eventTime"]), at(3), "DeleteBucketPolicy")
    docs = both_modes([[federation], [privileged], [deleted]])
    erin = origin("erin@example.com", "SAMLUser", None, provider)
    expected = {"origin": erin, "depth": 2, "hops": [ADMIN, MEMBER_ROOT], "resolved": True,
                "source_identity_changed": False}
    assert docs[deleted["eventID"]] == {"session": {"access_key_id": key}, "chain": expected}
    ar = docs[privileged["eventID"]]
    assert ar["chain"] == expected and ar["caller"]["type"] == "AssumedRole" and ar["caller"]["arn"] == admin["arn"]
    assert ar["session"]["source_identity"] == "erin"  # carried from the SAML assertion down the chain


# -- sourceIdentity along a chain -----------------------------------------------------------------


def chain_of_source_identities(first: str | None, second: str | None) -> tuple[list[list[dict]], list[str]]:
    """alice -> RoleA (sourceIdentity ``first``) -> RoleB (``second``) -> a call with RoleB's session."""
    role_a, role_b = f"arn:aws:iam::{PROD}:role/RoleA", f"arn:aws:iam::{PROD}:role/RoleB"
    hop_a = assume(user(PROD, "alice"), role_a, at(0), source_identity=first)
    session_a = session_identity(role_a, issued_key(hop_a), hop_a["eventTime"])
    if first:
        session_a["sessionContext"]["sourceIdentity"] = first
    hop_b = assume(session_a, role_b, at(1), source_identity=second)
    used = call(session_identity(role_b, issued_key(hop_b), hop_b["eventTime"]), at(2))
    return [[hop_a], [hop_b], [used]], [hop_a["eventID"], hop_b["eventID"], used["eventID"]]


@pytest.mark.parametrize("mode", MODES)
def test_source_identity_changed_mid_chain_is_flagged(mode: str) -> None:
    objects, (hop_a, hop_b, used) = chain_of_source_identities("alice", "mallory")
    docs = run(mode, objects)
    assert docs[hop_a]["chain"]["source_identity_changed"] is False
    assert docs[hop_b]["chain"]["source_identity_changed"] is True and docs[hop_b]["session"]["source_identity"] == "mallory"
    assert docs[used]["chain"]["source_identity_changed"] is True  # and so for every call made with the session


@pytest.mark.parametrize(("first", "second", "carried"), [("alice", None, "alice"), ("alice", "alice", "alice"),
                                                          (None, "alice", "alice"), (None, None, None)])
def test_source_identity_kept_or_first_set_is_no_change(first: str | None, second: str | None, carried: str | None) -> None:
    objects, (_, hop_b, used) = chain_of_source_identities(first, second)
    docs = both_modes(objects)
    assert docs[hop_b]["session"]["source_identity"] == carried
    assert not docs[hop_b]["chain"]["source_identity_changed"] and not docs[used]["chain"]["source_identity_changed"]


def test_fields_of_an_unexpected_type_in_the_new_kinds_leave_notes() -> None:
    alice = user(MGMT, "alice")
    odd_root = assume_root(alice, MEMBER, at(0))
    odd_root["requestParameters"]["targetPrincipal"] = 222222222222
    odd_token = get_federation_token(alice, "bob", at(0))
    odd_token["requestParameters"]["name"] = ["bob"]
    odd_token["responseElements"]["federatedUser"] = "bob"
    docs = enrich_objects([[odd_root, odd_token]], BATCH).by_event()
    root_doc, token_doc = docs[odd_root["eventID"]]["assumerole"], docs[odd_token["eventID"]]["assumerole"]
    assert root_doc["notes"] == ["requestParameters.targetPrincipal is a number, not a string"]
    assert root_doc["role"]["arn"] is None and root_doc["session"]["access_key_id"] == issued_key(odd_root)
    assert token_doc["notes"] == ["requestParameters.name is an array, not a string",
                                  "responseElements.federatedUser is a string, not an object"]
    assert token_doc["role"]["arn"] is None and token_doc["session"]["name"] is None


# -- what the default selection ships -------------------------------------------------------------


def test_the_default_selection_ships_calls_with_any_temporary_key_and_no_long_term_one() -> None:
    alice = user(MGMT, "alice")
    shipped = [
        call(temporary_user(alice, "ASIATEMPALICE0000001", stamp(at(0))), at(1)),
        call(federated_user(alice, "bob", "ASIAFEDERATEDBOB0001", stamp(at(0))), at(1)),
        call(root_session(MEMBER, "ASIAROOTSESSION00001", stamp(at(0))), at(1)),
        get_session_token(alice, at(0)),
        get_federation_token(alice, "bob", at(0)),
        assume_root(alice, MEMBER, at(0)),
    ]
    not_shipped = [call(alice, at(1)), call({**root(MEMBER), "accessKeyId": "AKIAROOTLONGTERM0001"}, at(1)),
                   console_login(alice, at(0))]
    docs = enrich_objects([shipped + not_shipped], BATCH).by_event()
    assert set(docs) == {record["eventID"] for record in shipped}
    assumptions = enrich_objects([shipped + not_shipped], parse_config({"select": "assumptions"})).by_event()
    assert set(assumptions) == {record["eventID"] for record in shipped[3:]}
