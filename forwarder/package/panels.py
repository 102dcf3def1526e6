"""The dashboard's panels, said once for both SIEMs: which events each counts and by what.

A panel is a set of conditions on catalogued fields (all must hold) and the fields it counts by;
forwarder/package/splunk_app.py writes it as SPL with a drilldown to the events, and
forwarder/package/kibana.py as a Lens visualisation. The baseline panel is there only when the
catalogue has the baseline fields (mappings/fields.yml).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from forwarder.catalogue import Catalogue, CatalogueError, load_catalogue


class Exists:
    """The field has a value (Splunk ``field=*``, KQL ``field: *``)."""

    def __repr__(self) -> str:
        return "EXISTS"


EXISTS = Exists()
Value = bool | str | tuple[str, ...] | Exists  # a tuple: any of these values


@dataclass(frozen=True)
class Panel:
    key: str  # stable: it names the Kibana object and the Splunk panel
    title: str
    where: tuple[tuple[str, Value], ...]
    chart: Literal["timeline", "top", "table"]  # timeline: count over time, one series per value of `by[0]`
    by: tuple[str, ...]

    def fields(self) -> set[str]:
        return {name for name, _ in self.where} | set(self.by)


# One copy of each call: a cross-account assumption is counted once.
_PRIMARY = ("assumerole.primary", True)
BASELINE_REASONS = "assumerole.baseline.reasons"
OPTIONAL = frozenset({"baseline-findings"})  # shown where the forwarder writes its fields

PANELS = (
    Panel("assumptions-over-time", "Role assumptions over time", (_PRIMARY,), "timeline", ("eventName",)),
    Panel("top-chain-origins", "Top chain origins", (_PRIMARY,), "top", ("assumerole.chain.origin.arn",)),
    Panel("external-callers", "External callers", (_PRIMARY, ("assumerole.caller.external", True)), "table",
          ("assumerole.caller.arn", "assumerole.caller.account_id", "assumerole.role.arn")),
    Panel("failures-by-principal", "Failed assumptions by principal", (_PRIMARY, ("assumerole.failed", True)), "top",
          ("assumerole.caller.arn",)),
    Panel("after-hours", "After-hours uses of human roles", (_PRIMARY, ("assumerole.after_hours", True)), "table",
          ("assumerole.role.arn", "assumerole.chain.origin.arn")),
    Panel("sensitive-roles", "Sensitive-role uses", (_PRIMARY, ("assumerole.role.sensitive", True)), "table",
          ("assumerole.role.arn", "assumerole.caller.arn", "assumerole.caller.approved")),
    Panel("baseline-findings", "Behaviour baseline findings", ((BASELINE_REASONS, EXISTS),), "top",
          (BASELINE_REASONS,)),
)


def panels(catalogue: Catalogue | None = None) -> tuple[Panel, ...]:
    """The panels, the baseline one once the catalogue has its fields; a panel naming a field the
    catalogue lacks is refused, naming it (it would chart nothing)."""
    known = {spec.name for spec in (catalogue or load_catalogue()).fields}
    found = []
    for panel in PANELS:
        missing = sorted(panel.fields() - known)
        if not missing:
            found.append(panel)
        elif panel.key not in OPTIONAL:
            raise CatalogueError(f"dashboard panel {panel.title!r} names fields not in mappings/fields.yml: {', '.join(missing)}")
    return tuple(found)


@dataclass(frozen=True)
class Syntax:
    """How a query language writes a condition on a field (``{field}``, ``{value}``, ``{values}``)."""

    exists: str
    equals: str
    any_of: str
    separator: str  # between the values of any_of


def quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def condition(syntax: Syntax, field: str, value: Value) -> str:
    """``field`` (already in the target's naming) holding ``value``, in ``syntax``."""
    if isinstance(value, Exists):
        return syntax.exists.format(field=field)
    if isinstance(value, tuple):
        return syntax.any_of.format(field=field, values=syntax.separator.join(quoted(v) for v in value))
    return syntax.equals.format(field=field, value=str(value).lower() if isinstance(value, bool) else quoted(value))


def label(field: str) -> str:
    """A field's name as a column, token or Lens id: letters, digits and underscores."""
    return field.replace("{}", "").replace(".", "_").replace("@", "")
