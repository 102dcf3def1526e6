"""The rule kit's own scenario: benign traffic plus each attack, built from tests/cloudtrail.py.

Each record is made with the names of the rules that must alert on it, so the expected alerts
come from how the scenario was built, not from running the rules. One organisation account
(A), a partner (P), an outside account (X); Wednesday 2026-04-01, business hours 08-18 UTC.
The configuration differs from the demo's on purpose: max_chain_depth 2, burst threshold 3 in
5 minutes, so the generated rules' numbers are exercised.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudtrail import assume, call, issued_key, service, session_identity, thin, user, web_identity

from forwarder.config import parse_config

A, P, X = "111122223333", "444455556666", "999900001111"
BREAK_GLASS = f"arn:aws:iam::{A}:role/BreakGlass"
HUMAN = f"arn:aws:iam::{A}:role/HumanDev"
SLR = f"arn:aws:iam::{A}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
PARTNER_ROLE = f"arn:aws:iam::{A}:role/PartnerRead"
VENDOR_ROLE = f"arn:aws:iam::{A}:role/VendorIntegration"
HOPS = [f"arn:aws:iam::{A}:role/Hop{n}" for n in (1, 2, 3)]

SCENARIO_CONFIG = parse_config(
    {
        "organization": {"accounts": [A], "approved_partners": [P]},
        "roles": {
            "sensitive": [{"pattern": "arn:aws:iam::*:role/BreakGlass", "approved_principals": [f"arn:aws:iam::{A}:user/admin"]}],
            "human": {
                "patterns": ["arn:aws:iam::*:role/Human*"],
                "business_hours": {"timezone": "UTC", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
            },
        },
        "select": "all",
        "detections": {"max_chain_depth": 2, "failed_assumptions": {"threshold": 3, "window_minutes": 5}},
    },
    "scenario",
)

ENRICHED_UNAPPROVED = "assumerole_sensitive_role_unapproved"
RAW_UNAPPROVED = "cloudtrail_sensitive_role_unapproved_breakglass"


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
    return [records], dict(expected)
