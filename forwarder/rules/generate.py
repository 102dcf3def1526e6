"""Specialise the rule templates in sigma/ for one configuration.

The templates are valid Sigma. What depends on the configuration is written in them with
Sigma's own placeholder syntax (``field|expand: '%name%'``), filled in here:

- ``%trusted_accounts%``: organization.accounts plus organization.approved_partners
- ``%sensitive_roles%``: every roles.sensitive pattern
- ``%sensitive_role%`` / ``%approved_principals%``: one sensitive role and its approved principals;
  a template that uses them is written once per sensitive role (ids derived from the template's)
- ``%assume_root_principals%``: detections.assume_root.approved_principals

An empty list for a selection the condition only negates (``and not NAME``) drops that clause
(nothing is approved, so nothing is excused); an empty list anywhere else leaves the rule out,
with the reason. Thresholds and windows (detections.*) replace the templates' defaults.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forwarder.config import Config, DetectionsConfig, FailedAssumptions
from forwarder.resources import project_dir

TEMPLATES = project_dir("sigma")
FORMS = ("enriched", "raw")
PLACEHOLDER = re.compile(r"^%(\w+)%$")
PER_ROLE = frozenset({"sensitive_role", "approved_principals"})


class GenerateError(Exception):
    """The configuration holds something Sigma cannot express; the message names it."""


@dataclass
class Generated:
    files: dict[str, str] = field(default_factory=dict)  # relative path -> YAML text
    skipped: list[str] = field(default_factory=list)  # "<rule name>: <reason>"


def _sigma_pattern(value: str, where: str) -> str:
    # Shell-style * and ? mean the same in Sigma; character classes have no Sigma equivalent.
    if "[" in value or "\\" in value:
        raise GenerateError(f"{where}: {value!r} uses [...] or a backslash, which Sigma cannot express")
    return value


def _lists(config: Config) -> dict[str, list[str]]:
    org = config.organization
    sensitive = [_sigma_pattern(r.pattern, f"roles.sensitive[{i}].pattern") for i, r in enumerate(config.roles.sensitive)]
    root = [
        _sigma_pattern(p, f"detections.assume_root.approved_principals[{i}]")
        for i, p in enumerate(config.detections.assume_root.approved_principals)
    ]
    return {"trusted_accounts": [*org.accounts, *org.approved_partners], "sensitive_roles": sensitive,
            "assume_root_principals": root}


def _role_lists(config: Config) -> Iterator[tuple[str, dict[str, list[str]]]]:
    for index, role in enumerate(config.roles.sensitive):
        approved = [
            _sigma_pattern(p, f"roles.sensitive[{index}].approved_principals") for p in role.approved_principals
        ]
        yield role.pattern, {"sensitive_role": [_sigma_pattern(role.pattern, f"roles.sensitive[{index}].pattern")],
                             "approved_principals": approved}


class _Skip(Exception):
    pass


def _placeholders(rule: dict[str, Any]) -> set[str]:
    names: set[str] = set()
    for selection in rule.get("detection", {}).values():
        if isinstance(selection, dict):
            for key, value in selection.items():
                match = PLACEHOLDER.match(value) if isinstance(value, str) else None
                if "|expand" in key and match:
                    names.add(match.group(1))
    return names


def _fill(rule: dict[str, Any], values: dict[str, list[str]]) -> dict[str, Any]:
    detection = dict(rule["detection"])
    condition: str = detection["condition"]
    for name, selection in list(detection.items()):
        if not isinstance(selection, dict):
            continue
        filled: dict[str, Any] = {}
        for key, value in selection.items():
            match = PLACEHOLDER.match(value) if "|expand" in key and isinstance(value, str) else None
            if not match:
                filled[key] = value
                continue
            items = values[match.group(1)]
            if items:
                filled[key.replace("|expand", "")] = items if len(items) > 1 else items[0]
                continue
            negated = re.compile(rf"\s+and not {re.escape(name)}\b")
            if not negated.search(condition):
                raise _Skip(f"{match.group(0)} is empty in this configuration")
            condition = negated.sub("", condition)
            filled = {}
            break
        if filled:
            detection[name] = filled
        else:
            del detection[name]
    detection["condition"] = condition
    return {**rule, "detection": detection}


def _depth(rule: dict[str, Any], settings: DetectionsConfig) -> None:
    rule["detection"]["too_deep"]["assumerole.chain.depth|gt"] = settings.max_chain_depth


def _burst(rule: dict[str, Any], burst: FailedAssumptions) -> None:
    rule["correlation"]["timespan"] = f"{burst.window_minutes}m"
    rule["correlation"]["condition"] = {"gte": burst.threshold + 1}


def _failures(rule: dict[str, Any], settings: DetectionsConfig) -> None:
    _burst(rule, settings.failed_assumptions)


def _enumeration(rule: dict[str, Any], settings: DetectionsConfig) -> None:
    _burst(rule, settings.trust_policy_enumeration)


# Numbers in the templates that come from detections.*, by rule name.
SETTINGS: dict[str, Callable[[dict[str, Any], DetectionsConfig], None]] = {
    "assumerole_deep_or_sensitive_chain": _depth,
    "assumerole_failed_assumption_burst": _failures,
    "cloudtrail_failed_assumption_burst": _failures,
    "cloudtrail_trust_policy_enumeration_burst": _enumeration,
}


def _slug(pattern: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", pattern.rsplit("/", 1)[-1].lower()).strip("_") or "role"


def _specialise(rule: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    used = _placeholders(rule)
    if not used & PER_ROLE:
        variants = [(rule, _lists(config))]
    else:
        variants = []
        for pattern, role_values in _role_lists(config):
            suffix = _slug(pattern)
            variant = {
                **rule,
                "title": f"{rule['title']}: {pattern.rsplit('/', 1)[-1]}",
                "id": str(uuid.uuid5(uuid.UUID(rule["id"]), pattern)),
                "name": f"{rule['name']}_{suffix}",
            }
            variants.append((variant, {**_lists(config), **role_values}))
        if not variants:
            raise _Skip("roles.sensitive is empty in this configuration")
    out = []
    for variant, values in variants:
        filled = _fill(variant, values) if "detection" in variant else dict(variant)
        if variant.get("name") in SETTINGS:
            SETTINGS[variant["name"]](filled, config.detections)
        out.append(filled)
    return out


def _dump(documents: list[dict[str, Any]], source: str) -> str:
    import yaml  # here, as below: `forwarder` registers this command without loading PyYAML

    header = f"# Generated by `forwarder sigma generate` from sigma/{source}: edit the template, not this file.\n"
    body = yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True, width=100, explicit_start=False)
    return header + body


def template_files(templates: Path = TEMPLATES) -> list[Path]:
    return sorted(p for form in FORMS for p in (templates / form).glob("*.yml"))


def generate(config: Config, templates: Path = TEMPLATES) -> Generated:
    """The rules of ``templates`` specialised for ``config``, as files to write."""
    from forwarder.strict_yaml import YamlError, read_all

    result = Generated()
    for path in template_files(templates):
        relative = path.relative_to(templates).as_posix()
        try:
            documents = [doc for doc in read_all(path) if doc]
        except YamlError as exc:
            raise GenerateError(f"{path}: {exc}") from None
        out: list[dict[str, Any]] = []
        for document in documents:
            try:
                out.extend(_specialise(document, config))
            except _Skip as reason:
                result.skipped.append(f"{relative} ({document.get('name')}): {reason}")
                out = []
                break  # a correlation without its base rule is no rule either
        if out:
            result.files[relative] = _dump(out, relative)
    return result


def write(generated: Generated, out: Path) -> list[Path]:
    """Write the generated rules under ``out``; files of earlier runs that are no longer generated go."""
    written = []
    for form in FORMS:
        for stale in (out / form).glob("*.yml"):
            if stale.relative_to(out).as_posix() not in generated.files:
                stale.unlink()
    for relative, text in generated.files.items():
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written
