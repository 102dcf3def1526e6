"""The rule kit's own scenario: benign traffic plus each attack, built from tests/cloudtrail.py.

Each record is made with the names of the rules that must alert on it, so the expected alerts
come from how the scenario was built, not from running the rules. The organisation's account
(A) and a member account that only AssumeRoot reaches (M), a partner (P), an outside account
(X); Wednesday 2026-04-01, business hours 08-18 UTC. The configuration differs from the demo's
on purpose: max_chain_depth 2, failure burst threshold 3 in 5 minutes, trust-policy enumeration
threshold 2 in 5 minutes, so the generated rules' numbers are exercised.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudtrail import assume, call, issued_key, new_key, saml, service, session_identity, thin, user, web_identity

from forwarder.config import parse_config

A, M, P, X = "111122223333", "555566667777", "444455556666", "999900001111"
BREAK_GLASS = f"arn:aws:iam::{A}:role/BreakGlass"
HUMAN = f"arn:aws:iam::{A}:role/HumanDev"
SLR = f"arn:aws:iam::{A}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
PARTNER_ROLE = f"arn:aws:iam::{A}:role/PartnerRead"
VENDOR_ROLE = f"arn:aws:iam::{A}:role/VendorIntegration"
HOPS = [f"arn:aws:iam::{A}:role/Hop{n}" for n in (1, 2, 3)]
ROOT_TASKS = f"arn:aws:iam::{A}:role/RootTaskAdmin"
DEPLOY = f"arn:aws:iam::{A}:role/Deploy"
READER = f"arn:aws:iam::{A}:role/Reader"
IDENTITY_CENTER = f"arn:aws:iam::{A}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_AdministratorAccess_0123456789abcdef"

SCENARIO_CONFIG = parse_config(
    {
        "organization": {"accounts": [A, M], "approved_partners": [P]},
        "roles": {
            "sensitive": [{"pattern": "arn:aws:iam::*:role/BreakGlass", "approved_principals": [f"arn:aws:iam::{A}:user/admin"]}],
            "human": {
                "patterns": ["arn:aws:iam::*:role/Human*"],
                "business_hours": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
            },
        },
        "select": "all",
        "detections": {
            "max_chain_depth": 2,
            "failed_assumptions": {"threshold": 3, "window_minutes": 5},
            "trust_policy_enumeration": {"threshold": 2, "window_minutes": 5},
            "assume_root": {"approved_principals": [ROOT_TASKS]},
        },
    },
    "scenario",
)

ENRICHED_UNAPPROVED = "assumerole_sensitive_role_unapproved"
RAW_UNAPPROVED = "cloudtrail_sensitive_role_unapproved_breakglass"
FAILED = ("assumerole_failed_assumption", "cloudtrail_failed_assumption")
SERVICE_LINKED = ("assumerole_service_linked_role_misuse", "cloudtrail_service_linked_role_misuse")
FEDERATION = ("assumerole_federation_token_admin_or_long", "cloudtrail_federation_token_admin_policy")
BASELINE_RULES = tuple(f"assumerole_{name}" for name in (
    "baseline_new_pair", "baseline_new_role_for_subject", "baseline_new_subject_for_role", "baseline_new_network",
    "baseline_new_country", "baseline_new_region", "baseline_unusual_hour", "baseline_volume_spike",
    "session_new_network", "session_unknown_issuance"))
# The principals each correlation's threshold rule must alert on.
BURSTS = {
    "assumerole_failed_assumption_burst": [f"arn:aws:iam::{A}:user/eve"],
    "cloudtrail_failed_assumption_burst": [f"arn:aws:iam::{A}:user/eve"],
    "cloudtrail_trust_policy_enumeration_burst": [f"arn:aws:iam::{A}:user/prober"],
}


def _api(identity: dict[str, Any], at: datetime, source: str, name: str, request: Any, response: Any = None,
         *, error: str | None = None, message: str | None = None) -> dict[str, Any]:
    record = call(identity, at, name, source)
    record.update(requestParameters=request, responseElements=response)
    if error:
        record.update(errorCode=error, errorMessage=message)
    return record


def _credentials(at: datetime, seconds: int) -> dict[str, Any]:
    expires = at + timedelta(seconds=seconds)
    return {"accessKeyId": new_key(), "sessionToken": "IQoJb3JpZ2luX2VjEXAMPLE",
            "expiration": expires.strftime("%b %-d, %Y, %-I:%M:%S %p")}


def assume_root(identity: dict[str, Any], member: str, at: datetime, *, error: str | None = None) -> dict[str, Any]:
    """AssumeRoot as the IAM User Guide's example in "Track privileged tasks in AWS CloudTrail"
    writes it; denied, with requestParameters null like a denied AssumeRole."""
    request = {"targetPrincipal": member, "taskPolicyArn": {"arn": "arn:aws:iam::aws:policy/root-task/S3UnlockBucketPolicy"}}
    message = f"User: {identity['arn']} is not authorized to perform: sts:AssumeRoot on resource: arn:aws:iam::{member}:root"
    if error:
        return _api(identity, at, "sts.amazonaws.com", "AssumeRoot", None, error=error, message=message)
    return _api(identity, at, "sts.amazonaws.com", "AssumeRoot", request, {"credentials": _credentials(at, 900)})


def federation_token(identity: dict[str, Any], at: datetime, name: str, *, policy: str | None = None,
                     policy_arns: tuple[str, ...] = (), duration: int = 43200, error: str | None = None) -> dict[str, Any]:
    """GetFederationToken called by an IAM user (the caller the IAM User Guide's table of STS calls
    in CloudTrail names): the API reference's parameters and response in CloudTrail's lowerCamel
    form, as the Guide's AssumeRole examples write theirs. The policy is the string the caller sent."""
    request: dict[str, Any] = {"name": name, "durationSeconds": duration}
    if policy:
        request["policy"] = policy
    if policy_arns:
        request["policyArns"] = [{"arn": arn} for arn in policy_arns]
    account = identity["accountId"]
    response = None if error else {
        "credentials": _credentials(at, duration),
        "federatedUser": {"federatedUserId": f"{account}:{name}", "arn": f"arn:aws:sts::{account}:federated-user/{name}"},
        "packedPolicySize": 6,
    }
    message = f"User: {identity['arn']} is not authorized to perform: sts:GetFederationToken"
    return _api(identity, at, "sts.amazonaws.com", "GetFederationToken", request, response, error=error, message=message)


