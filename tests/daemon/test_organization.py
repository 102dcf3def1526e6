"""Organization discovery against moto's Organizations API, cached in the state store."""

from __future__ import annotations

import boto3
import pytest
from aws_world import World, log_key, when
from cloudtrail import assume, user

from forwarder.config import OrganizationConfig
from forwarder.organization import DiscoveredOrganization, list_accounts
from forwarder.state.sqlite import SqliteStore


def _member_account(name: str) -> str:
    """A new member of moto's organization (created once per session, by its management account)."""
    organizations = boto3.client("organizations")
    try:
        organizations.create_organization(FeatureSet="ALL")
    except organizations.exceptions.AlreadyInOrganizationException:
        pass
    member = organizations.create_account(AccountName=name, Email=f"{name}@example.com")
    return organizations.describe_create_account_status(
        CreateAccountRequestId=member["CreateAccountStatus"]["Id"])["CreateAccountStatus"]["AccountId"]


def test_discovered_accounts_count_with_the_static_ones_and_are_cached(moto_url: str) -> None:
    member_id = _member_account("member")

    store = SqliteStore()
    config = OrganizationConfig(discover=True, accounts=["999999999999"], refresh_seconds=600)
    found = DiscoveredOrganization(config, store)
    assert found.contains(member_id)
    assert found.contains("999999999999")
    assert not found.contains("444444444444")
    assert member_id in list_accounts(None)

    def unreachable(_role: str | None) -> list[str]:
        raise AssertionError("a fresh cache must not ask the API again")

    assert DiscoveredOrganization(config, store, unreachable).contains(member_id)


def test_a_failed_refresh_keeps_the_last_known_accounts() -> None:
    answers: list[list[str] | Exception] = [["111111111111"], RuntimeError("throttled")]

    def lister(_role: str | None) -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    found = DiscoveredOrganization(OrganizationConfig(discover=True, refresh_seconds=60), SqliteStore(), lister)
    found.refresh(now=10**10)  # long after: the cache is stale, the API fails
    assert answers == []
    assert found.contains("111111111111")


def test_discovery_through_an_assumed_role(moto_url: str) -> None:
    member_id = _member_account("audited")
    role = boto3.client("iam").create_role(RoleName="OrganizationReader", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    assert member_id in list_accounts(role)


@pytest.mark.parametrize("discover", [True, False])
def test_the_daemon_counts_a_discovered_member_as_inside_the_organization(world: World, discover: bool) -> None:
    """A member account assumes a role in the management account: inside the organization once
    discovery has listed it, external when only the static list (the management account) is known."""
    member_id = _member_account(f"workloads-{discover}")
    management = boto3.client("organizations").describe_organization()["Organization"]["MasterAccountId"]
    record = assume(user(member_id, "deployer"), f"arn:aws:iam::{management}:role/Deploy", when("2026-03-31T08:00:00Z"))
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [world.put_log(log_key(member_id, "2026/03/31", "0800"), [record])]})
    assert world.run(world.config(organization={"discover": discover, "accounts": [management]})) == 0
    [document] = world.documents()
    caller = document["assumerole"]["caller"]
    assert (caller["in_org"], caller["external"]) == ((True, False) if discover else (False, True))
