"""`forwarder package splunk-app`: the Splunk app, built from the field catalogue and the Sigma rules.

It sits beside the Splunk Add-on for AWS (which owns sourcetype aws:cloudtrail) and does not fight
it. Where both apps define a setting of the sourcetype under the same name, Splunk keeps one, so
this app writes none of the Add-on's EVAL- names (user, src_user, user_role, dest, ...): it gives
the CIM Authentication fields of role assumptions as ASNEW aliases from the forwarder's
enrichment, which the Add-on's calculated fields override where it is installed and which stand
alone where it is not. `action` is the one calculated field (the Add-on gives it by lookup, with
OUTPUTNEW, after calculated fields): success or failure on the forwarder's credential issuances,
nothing elsewhere. The Add-on tags role assumptions `assume_role` and `cloud` but not
`authentication`; this app's eventtypes put them in the Authentication data model, sensitive
roles also in its Privileged_Authentication dataset.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote

import orjson

from forwarder import __version__
from forwarder.config import Config, SplunkAlerts, SplunkHecSink
from forwarder.package.panels import Panel, Syntax, Value, condition, label, panels, quoted
from forwarder.rules.convert import convert, generated_rules
from forwarder.rules.pipelines import field_names
from forwarder.rules.splunk_alerts import SavedSearch, alert, conf_text, conf_value

APP_ID = "cloudtrail_assumerole"
LABEL = "CloudTrail AssumeRole"
DASHBOARD = "assumerole_overview"
EVENTS_MACRO = "`assumerole_events`"
# The calls by which STS issues credentials: the events the forwarder gives role/caller/session fields.
ISSUANCES = ("AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity", "AssumeRoot", "GetFederationToken",
             "GetSessionToken")
# CIM Authentication field <- the field it is an alias of (ASNEW: the Add-on's own value wins).
CIM_ALIASES = {
    "src": "sourceIPAddress",
    "dest": "eventSource",
    "signature": "eventName",
    "app": "eventType",
    "reason": "errorMessage",
    "src_user": "assumerole.caller.arn",
    "src_user_type": "assumerole.caller.type",
    "user": "assumerole.role.name",
    "user_role": "assumerole.role.arn",
}


def _where(config: Config) -> tuple[str, str]:
    """(index, sourcetype) of the forwarder's events: the configuration's first Splunk HEC sink."""
    sink = next((s for s in config.sinks if isinstance(s, SplunkHecSink)), None)
    return (sink.index if sink and sink.index else "main"), (sink.sourcetype if sink else "aws:cloudtrail")


def spl_field(name: str) -> str:
    """A catalogued field as Splunk's JSON extraction names it (``{}`` inside arrays)."""
    return field_names("splunk").get(name, name)


SPL = Syntax(exists="{field}=*", equals="{field}={value}", any_of="{field} IN ({values})", separator=", ")


def spl_condition(name: str, value: Value) -> str:
    return condition(SPL, spl_field(name), value)


def panel_search(panel: Panel) -> str:
    """The panel's SPL (the ``assumerole_events`` macro finds the events)."""
    base = " ".join([EVENTS_MACRO, *(spl_condition(name, value) for name, value in panel.where)])
    fields = [spl_field(name) for name in panel.by]
    renames = " ".join(f'"{field}" AS {label(name)}' for field, name in zip(fields, panel.by))
    if panel.chart == "timeline":
        return f"{base} | timechart count BY {fields[0]}"
    if panel.chart == "top":
        return f"{base} | top limit=10 {fields[0]} | rename {renames}"
    return f"{base} | stats count BY {' '.join(fields)} | sort - count | head 20 | rename {renames}"


def _drilldown(panel: Panel) -> str:
    """The events behind what was clicked: a search over the panel's own conditions and the clicked value."""
    base = " ".join(["search", EVENTS_MACRO, *(spl_condition(name, value) for name, value in panel.where)])
    if panel.chart == "timeline":
        clicked = [(spl_field(panel.by[0]), "$click.name2|u$")]
        window = "earliest=$earliest$&latest=$latest$"
    else:
        clicked = [(spl_field(name), f"$row.{label(name)}|u$") for name in panel.by]
        window = "earliest=$window.earliest$&latest=$window.latest$"
    query = quote(base) + "".join(f"{quote(f' {field}=')}%22{token}%22" for field, token in clicked)
    return f"search?q={query}&{window}"


