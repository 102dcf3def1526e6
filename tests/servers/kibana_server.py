"""The part of Kibana's HTTP API that `forwarder setup kibana` uses, for tests.

No Kibana runs here; this server answers as Kibana 8.x's saved-objects and detection-rules APIs
are documented to, and refuses what Kibana refuses:

* Authentication on every call: ``Authorization: ApiKey <key>``; otherwise 401 with Kibana's
  ``{"statusCode": 401, "error": "Unauthorized", "message": ...}``.
* ``kbn-xsrf`` on every request that is not a GET: 400 "Request must contain a kbn-xsrf header.".
* A space: ``/s/<space>/api/...``; a space that does not exist is 404.
* ``POST /api/saved_objects/_bulk_get`` (a JSON array of ``{type, id}``): ``{"saved_objects": [...]}``,
  a missing object as ``{id, type, error: {statusCode: 404, ...}}``.
* ``POST /api/saved_objects/_import[?overwrite=true]``: ``multipart/form-data`` with a ``file``
  part whose name ends in ``.ndjson`` (else 400/415 as Kibana answers); the export's summary line
  is skipped; an object of an unknown type is an ``unsupported_type`` error, one whose
  references resolve neither in the file nor in the space a ``missing_references`` error, one that
  exists without ``overwrite`` a ``conflict``; ``{success, successCount, successResults, errors}``.
* ``GET /api/detection_engine/rules?rule_id=``: the rule as stored (with the server's ``id``,
  ``created_at``, ``updated_at``, ``revision``), or 404.
* ``POST /api/detection_engine/rules/_import[?overwrite=true]``: the same multipart form; each
  rule must carry what the detection engine requires of its type (rule_id, name, description,
  risk_score 0-100, severity, type, index, and the type's query, language or threshold); a rule
  that exists without ``overwrite`` is a 409 error; ``{success, success_count, rules_count, errors, ...}``.

``state.calls`` records (method, path) of each request; ``state.writes`` counts stored changes.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from servers.background import Background
from servers.certificates import ServerCertificate
from servers.ports import free_port

SAVED_OBJECT_TYPES = frozenset({"index-pattern", "search", "lens", "dashboard", "visualization"})
SEVERITIES = frozenset({"low", "medium", "high", "critical"})
RULE_TYPES = {"query": ("query", "language"), "threshold": ("query", "language", "threshold"),
              "eql": ("query", "language"), "esql": ("query", "language")}
MAX_IMPORT_BYTES = 26214400  # savedObjects.maxImportPayloadBytes


class KibanaError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class KibanaState:
    api_key: str = "a2liYW5hOnRlc3Qta2V5"
    spaces: set[str] = field(default_factory=lambda: {"default"})
    # (space, type, id) -> saved object; (space, rule_id) -> rule
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    rules: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    writes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _ndjson(handler: BaseHTTPRequestHandler, body: bytes, summary_key: str) -> list[dict[str, Any]]:
    """The objects of the multipart form's ``file`` part, without the export's summary line."""
    content_type = handler.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/form-data"):
        raise KibanaError(415, "Unsupported Media Type")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    part = next((p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"), None)
    if part is None:
        raise KibanaError(400, '[request body.file]: expected value of type [Stream] but got [undefined]')
    filename = part.get_filename() or ""
    if not filename.endswith(".ndjson"):
        raise KibanaError(400, f"Invalid file extension {filename[filename.rfind('.'):] or filename}")
    found = []
    for number, line in enumerate(part.get_payload(decode=True).decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError:
            raise KibanaError(400, f"Unexpected token in JSON at line {number}") from None
        if summary_key not in item:
            found.append(item)
    return found


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        state = self.server.state
        parts = urlsplit(self.path)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with state.lock:
            state.calls.append((method, parts.path))
        try:
            if self.headers.get("Authorization") != f"ApiKey {state.api_key}":
                raise KibanaError(401, "[security_exception]: unable to authenticate with provided credentials")
            if method != "GET" and "kbn-xsrf" not in self.headers:
                raise KibanaError(400, "Request must contain a kbn-xsrf header.")
            space, path = "default", parts.path
            if path.startswith("/s/"):
                space, _, rest = path[3:].partition("/")
                path = "/" + rest
                if space not in state.spaces:
                    raise KibanaError(404, "Not Found")
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            with state.lock:
                status, answer = self._route(method, path, space, query, body)
        except KibanaError as exc:
            status = exc.status
            answer = {"statusCode": status, "error": {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                                                      413: "Request Entity Too Large",
                                                      415: "Unsupported Media Type"}.get(status, "Error"),
                      "message": str(exc)}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, path: str, space: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        if len(body) > MAX_IMPORT_BYTES:
            raise KibanaError(413, f"Payload content length greater than maximum allowed: {MAX_IMPORT_BYTES}")
        overwrite = query.get("overwrite") == "true"
        if (method, path) == ("POST", "/api/saved_objects/_bulk_get"):
            return 200, self._bulk_get(space, json.loads(body))
        if (method, path) == ("POST", "/api/saved_objects/_import"):
            return 200, self._import_objects(space, _ndjson(self, body, "exportedCount"), overwrite)
        if (method, path) == ("GET", "/api/detection_engine/rules"):
            rule = self.server.state.rules.get((space, query.get("rule_id", "")))
            if rule is None:
                return 404, {"status_code": 404, "message": f'rule_id: "{query.get("rule_id")}" not found'}
            return 200, rule
        if (method, path) == ("POST", "/api/detection_engine/rules/_import"):
            return 200, self._import_rules(space, _ndjson(self, body, "exported_count"), overwrite)
        raise KibanaError(404, "Not Found")

    def _bulk_get(self, space: str, wanted: list[dict[str, str]]) -> dict[str, Any]:
        found = []
        for item in wanted:
            obj = self.server.state.objects.get((space, item["type"], item["id"]))
            found.append(obj if obj is not None else {"id": item["id"], "type": item["type"], "error": {
                "statusCode": 404, "error": "Not Found",
                "message": f"Saved object [{item['type']}/{item['id']}] not found"}})
        return {"saved_objects": found}

    def _import_objects(self, space: str, objects: list[dict[str, Any]], overwrite: bool) -> dict[str, Any]:
        state = self.server.state
        in_file = {(obj.get("type"), obj.get("id")) for obj in objects}
        results, errors = [], []
        for obj in objects:
            kind, object_id = obj.get("type"), obj.get("id")
            title = (obj.get("attributes") or {}).get("title")
            base = {"id": object_id, "type": kind, "title": title, "meta": {"title": title}}
            if kind not in SAVED_OBJECT_TYPES or not isinstance(obj.get("attributes"), dict):
                errors.append({**base, "error": {"type": "unsupported_type"}})
                continue
            missing = [{"type": ref["type"], "id": ref["id"]} for ref in obj.get("references", [])
                       if (ref["type"], ref["id"]) not in in_file and (space, ref["type"], ref["id"]) not in state.objects]
            if missing:
                errors.append({**base, "error": {"type": "missing_references", "references": missing}})
                continue
            if (space, kind, object_id) in state.objects and not overwrite:
                errors.append({**base, "error": {"type": "conflict"}})
                continue
            replaced = (space, kind, object_id) in state.objects
            state.objects[(space, kind, object_id)] = {
                "id": object_id, "type": kind, "attributes": obj["attributes"], "references": obj.get("references", []),
                "namespaces": [space], "version": uuid.uuid4().hex[:8], "managed": False}
            state.writes += 1
            results.append({"id": object_id, "type": kind, "meta": {"title": title}, **({"overwrite": True} if replaced else {})})
        return {"success": not errors, "successCount": len(results), "successResults": results, "errors": errors}

    def _import_rules(self, space: str, rules: list[dict[str, Any]], overwrite: bool) -> dict[str, Any]:
        state = self.server.state
        errors, imported = [], 0
        for rule in rules:
            rule_id = rule.get("rule_id")
            problem = _rule_problem(rule)
            if problem is None and (space, rule_id) in state.rules and not overwrite:
                problem = (409, f'rule_id: "{rule_id}" already exists')
            if problem is not None:
                errors.append({"rule_id": rule_id, "error": {"status_code": problem[0], "message": problem[1]}})
                continue
            previous = state.rules.get((space, rule_id))
            state.rules[(space, rule_id)] = {
                **rule, "id": previous["id"] if previous else str(uuid.uuid4()), "created_at": "2026-01-01T00:00:00.000Z",
                "updated_at": "2026-01-01T00:00:00.000Z", "revision": previous["revision"] + 1 if previous else 0}
            state.writes += 1
            imported += 1
        return {"success": not errors, "success_count": imported, "rules_count": len(rules), "errors": errors,
                "exceptions_errors": [], "exceptions_success": True, "exceptions_success_count": 0,
                "action_connectors_success": True, "action_connectors_success_count": 0,
                "action_connectors_errors": [], "action_connectors_warnings": []}


def _rule_problem(rule: dict[str, Any]) -> tuple[int, str] | None:
    for key in ("rule_id", "name", "description", "risk_score", "severity", "type"):
        if key not in rule:
            return 400, f"{key}: Required"
    if not isinstance(rule["risk_score"], int) or not 0 <= rule["risk_score"] <= 100:
        return 400, "risk_score: Number must be between 0 and 100"
    if rule["severity"] not in SEVERITIES:
        return 400, f"severity: Invalid enum value. Expected {' | '.join(sorted(SEVERITIES))}"
    if rule["type"] not in RULE_TYPES:
        return 400, f"type: Invalid discriminator value. Expected {' | '.join(RULE_TYPES)}"
    for key in RULE_TYPES[rule["type"]]:
        if key not in rule:
            return 400, f"{key}: Required"
    if rule["type"] == "threshold" and not (isinstance(rule["threshold"].get("field"), list)
                                            and isinstance(rule["threshold"].get("value"), int)):
        return 400, "threshold: Expected field (array) and value (integer)"
    if not rule.get("index") and not rule.get("data_view_id"):
        return 400, "index or data_view_id: Required for a query rule"
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: KibanaState) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state


class KibanaServer(Background):
    """On 127.0.0.1; over HTTPS with ``certificate`` (tests/servers/certificates.py)."""

    thread_name = "kibana-test-server"

    def __init__(self, certificate: ServerCertificate | None = None) -> None:
        self.state = KibanaState()
        self.port = free_port()
        self._httpd = _Server(self.port, self.state)
        self.scheme = "https" if certificate else "http"
        if certificate:
            self._httpd.socket = certificate.server_context().wrap_socket(self._httpd.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"