def federated_user(token: dict[str, Any], created: str) -> dict[str, Any]:
    """The userIdentity of calls made with GetFederationToken's credentials, as the CloudTrail User
    Guide's userIdentity element describes a FederatedUser: its issuer is the IAM user."""
    issuer = token["userIdentity"]
    federated = token["responseElements"]["federatedUser"]
    return {
        "type": "FederatedUser",
        "principalId": federated["federatedUserId"],
        "arn": federated["arn"],
        "accountId": issuer["accountId"],
        "accessKeyId": token["responseElements"]["credentials"]["accessKeyId"],
        "sessionContext": {
            "sessionIssuer": {"type": "IAMUser", "principalId": issuer["principalId"], "arn": issuer["arn"],
                              "accountId": issuer["accountId"], "userName": issuer["userName"]},
            "attributes": {"creationDate": created, "mfaAuthenticated": "false"},
        },
    }


def update_trust_policy(identity: dict[str, Any], at: datetime, role: str, document: dict[str, Any], *, pretty: bool = False,
                        error: str | None = None, message: str | None = None) -> dict[str, Any]:
    """UpdateAssumeRolePolicy in the shape of the real records in ../shared/data/invictus-aws-dataset
    (Stratus Red Team backdooring a role): policyDocument is the string the caller sent, compact
    or pretty-printed. IAM's error codes carry "Exception" in CloudTrail (NoSuchEntityException there)."""
    text = json.dumps(document, indent=2) if pretty else json.dumps(document, separators=(",", ":"))
    record = _api(identity, at, "iam.amazonaws.com", "UpdateAssumeRolePolicy", {"policyDocument": text, "roleName": role},
                  error=error, message=message)
    record["readOnly"] = False
    return record


