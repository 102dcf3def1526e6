"""One scheduled saved search per rule in Splunk, through splunk-sdk, created or updated idempotently.

The rules are generated from the configuration and converted with the Splunk backend; each
becomes the alert of forwarder/rules/splunk_alerts.py. A search whose settings already match is
left alone; a dry run reports what would change and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from splunklib import binding, client

from forwarder.config import Config, ConfigError, SplunkAlerts, SplunkSavedSearches
from forwarder.rules.convert import convert, generated_rules
from forwarder.rules.splunk_alerts import SavedSearch, alert


class DeployError(Exception):
    """Splunk refused or could not be reached; the message says which and why."""


@dataclass
class Change:
    name: str
    action: str  # "create", "update" or "unchanged"
    fields: list[str] = field(default_factory=list)

    def describe(self) -> str:
        if self.action == "update":
            return f"update {self.name!r}: {', '.join(self.fields)}"
        return f"{self.action} {self.name!r}"


def settings_of(config: Config) -> SplunkSavedSearches:
    if config.detections.splunk is None:
        raise ConfigError("detections.splunk is not configured: it says where to create the saved searches")
    return config.detections.splunk


def saved_searches(config: Config, settings: SplunkAlerts | None = None) -> list[SavedSearch]:
    """The saved searches the configuration's rules become (with detections.splunk's settings unless
    ``settings`` are given)."""
    settings = settings or settings_of(config)
    with generated_rules(config) as rules:
        return [alert(converted, settings) for form in settings.forms for converted in convert(rules / form, "splunk").results]


def _connect(settings: SplunkSavedSearches) -> client.Service:
    kwargs: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "scheme": settings.scheme,
        "owner": settings.owner,
        "app": settings.app,
        "verify": settings.verify_tls,
    }
    if settings.token is not None:
        kwargs["splunkToken"] = settings.token.get()
    else:
        assert settings.password is not None
        kwargs["username"] = settings.username
        kwargs["password"] = settings.password.get()
    where = f"{settings.scheme}://{settings.host}:{settings.port}"
    try:
        return client.connect(**kwargs)
    except binding.AuthenticationError:
        raise DeployError(f"splunk {where}: login refused for user {settings.username!r}") from None
    except (OSError, binding.HTTPError) as exc:
        raise DeployError(f"splunk {where}: {exc}") from None


def _plan(service: client.Service, wanted: list[SavedSearch]) -> Iterator[tuple[SavedSearch, Change, client.Entity | None]]:
    for search in wanted:
        try:
            existing = service.saved_searches[search.name]
        except KeyError:
            yield search, Change(search.name, "create"), None
            continue
        content = existing.content
        changed = sorted(key for key, value in search.params.items() if str(content.get(key, "")) != value)
        yield search, Change(search.name, "update" if changed else "unchanged", changed), existing


def deploy(config: Config, dry_run: bool = False) -> list[Change]:
    """Create or update the saved searches; with ``dry_run``, only say what would change."""
    settings = settings_of(config)
    wanted = saved_searches(config)
    service = _connect(settings)
    changes: list[Change] = []
    current = wanted[0].name if wanted else ""
    try:
        for search, change, existing in _plan(service, wanted):
            current = search.name
            changes.append(change)
            if dry_run or change.action == "unchanged":
                continue
            if existing is None:
                service.saved_searches.create(search.name, **search.params)
            else:
                existing.update(**{key: search.params[key] for key in change.fields})
    except (binding.HTTPError, binding.AuthenticationError) as exc:
        raise DeployError(f"splunk refused saved search {current!r}: {exc}") from None
    return changes
