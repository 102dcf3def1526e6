"""Each converted rule as a scheduled Splunk alert: the stanzas `forwarder sigma deploy splunk`
creates through the REST API, `forwarder sigma convert --format savedsearches` prints, and the
Splunk app ships in its savedsearches.conf (one definition for the three).

A search is named ``<name_prefix><rule name>`` (the Sigma ``name``, stable across title edits);
its description names the rule's id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from forwarder.config import SplunkAlerts
from forwarder.rules.convert import Converted, level_of, prefixed

# Sigma level -> Splunk alert.severity (1 debug, 2 info, 3 warning, 4 error, 5 severe, 6 fatal).
SEVERITY = {"informational": "2", "low": "3", "medium": "4", "high": "5", "critical": "6"}
# The REST API and savedsearches.conf name four settings differently (savedsearches.conf.spec).
CONF_KEYS = {"is_scheduled": "enableSched", "alert_type": "counttype", "alert_comparator": "relation",
             "alert_threshold": "quantity"}


@dataclass(frozen=True)
class SavedSearch:
    name: str
    rule_id: str
    params: dict[str, str]  # as the REST API names them


def alert(converted: Converted, settings: SplunkAlerts) -> SavedSearch:
    rule = converted.rule
    description = " ".join((rule.description or rule.title).split())
    params = {
        "search": prefixed(settings.search_prefix, converted.outputs[0]),
        "description": f"{rule.title}. {description} (Sigma rule {rule.id}, {rule.name})",
        "is_scheduled": "1",
        "cron_schedule": settings.cron_schedule,
        "dispatch.earliest_time": f"-{settings.lookback}",
        "dispatch.latest_time": "now",
        "dispatch.index_earliest": f"-{settings.index_window}@m",
        "dispatch.index_latest": "@m",
        "alert_type": "number of events",
        "alert_comparator": "greater than",
        "alert_threshold": "0",
        "alert.severity": SEVERITY[level_of(rule)],
        "alert.track": "1",
        "alert.digest_mode": "1",
    }
    return SavedSearch(f"{settings.name_prefix}{rule.name}", str(rule.id), params)


def conf_value(value: str) -> str:
    # A .conf value goes on over the next line after a trailing backslash; the line break is kept.
    return "\\\n".join(value.splitlines())


def conf_text(searches: Iterable[SavedSearch], extra: dict[str, str] | None = None) -> str:
    """savedsearches.conf with one stanza per search (``extra`` settings added to each)."""
    stanzas = []
    for search in searches:
        lines = [f"[{search.name}]"]
        for key, value in {**search.params, **(extra or {})}.items():
            lines.append(f"{CONF_KEYS.get(key, key)} = {conf_value(value)}")
        stanzas.append("\n".join(lines) + "\n")
    return "\n".join(stanzas)
