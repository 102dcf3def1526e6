"""Organization discovery against moto's Organizations API, cached in the state store."""

from __future__ import annotations

import boto3

from forwarder.config import OrganizationConfig
from forwarder.organization import DiscoveredOrganization, list_accounts
from forwarder.state.sqlite import SqliteStore


def test_discovered_accounts_count_with_the_static_ones_and_are_cached(moto_url: str) -> None:
    organizations = boto3.client("organizations")
    try:
        organizations.create_organization(FeatureSet="ALL")
    except organizations.exceptions.AlreadyInOrganizationException:
        pass
    member = organizations.create_account(AccountName="member", Email="member@example.com")
    member_id = organizations.describe_create_account_status(
        CreateAccountRequestId=member["CreateAccountStatus"]["Id"])["CreateAccountStatus"]["AccountId"]

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