def dashboard_xml(catalogue_panels: tuple[Panel, ...]) -> str:
    root = ET.Element("dashboard", version="1.1", theme="light")
    ET.SubElement(root, "label").text = "AssumeRole: who stands behind role assumptions"
    ET.SubElement(root, "description").text = (
        "Role assumptions as the CloudTrail AssumeRole forwarder enriched them (one copy of each call). "
        "Click a value to see its events; the index and sourcetype are the assumerole_index and "
        "assumerole_sourcetype macros.")
    fieldset = ET.SubElement(root, "fieldset", submitButton="false")
    window = ET.SubElement(fieldset, "input", type="time", token="window")
    ET.SubElement(window, "label").text = "Time"
    default = ET.SubElement(window, "default")
    ET.SubElement(default, "earliest").text = "-24h@h"
    ET.SubElement(default, "latest").text = "now"
    for index in range(0, len(catalogue_panels), 2):
        row = ET.SubElement(root, "row")
        for panel in catalogue_panels[index:index + 2]:
            _panel(ET.SubElement(row, "panel", id=panel.key.replace("-", "_")), panel)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def _panel(element: ET.Element, panel: Panel) -> None:
    ET.SubElement(element, "title").text = panel.title
    view = ET.SubElement(element, "chart" if panel.chart == "timeline" else "table")
    search = ET.SubElement(view, "search")
    ET.SubElement(search, "query").text = panel_search(panel)
    ET.SubElement(search, "earliest").text = "$window.earliest$"
    ET.SubElement(search, "latest").text = "$window.latest$"
    if panel.chart == "timeline":
        ET.SubElement(view, "option", name="charting.chart").text = "column"
        ET.SubElement(view, "option", name="charting.chart.stackMode").text = "stacked"
    else:
        ET.SubElement(view, "option", name="drilldown").text = "row"
    drilldown = ET.SubElement(view, "drilldown")
    ET.SubElement(drilldown, "link", target="_blank").text = _drilldown(panel)


def _stanzas(stanzas: dict[str, dict[str, str]], header: str) -> str:
    body = "\n".join(f"[{name}]\n" + "".join(f"{key} = {conf_value(value)}\n" for key, value in settings.items())
                     for name, settings in stanzas.items())
    return header + "\n" + body


def props_conf(sourcetype: str) -> str:
    aliases = "  ".join(f"{source} ASNEW {cim}" for cim, source in CIM_ALIASES.items())
    failed = spl_field("assumerole.failed")
    return _stanzas({sourcetype: {
        # One JSON document per line (an NDJSON file through a forwarder, HEC's raw endpoint).
        "SHOULD_LINEMERGE": "false",
        "LINE_BREAKER": "([\\r\\n]+)",
        # A CloudTrail record can exceed 100 KB (policies, large responses): the Add-on's limit, 8 MiB.
        "TRUNCATE": "8388608",
        # eventTime as AWS writes it: 2026-03-31T14:40:05Z (UTC, whole seconds).
        "TIME_PREFIX": '"eventTime"\\s*:\\s*"',
        "TIME_FORMAT": "%Y-%m-%dT%H:%M:%SZ",
        "MAX_TIMESTAMP_LOOKAHEAD": "20",
        "TZ": "UTC",
        "KV_MODE": "json",
        "FIELDALIAS-assumerole_cim_authentication": aliases,
        "EVAL-action": f"case('{failed}'=\"true\", \"failure\", '{failed}'=\"false\", \"success\")",
    }}, "# Generated by `forwarder package splunk-app` from mappings/fields.yml: see the app's README.\n")


def eventtypes_conf(sourcetype: str) -> str:
    base = " ".join([f"sourcetype={quoted(sourcetype)}", spl_condition("eventSource", "sts.amazonaws.com"),
                     spl_condition("eventName", ISSUANCES), spl_condition("assumerole.primary", True)])
    return _stanzas({
        "assumerole_authentication": {"search": base, "description": "STS credential issuances (one copy of each call)"},
        "assumerole_privileged_authentication": {
            "search": f"{base} {spl_condition('assumerole.role.sensitive', True)}",
            "description": "STS credential issuances for a sensitive role",
        },
    }, "# CIM Authentication: every STS credential issuance the forwarder enriched, one copy of each call.\n")


def tags_conf() -> str:
    return _stanzas({
        "eventtype=assumerole_authentication": {"authentication": "enabled", "default": "enabled", "cloud": "enabled",
                                                "assume_role": "enabled"},
        "eventtype=assumerole_privileged_authentication": {"privileged": "enabled"},
    }, "# The tags the CIM Authentication data model selects on (and the Add-on's assume_role and cloud).\n")


def macros_conf(index: str, sourcetype: str) -> str:
    return _stanzas({
        "assumerole_index": {"definition": f"index={quoted(index)}",
                             "description": "Where the forwarder's events are: edit for your index (or several)."},
        "assumerole_sourcetype": {"definition": f"sourcetype={quoted(sourcetype)}",
                                  "description": "The sourcetype the forwarder's HEC sink writes."},
        "assumerole_events": {"definition": "`assumerole_index` `assumerole_sourcetype`",
                              "description": "The forwarder's events: what every search of this app starts from."},
    }, "# The index and sourcetype every search of the app starts from.\n")


def app_alerts(config: Config) -> list[SavedSearch]:
    """One alert per rule, as `sigma deploy splunk` makes them, starting from the app's macros."""
    configured = config.detections.splunk or SplunkAlerts()
    settings = SplunkAlerts(**{**{key: getattr(configured, key) for key in SplunkAlerts.model_fields},
                               "search_prefix": EVENTS_MACRO})
    with generated_rules(config) as rules:
        return [alert(c, settings) for form in settings.forms for c in convert(rules / form, "splunk").results]


