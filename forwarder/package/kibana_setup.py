"""`forwarder setup kibana`: import the content pack through Kibana's HTTP APIs, idempotently.

What is already there is read first (saved objects: ``POST /api/saved_objects/_bulk_get``; rules:
``GET /api/detection_engine/rules?rule_id=``); only objects and rules that are missing or differ
are imported (``POST /api/saved_objects/_import?overwrite=true`` and
``POST /api/detection_engine/rules/_import?overwrite=true``, each an NDJSON file in a multipart
form), so a second run changes nothing. Every call carries ``kbn-xsrf`` and the API key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from forwarder.config import Config, KibanaConfig
from forwarder.package.kibana import detection_rules, rules_file, saved_objects, saved_objects_file

# What a rule that Kibana stores carries beside what was imported: not compared.
SERVER_RULE_KEYS = frozenset({"id", "version"})


class SetupError(Exception):
    """Kibana refused or could not be reached; the message says which and why (never the key)."""


@dataclass(frozen=True)
class Change:
    kind: str  # "saved object" or "detection rule"
    name: str
    action: str  # "create", "update" or "unchanged"


class Kibana:
    """The few Kibana API calls of the setup, over one HTTP session."""

    def __init__(self, settings: KibanaConfig) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/") + (f"/s/{settings.space}" if settings.space else "")
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"ApiKey {settings.api_key.get()}", "kbn-xsrf": "true",
                                     "Elastic-Api-Version": "2023-10-31"})
        # Given on each request: requests lets REQUESTS_CA_BUNDLE override a session's own setting.
        self.verify: str | bool = str(settings.ca_file) if settings.ca_file else settings.verify_tls

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = self.base + path
        try:
            response = self.session.request(method, url, timeout=self.settings.request_timeout_seconds,
                                            verify=self.verify, **kwargs)
        except requests.exceptions.SSLError:
            raise SetupError(f"kibana {self.settings.url}: its TLS certificate does not verify; give the CA that "
                             "signed it as kibana.ca_file (or verify_tls: false)") from None
        except requests.exceptions.RequestException as exc:
            raise SetupError(f"kibana {self.settings.url}: cannot be reached: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise SetupError(f"kibana {self.settings.url}: refused the API key of kibana.api_key "
                             f"({response.status_code} {_message(response)})")
        return response

    def import_file(self, path: str, name: str, data: bytes) -> dict[str, Any]:
        response = self.call("POST", path, params={"overwrite": "true"},
                             files={"file": (name, data, "application/ndjson")})
        if response.status_code != 200:
            raise SetupError(f"kibana {self.settings.url}: {path} answered {response.status_code}: {_message(response)}")
        return dict(response.json())

    def close(self) -> None:
        self.session.close()


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("message") or body) if isinstance(body, dict) else str(body)[:200]


def _same(wanted: dict[str, Any], existing: dict[str, Any], ignore: frozenset[str] = frozenset()) -> bool:
    return all(existing.get(key) == value for key, value in wanted.items() if key not in ignore)


def _object_changes(kibana: Kibana, objects: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Change]]:
    response = kibana.call("POST", "/api/saved_objects/_bulk_get",
                           json=[{"type": obj["type"], "id": obj["id"]} for obj in objects])
    if response.status_code != 200:
        raise SetupError(f"kibana {kibana.settings.url}: reading the saved objects answered "
                         f"{response.status_code}: {_message(response)}")
    found = {(obj["type"], obj["id"]): obj for obj in response.json()["saved_objects"] if "error" not in obj}
    changes = []
    for obj in objects:
        existing = found.get((obj["type"], obj["id"]))
        action = "create" if existing is None else (
            "unchanged" if _same(obj["attributes"], existing.get("attributes", {}))
            and _references(obj) == _references(existing) else "update")
        changes.append((obj, Change("saved object", f"{obj['type']} {obj['id']}", action)))
    return changes


def _references(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((ref["name"], ref["type"], ref["id"]) for ref in obj.get("references", []))


def _rule_changes(kibana: Kibana, rules: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Change]]:
    changes = []
    for rule in rules:
        response = kibana.call("GET", "/api/detection_engine/rules", params={"rule_id": rule["rule_id"]})
        if response.status_code == 404:
            action = "create"
        elif response.status_code == 200:
            action = "unchanged" if _same(rule, response.json(), SERVER_RULE_KEYS) else "update"
        else:
            raise SetupError(f"kibana {kibana.settings.url}: reading rule {rule['rule_id']} answered "
                             f"{response.status_code}: {_message(response)}")
        changes.append((rule, Change("detection rule", f"{rule['name']} ({rule['rule_id']})", action)))
    return changes


def _errors(result: dict[str, Any]) -> str:
    """What an import answer says went wrong, object by object (both APIs' shapes)."""
    found = []
    for error in result.get("errors", []):
        what = error.get("rule_id") or f"{error.get('type')} {error.get('id')}"
        reason = error.get("error", {})
        found.append(f"{what}: {reason.get('message') or reason.get('type')}")
    return "; ".join(found)


# What each import sends: (the API, the file's name, how the file is written).
IMPORTS = {
    "saved object": ("/api/saved_objects/_import", "cloudtrail-assumerole-kibana.ndjson", saved_objects_file),
    "detection rule": ("/api/detection_engine/rules/_import", "cloudtrail-assumerole-rules.ndjson", rules_file),
}


def setup_kibana(config: Config, dry_run: bool = False) -> list[Change]:
    """Import what is missing or differs; with ``dry_run``, only say what would change."""
    settings = config.kibana
    if settings is None:
        raise SetupError("the configuration has no kibana section: it says where to import the content pack")
    kibana = Kibana(settings)
    try:
        planned = _object_changes(kibana, saved_objects(settings)) + _rule_changes(kibana, detection_rules(config, settings))
        for kind, (path, name, write) in IMPORTS.items():
            wanted = [item for item, change in planned if change.kind == kind and change.action != "unchanged"]
            if wanted and not dry_run:
                result = kibana.import_file(path, name, write(wanted))
                if not result.get("success"):
                    raise SetupError(f"kibana {settings.url}: the {kind} import failed: {_errors(result)}")
    finally:
        kibana.close()
    return [change for _, change in planned]
