"""The part of splunkd's REST API that saved-search deployment uses, for tests.

No Splunk can be installed here; this server answers the calls splunk-sdk (splunklib.client)
really makes, in the shapes it parses, and refuses what splunkd refuses:

* ``POST /services/auth/login`` (``username``, ``password``, ``cookie=1``): ``<response><sessionKey>``
  plus a ``splunkd_<port>`` cookie; 401 on bad credentials.
* Authentication on every other call: ``Authorization: Splunk <sessionKey>``, the session cookie,
  or ``Authorization: Bearer <token>`` (an authentication token); otherwise 401.
* ``GET /servicesNS/<owner>/<app>/saved/searches`` and ``.../saved/searches/<name>``: an Atom feed
  (``<feed><entry>`` with ``<s:dict>`` content and an ``eai:acl``), or JSON with ``output_mode=json``;
  404 for a name that does not exist.
* ``POST .../saved/searches`` (``name`` and ``search`` required): 201; 409 when the name exists.
* ``POST .../saved/searches/<name>``: update; 404 when missing; ``name`` may not be changed.
* ``DELETE .../saved/searches/<name>``.

Every parameter must be one splunkd knows for saved searches (400 "Argument ... is not supported
by this handler" otherwise), and the values it checks are checked: cron_schedule (five fields),
alert_type, alert_comparator, alert.severity (1-6), booleans, a schedule needs a cron_schedule.
Errors come as ``<response><messages><msg type="ERROR">`` like splunkd's.

``server.calls`` records (method, path, params) of each request, for assertions.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit
from xml.sax.saxutils import escape

ATOM = "http://www.w3.org/2005/Atom"
REST = "http://dev.splunk.com/ns/rest"
KNOWN = frozenset(
    {
        "search", "description", "disabled", "is_scheduled", "is_visible", "cron_schedule",
        "schedule_window", "schedule_priority", "realtime_schedule", "max_concurrent",
        "dispatch.earliest_time", "dispatch.latest_time", "dispatch.index_earliest", "dispatch.index_latest",
        "dispatch.ttl", "dispatch.buckets", "dispatch.max_count", "dispatch.max_time",
        "alert_type", "alert_comparator", "alert_threshold", "alert_condition", "alert.severity",
        "alert.track", "alert.digest_mode", "alert.expires", "alert.suppress", "alert.suppress.period",
        "alert.suppress.fields", "actions", "action.email", "action.email.to", "action.webhook",
        "action.webhook.param.url", "request.ui_dispatch_app", "request.ui_dispatch_view",
    }
)
BOOLEANS = frozenset({"disabled", "is_scheduled", "is_visible", "alert.track", "alert.digest_mode", "alert.suppress"})
ALERT_TYPES = frozenset({"always", "custom", "number of events", "number of hosts", "number of sources"})
COMPARATORS = frozenset(
    {"greater than", "less than", "equal to", "not equal to", "drops by", "rises by", "drops by perc", "rises by perc"}
)
TRUE, FALSE = frozenset({"1", "true", "t", "yes", "y"}), frozenset({"0", "false", "f", "no", "n"})


class RestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class SplunkRestState:
    username: str = "admin"
    password: str = "changeme"
    tokens: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    # (owner, app, name) -> content
    searches: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _validate(params: dict[str, str], creating: bool) -> None:
    for key in params:
        if key not in KNOWN:
            raise RestError(400, f'Argument "{key}" is not supported by this handler.')
    for key in BOOLEANS & params.keys():
        if params[key].lower() not in TRUE | FALSE:
            raise RestError(400, f"Invalid value for {key}: {params[key]!r} is not a boolean")
    if creating and not params.get("search"):
        raise RestError(400, "Cannot create search without a search string")
    if "cron_schedule" in params and len(params["cron_schedule"].split()) != 5:
        raise RestError(400, f"Invalid cron_schedule: {params['cron_schedule']!r}")
    if "alert_type" in params and params["alert_type"] not in ALERT_TYPES:
        raise RestError(400, f"Invalid alert_type: {params['alert_type']!r}")
    if "alert_comparator" in params and params["alert_comparator"] not in COMPARATORS:
        raise RestError(400, f"Invalid alert_comparator: {params['alert_comparator']!r}")
    if "alert.severity" in params and params["alert.severity"] not in {"1", "2", "3", "4", "5", "6"}:
        raise RestError(400, f"Invalid alert.severity: {params['alert.severity']!r} (1-6)")


def _dict_xml(content: dict[str, Any]) -> str:
    keys = []
    for key, value in content.items():
        inner = _dict_xml(value) if isinstance(value, dict) else escape(str(value))
        keys.append(f'<s:key name="{escape(key)}">{inner}</s:key>')
    return f"<s:dict>{''.join(keys)}</s:dict>"


class Handler(BaseHTTPRequestHandler):
    server: SplunkRestServer
    # splunklib closes its connection right after reading the status line and reads the body from
    # the response afterwards: that works only when the server closes each connection, as splunkd does.
    protocol_version = "HTTP/1.0"

    def log_message(self, *args: Any) -> None:  # quiet in tests
        pass

    # -- plumbing -------------------------------------------------------------------------
    def _params(self) -> tuple[str, dict[str, str], dict[str, str]]:
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        body = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True)) if length else {}
        return parts.path, query, body

    def _send(self, status: int, body: str, content_type: str = "text/xml; charset=utf-8", headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, f'<?xml version="1.0" encoding="UTF-8"?>\n<response><messages><msg type="ERROR">{escape(message)}</msg></messages></response>')

    def _authenticated(self) -> bool:
        state = self.server.state
        header = self.headers.get("Authorization", "")
        if header.startswith("Splunk ") and header[7:] in state.sessions:
            return True
        if header.startswith("Bearer ") and header[7:] in state.tokens:
            return True
        cookie = self.headers.get("Cookie", "")
        name = f"splunkd_{self.server.server_address[1]}="
        return any(part.strip().startswith(name) and part.strip()[len(name):] in state.sessions for part in cookie.split(";"))

    # -- verbs ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        path, query, body = self._params()
        state = self.server.state
        with state.lock:
            state.calls.append((method, path, {**query, **body}))
        try:
            if path == "/services/auth/login" and method == "POST":
                self._login(body)
                return
            if not self._authenticated():
                raise RestError(401, "call not properly authenticated")
            parts = path.strip("/").split("/")
            if len(parts) not in (5, 6) or parts[0] != "servicesNS" or parts[3:5] != ["saved", "searches"]:
                raise RestError(404, f"no such endpoint {path}")
            owner, app = parts[1], parts[2]
            name = unquote_plus(parts[5]) if len(parts) == 6 else None
            output_mode = query.pop("output_mode", body.pop("output_mode", "xml"))
            if output_mode not in ("xml", "json"):
                raise RestError(400, f"Invalid output_mode: {output_mode}")
            status, entries = self._saved_searches(method, owner, app, name, query, body)
            self._feed(status, owner, app, entries, output_mode)
        except RestError as exc:
            self._error(exc.status, str(exc))

    def _login(self, body: dict[str, str]) -> None:
        state = self.server.state
        if body.get("username") != state.username or body.get("password") != state.password:
            raise RestError(401, "Login failed")
        key = secrets.token_hex(16)
        with state.lock:
            state.sessions.add(key)
        headers = {"Set-Cookie": f"splunkd_{self.server.server_address[1]}={key}; Path=/; HttpOnly"} if body.get("cookie") == "1" else {}
        self._send(200, f"<response>\n  <sessionKey>{key}</sessionKey>\n</response>", headers=headers)

    def _saved_searches(
        self, method: str, owner: str, app: str, name: str | None, query: dict[str, str], body: dict[str, str]
    ) -> tuple[int, list[tuple[str, dict[str, str]]]]:
        store = self.server.state.searches
        with self.server.state.lock:
            if method == "GET":
                unknown = set(query) - {"count", "offset", "search", "sort_key", "sort_dir", "f", "listDefaultActionArgs"}
                if unknown:
                    raise RestError(400, f'Argument "{sorted(unknown)[0]}" is not supported by this handler.')
                if name is None:
                    return 200, [(n, c) for (o, a, n), c in sorted(store.items()) if (o, a) == (owner, app)]
                if (owner, app, name) not in store:
                    raise RestError(404, f"Could not find object id={name}")
                return 200, [(name, store[(owner, app, name)])]
            if method == "DELETE":
                if name is None or store.pop((owner, app, name), None) is None:
                    raise RestError(404, f"Could not find object id={name}")
                return 200, []
            if name is None:  # create
                new_name = body.pop("name", "")
                if not new_name:
                    raise RestError(400, "Missing required argument: name")
                _validate(body, creating=True)
                if (owner, app, new_name) in store:
                    raise RestError(409, f"An object with name={new_name} already exists")
                if body.get("is_scheduled", "0").lower() in TRUE and not body.get("cron_schedule"):
                    raise RestError(400, "A scheduled search needs a cron_schedule")
                store[(owner, app, new_name)] = dict(body)
                return 201, [(new_name, store[(owner, app, new_name)])]
            if (owner, app, name) not in store:
                raise RestError(404, f"Could not find object id={name}")
            if "name" in body:
                raise RestError(400, 'Argument "name" is not supported by this handler.')
            _validate(body, creating=False)
            store[(owner, app, name)].update(body)
            return 200, [(name, store[(owner, app, name)])]

    def _feed(self, status: int, owner: str, app: str, entries: list[tuple[str, dict[str, str]]], output_mode: str) -> None:
        base = f"/servicesNS/{owner}/{app}/saved/searches"
        acl = {"app": app, "owner": owner, "sharing": "app" if owner == "nobody" else "user", "modifiable": "1"}
        if output_mode == "json":
            body = {"entry": [{"name": n, "id": f"{base}/{quote(n, safe='')}", "content": c, "acl": acl} for n, c in entries]}
            self._send(status, json.dumps(body), "application/json; charset=utf-8")
            return
        xml_entries = "".join(
            f"<entry><title>{escape(n)}</title><id>{base}/{quote(n, safe='')}</id><updated>2026-01-01T00:00:00+00:00</updated>"
            f'<link href="{base}/{quote(n, safe="")}" rel="alternate"/><author><name>{owner}</name></author>'
            f'<link href="{base}/{quote(n, safe="")}" rel="list"/><link href="{base}/{quote(n, safe="")}" rel="edit"/>'
            f'<content type="text/xml">{_dict_xml({**c, "eai:acl": acl})}</content></entry>'
            for n, c in entries
        )
        self._send(
            status,
            f'<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="{ATOM}" xmlns:s="{REST}" '
            f'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><title>savedsearch</title><id>{base}</id>'
            f"<updated>2026-01-01T00:00:00+00:00</updated><opensearch:totalResults>{len(entries)}</opensearch:totalResults>"
            f"{xml_entries}</feed>",
        )


class SplunkRestServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: SplunkRestState | None = None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state or SplunkRestState()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> SplunkRestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