def app_conf() -> str:
    return _stanzas({
        "install": {"is_configured": "false", "build": re.sub(r"\D", "", __version__) or "1"},
        "ui": {"is_visible": "true", "label": LABEL},
        "launcher": {"author": "CloudTrail AssumeRole forwarder", "version": __version__,
                     "description": "Who really stands behind every AWS role assumption: CIM Authentication "
                                    "mapping, alerts and a dashboard for the forwarder's enriched CloudTrail events."},
        "package": {"id": APP_ID, "check_for_updates": "false"},
        "id": {"name": APP_ID, "version": __version__},
    }, "# The CloudTrail AssumeRole forwarder's Splunk app.\n")


def manifest() -> str:
    info = {
        "title": LABEL,
        "id": {"group": None, "name": APP_ID, "version": __version__},
        "author": [{"name": "CloudTrail AssumeRole forwarder", "email": None, "company": None}],
        "releaseDate": None,
        "description": "Alerts, CIM Authentication mapping and a dashboard for the forwarder's enriched CloudTrail events.",
        "classification": {"intendedAudience": "Security", "categories": ["Security, Fraud & Compliance"],
                           "developmentStatus": "Beta"},
        "commonInformationModels": {"Authentication": ">=4.0.0"},
        "license": {"name": "Apache-2.0", "text": None, "uri": "https://www.apache.org/licenses/LICENSE-2.0"},
        "privacyPolicy": {"name": None, "text": None, "uri": None},
        "releaseNotes": {"name": None, "text": None, "uri": None},
    }
    document = {"schemaVersion": "2.0.0", "info": info, "dependencies": None, "tasks": None, "inputGroups": None,
                "incompatibleApps": None, "platformRequirements": None,
                "supportedDeployments": ["_standalone", "_distributed", "_search_head_clustering"],
                "targetWorkloads": ["_search_heads"]}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


META = """[]
access = read : [ * ], write : [ admin, sc_admin ]

# Field extractions, eventtypes, tags and macros apply to searches in every app (the CIM data
# models run in their own); the dashboard and the alerts stay in this one.
[props]
export = system

[eventtypes]
export = system

[tags]
export = system

[macros]
export = system
"""

NAV = f"""<nav search_view="search">
  <view name="{DASHBOARD}" default="true" />
  <view name="search" />
  <a href="{{{{SPLUNKWEB_URL_PREFIX}}}}/app/{APP_ID}/alerts">Alerts</a>
</nav>
"""


def app_files(config: Config) -> dict[str, str]:
    """Every file of the app, by its path inside the app directory."""
    index, sourcetype = _where(config)
    return {
        "app.manifest": manifest(),
        "README.txt": README,
        "default/app.conf": app_conf(),
        "default/props.conf": props_conf(sourcetype),
        "default/eventtypes.conf": eventtypes_conf(sourcetype),
        "default/tags.conf": tags_conf(),
        "default/macros.conf": macros_conf(index, sourcetype),
        "default/savedsearches.conf": conf_text(app_alerts(config), {"request.ui_dispatch_app": APP_ID,
                                                                     "request.ui_dispatch_view": "search"}),
        "default/data/ui/nav/default.xml": NAV,
        f"default/data/ui/views/{DASHBOARD}.xml": dashboard_xml(panels()),
        "metadata/default.meta": META,
    }


def build(config: Config, out: Path) -> Path:
    """Write ``<out>/cloudtrail_assumerole-<version>.tgz`` (reproducible: fixed owners, modes, times)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{APP_ID}-{__version__}.tgz"
    files = app_files(config)
    with target.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in sorted({f"{APP_ID}/{p}" for path in files for p in _parents(path)}):
            archive.addfile(_entry(directory, tarfile.DIRTYPE, 0o755, 0))
        for path, text in sorted(files.items()):
            data = text.encode()
            archive.addfile(_entry(f"{APP_ID}/{path}", tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return target


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return [""] + ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _entry(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name.rstrip("/"))
    info.type, info.mode, info.size, info.mtime = kind, mode, size, 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


README = f"""CloudTrail AssumeRole ({APP_ID}), version {__version__}

For the events of the CloudTrail AssumeRole forwarder (sourcetype aws:cloudtrail by default): the
CloudTrail record as AWS wrote it plus the forwarder's assumerole object, which names who really
stands behind every role assumption.

- macros.conf: assumerole_index and assumerole_sourcetype say where the events are. Edit them
  (Settings > Advanced search > Search macros) if the forwarder writes to another index.
- props.conf: JSON extraction, eventTime as the timestamp, one event per line, 8 MiB events;
  CIM Authentication fields of credential issuances as aliases of the enrichment.
- eventtypes.conf, tags.conf: STS credential issuances (one copy of each call) in the CIM
  Authentication data model; sensitive roles also as privileged authentication.
- savedsearches.conf: one scheduled alert per Sigma rule of the forwarder.
- Dashboard "{DASHBOARD}": role assumptions over time, chain origins, external callers,
  failures, after-hours and sensitive-role uses; click a value for its events.

Splunk extracts JSON fields automatically only from the first 5,000 bytes of an event
(limits.conf [spath] extraction_cutoff): raise it on the search heads if the forwarder's larger
events lack their assumerole fields.
"""