def trust(*principals: dict[str, Any] | str) -> dict[str, Any]:
    """A trust policy with one sts:AssumeRole statement per principal."""
    statements = [{"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"} for principal in principals]
    return {"Version": "2012-10-17", "Statement": statements}


def signin_token(identity: dict[str, Any], at: datetime, agent: str) -> dict[str, Any]:
    """GetSigninToken in the shape of the sign-in events of the CloudTrail User Guide's "AWS
    Management Console sign-in events" (signin.amazonaws.com, eventType AwsConsoleSignIn,
    requestParameters null, responseElements naming the outcome)."""
    record = _api(identity, at, "signin.amazonaws.com", "GetSigninToken", None, {"GetSigninToken": "Success"})
    record.update(eventType="AwsConsoleSignIn", userAgent=agent, readOnly=False)
    return record


def _created(record: dict[str, Any]) -> str:
    return str(record["eventTime"])


def scenario_objects() -> tuple[list[list[dict[str, Any]]], dict[str, set[str]]]:
    """(delivered objects, rule name -> eventIDs that must alert; burst rules: the failures counted)."""
    at = datetime(2026, 4, 1, 10, 0, tzinfo=UTC)
    records: list[dict[str, Any]] = []
    expected: dict[str, set[str]] = defaultdict(set)

    def add(record: dict[str, Any], *rules: str) -> dict[str, Any]:
        records.append(record)
        for rule in rules:
            expected[rule].add(record["eventID"])
        return record

    admin, dev, ops = user(A, "admin"), user(A, "dev"), user(A, "ops")
    # Benign: the approved admin on break-glass, a developer in hours, a service on its own
    # service-linked role, the partner, one mistyped role, a short chain.
    add(assume(admin, BREAK_GLASS, at))
    add(assume(dev, HUMAN, at + timedelta(minutes=1)))
    add(assume(service("ecs.amazonaws.com"), SLR, at + timedelta(minutes=2)))
    add(assume(thin({"accountId": P, "principalId": "AIDAPARTNER"}), PARTNER_ROLE, at + timedelta(minutes=3), recipient=A))
    add(assume(dev, f"arn:aws:iam::{A}:role/HumanDevs", at + timedelta(minutes=4), error="AccessDenied"),
        "assumerole_failed_assumption", "cloudtrail_failed_assumption")
    first = add(assume(dev, HOPS[0], at + timedelta(minutes=5)))
    add(assume(session_identity(HOPS[0], issued_key(first), "2026-04-01T10:05:00Z"), HOPS[1], at + timedelta(minutes=6)))

    # Attacks.
    add(assume(user(A, "mallory"), BREAK_GLASS, at + timedelta(minutes=10)), ENRICHED_UNAPPROVED, RAW_UNAPPROVED)
    for n in range(4):  # 4 failures in 3 minutes: more than the threshold of 3 within 5 minutes
        add(assume(user(A, "eve"), BREAK_GLASS, at + timedelta(minutes=20, seconds=50 * n), error="AccessDenied"),
            "assumerole_failed_assumption", "cloudtrail_failed_assumption")
    vendor = add(assume(thin({"accountId": X, "principalId": "AIDAOUTSIDER"}), VENDOR_ROLE, at + timedelta(minutes=30), recipient=A),
                 "assumerole_external_cross_account", "cloudtrail_external_cross_account")
    vendor_session = session_identity(VENDOR_ROLE, issued_key(vendor), "2026-04-01T10:30:00Z", "vendor")
    add(call(vendor_session, at + timedelta(minutes=31), "ListBuckets"), "assumerole_external_origin_activity")
    add(call(vendor_session, at + timedelta(minutes=32), "GetObject"), "assumerole_external_origin_activity")
    add(assume(dev, HUMAN, datetime(2026, 4, 1, 23, 0, tzinfo=UTC)), "assumerole_human_role_after_hours")
    add(assume(ops, SLR, at + timedelta(minutes=40)), "assumerole_service_linked_role_misuse", "cloudtrail_service_linked_role_misuse")
    hop1 = add(assume(ops, HOPS[0], at + timedelta(minutes=50)))
    hop2 = add(assume(session_identity(HOPS[0], issued_key(hop1), "2026-04-01T10:50:00Z"), HOPS[1], at + timedelta(minutes=51)))
    add(assume(session_identity(HOPS[1], issued_key(hop2), "2026-04-01T10:51:00Z"), HOPS[2], at + timedelta(minutes=52)),
        "assumerole_deep_or_sensitive_chain")
    hop_bg = add(assume(session_identity(HOPS[0], issued_key(hop1), "2026-04-01T10:50:00Z"), BREAK_GLASS, at + timedelta(minutes=53)),
                 "assumerole_deep_or_sensitive_chain", "cloudtrail_sensitive_role_via_role_session", ENRICHED_UNAPPROVED, RAW_UNAPPROVED)
    assert hop_bg
    add(assume(web_identity("repo:example/app:pull_request"), BREAK_GLASS, at + timedelta(minutes=55), event="AssumeRoleWithWebIdentity"),
        "assumerole_federated_sensitive_role", "cloudtrail_federated_sensitive_role", ENRICHED_UNAPPROVED, RAW_UNAPPROVED)

    # Service-linked role attempts that were denied: the attempt is the signal, from the
    # organisation as from a partner (whose denied attempt is logged in its own account only).
    add(assume(user(A, "tester"), SLR, at + timedelta(minutes=60), error="AccessDenied"), *SERVICE_LINKED, *FAILED)
    add(assume(user(P, "contractor"), SLR, at + timedelta(minutes=61), error="AccessDenied", recipient=P), *SERVICE_LINKED, *FAILED)

    # AssumeRoot: from the approved role's session (benign), by an IAM user, and denied to a
    # developer's role session (both not approved).
    root_tasks = add(assume(admin, ROOT_TASKS, at + timedelta(minutes=70)))
    add(assume_root(session_identity(ROOT_TASKS, issued_key(root_tasks), _created(root_tasks), "admin"), M, at + timedelta(minutes=71)))
    add(assume_root(user(A, "intern"), M, at + timedelta(minutes=72)), "cloudtrail_assume_root_unapproved")
    developer = add(assume(dev, HUMAN, at + timedelta(minutes=73)))
    add(assume_root(session_identity(HUMAN, issued_key(developer), _created(developer), "dev"), M, at + timedelta(minutes=74),
                    error="AccessDenied"), "cloudtrail_assume_root_unapproved")

    # GetFederationToken: a broker's narrow policies, for the default 12 hours at most (benign);
    # an unrestricted inline policy, AdministratorAccess, and 36 hours (the enriched rule only:
    # raw durationSeconds is a keyword in Elasticsearch); a denied attempt (benign).
    broker, mallory = user(A, "broker"), user(A, "mallory")
    reports = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::reports/*"}]}, separators=(",", ":"))
    everything = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}, separators=(",", ":"))
    brokered = add(federation_token(broker, at + timedelta(minutes=80), "reports", policy=reports, duration=3600))
    add(federation_token(broker, at + timedelta(minutes=81), "auditor", policy_arns=("arn:aws:iam::aws:policy/ReadOnlyAccess",)))
    add(federation_token(mallory, at + timedelta(minutes=82), "m1", policy=everything), *FEDERATION)
    add(federation_token(mallory, at + timedelta(minutes=83), "m2", policy_arns=("arn:aws:iam::aws:policy/AdministratorAccess",)),
        *FEDERATION)
    add(federation_token(ops, at + timedelta(minutes=84), "o1", policy=reports, duration=129600), "assumerole_federation_token_admin_or_long")
    add(federation_token(mallory, at + timedelta(minutes=85), "m3", policy=everything, error="AccessDenied"))

    # GetSigninToken: a role session's API credentials into a console session (also with IAM
    # Identity Center's role from a tool); Identity Center's portal itself and a federated user
    # of the broker are benign.
    deploy = add(assume(user(A, "ci"), DEPLOY, at + timedelta(minutes=90)))
    add(signin_token(session_identity(DEPLOY, issued_key(deploy), _created(deploy), "ci"), at + timedelta(minutes=91),
                     "python-requests/2.31.0"), "cloudtrail_signin_token_from_role_session")
    portal = add(assume(saml("alice@example.com"), IDENTITY_CENTER, at + timedelta(minutes=92), event="AssumeRoleWithSAML"))
    portal_session = session_identity(IDENTITY_CENTER, issued_key(portal), _created(portal), "alice@example.com")
    add(signin_token(portal_session, at + timedelta(minutes=93), "Jersey/${project.version}"))
    add(signin_token(federated_user(brokered, _created(brokered)), at + timedelta(minutes=94), "python-requests/2.31.0"))
    add(signin_token(portal_session, at + timedelta(minutes=95), "python-requests/2.31.0"), "cloudtrail_signin_token_from_role_session")

    # Trust policies: to the organisation's own role, to a service, to the partner (benign); a
    # backdoor for an outside account beside the service (as Stratus Red Team writes it), a
    # wildcard principal, an outside account by its bare id (attacks); a denied change (benign).
    service_principal = {"Service": "ec2.amazonaws.com"}
    add(update_trust_policy(admin, at + timedelta(minutes=100), "Reader", trust({"AWS": f"arn:aws:iam::{A}:role/Auditor"}), pretty=True))
    add(update_trust_policy(admin, at + timedelta(minutes=101), "Worker", trust(service_principal)))
    add(update_trust_policy(admin, at + timedelta(minutes=102), "PartnerRead", trust({"AWS": f"arn:aws:iam::{P}:root"})))
    add(update_trust_policy(mallory, at + timedelta(minutes=103), "Worker", trust(service_principal, {"AWS": f"arn:aws:iam::{X}:root"}),
                            pretty=True), "cloudtrail_trust_policy_external_principal")
    add(update_trust_policy(mallory, at + timedelta(minutes=104), "Reader", trust("*")), "cloudtrail_trust_policy_external_principal")
    add(update_trust_policy(mallory, at + timedelta(minutes=105), "Deploy", trust({"AWS": X})), "cloudtrail_trust_policy_external_principal")
    add(update_trust_policy(mallory, at + timedelta(minutes=106), "Deploy", trust("*"), error="AccessDenied",
                            message=f"User: {mallory['arn']} is not authorized to perform: iam:UpdateAssumeRolePolicy"))

    # Trust-policy enumeration: one mistyped principal (counted, no burst); a prober naming
    # guessed roles of the outside account, and one AssumeRole with a malformed session policy:
    # 5 in 2 minutes, more than the threshold of 2 within 5 minutes.
    enumeration = "cloudtrail_trust_policy_enumeration"

    def probe(who: dict[str, Any], moment: datetime, guess: str) -> dict[str, Any]:
        principal = f"arn:aws:iam::{X}:role/{guess}"
        return update_trust_policy(who, moment, "Probe", trust({"AWS": principal}), error="MalformedPolicyDocumentException",
                                   message=f'Invalid principal in policy: "AWS":"{principal}"')

    add(probe(dev, at + timedelta(minutes=110), "Auditr"), enumeration)
    prober = user(A, "prober")
    for n, guess in enumerate(("admin", "deploy", "ci", "backup")):
        add(probe(prober, at + timedelta(minutes=120, seconds=30 * n), guess), enumeration)
    malformed = assume(prober, READER, at + timedelta(minutes=122), error="MalformedPolicyDocument")
    malformed.update(requestParameters={"roleArn": READER, "roleSessionName": "probe", "policy": '{"Statement":['},
                     errorMessage="The policy is not in the valid JSON format.")
    add(malformed, enumeration, *FAILED)
    # One day is inside the behaviour baseline's learning period, and every address here is a
    # documentation one (no public network): none of its rules may alert.
    for rule in BASELINE_RULES:
        expected.setdefault(rule, set())
    return [records], dict(expected)
