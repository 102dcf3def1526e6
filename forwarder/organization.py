"""The AWS Organization's accounts, discovered through the Organizations API.

Listed from the management account or a delegated administrator (optionally through an
assumed role), cached in the state store (kind ``org``) so that a restart, or the other
processes sharing a Redis store, do not ask again before ``refresh_seconds``. The static
``accounts`` list still counts; a failed refresh keeps the last known list.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from forwarder import aws
from forwarder.config import OrganizationConfig
from forwarder.state.base import StateStore

log = logging.getLogger("forwarder.organization")

CACHE_KIND, CACHE_KEY = "org", "accounts"
SESSION_NAME = "cloudtrail-assumerole-forwarder"


def list_accounts(role_arn: str | None) -> list[str]:
    import boto3  # here: a forwarder that never discovers its organization has no use for it

    session = None
    if role_arn:
        credentials = aws.client("sts").assume_role(RoleArn=role_arn, RoleSessionName=SESSION_NAME)["Credentials"]
        session = boto3.Session(
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
    organizations = aws.client("organizations", session=session)
    accounts: list[str] = []
    for page in organizations.get_paginator("list_accounts").paginate():
        accounts.extend(account["Id"] for account in page["Accounts"])
    return accounts


class DiscoveredOrganization:
    """The Organization protocol (``contains``) over the static list plus the discovered one."""

    def __init__(self, config: OrganizationConfig, store: StateStore, lister: Any = list_accounts) -> None:
        self._config = config
        self._store = store
        self._lister = lister
        self._static = frozenset(config.accounts)
        self._discovered: frozenset[str] = frozenset()
        self._fetched_at = 0.0
        self.refresh()

    def contains(self, account_id: str) -> bool:
        return account_id in self._static or account_id in self._discovered

    def refresh(self, now: float | None = None) -> None:
        """Take the cache if it is fresh, else ask the API; called at start and by the daemon's tick."""
        now = time.time() if now is None else now
        if now - self._fetched_at < self._config.refresh_seconds:
            return
        cached = self._store.get(CACHE_KIND, CACHE_KEY)
        if cached is not None:
            entry = orjson.loads(cached)
            if now - entry["fetched_at"] < self._config.refresh_seconds:
                self._set(entry["accounts"], entry["fetched_at"])
                return
        try:
            accounts = self._lister(self._config.role_arn)
        except Exception as exc:  # noqa: BLE001 - keep the last known list; say why
            log.error("organization discovery failed: keeping the last known accounts",
                      extra={"reason": str(exc), "known_accounts": len(self._discovered)})
            self._fetched_at = now - self._config.refresh_seconds + 60  # try again in a minute
            return
        self._store.put(CACHE_KIND, CACHE_KEY, orjson.dumps({"fetched_at": now, "accounts": accounts}))
        self._set(accounts, now)
        log.info("organization accounts discovered", extra={"accounts": len(accounts)})

    def _set(self, accounts: list[str], fetched_at: float) -> None:
        self._discovered = frozenset(accounts)  # one reference swap: readers never see a half list
        self._fetched_at = fetched_at
