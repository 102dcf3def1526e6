"""``forwarder sigma generate|check|convert|deploy``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forwarder.catalogue import CatalogueError
from forwarder.config import load_config
from forwarder.rules import DEFAULT_INDEX, TARGETS
from forwarder.rules.generate import TEMPLATES, GenerateError, generate, write

# pySigma and its backends load in the commands that use them: they take longer to import
# than `forwarder enrich` takes on a small batch.


def _generate(args: argparse.Namespace) -> int:
    try:
        generated = generate(load_config(args.config))
    except GenerateError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 2
    for path in write(generated, args.out):
        print(f"wrote {path}")
    for reason in generated.skipped:
        print(f"skipped {reason}", file=sys.stderr)
    return 0


def _check(args: argparse.Namespace) -> int:
    from forwarder.rules.check import check
    from forwarder.rules.convert import ConvertError

    try:
        findings = check(args.dir)
    except (ConvertError, CatalogueError) as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    for finding in findings:
        print(f"{finding.where}: {finding.severity}: {finding.description} {finding.detail}".rstrip())
    if not findings:
        print(f"{args.dir}: every rule passes pySigma's validators, names only catalogued fields "
              "and defines what its condition names")
    return 1 if findings else 0


def _convert(args: argparse.Namespace) -> int:
    from forwarder.config import SplunkAlerts
    from forwarder.rules.convert import ConvertError, convert, render

    alerts = load_config(args.config).detections.splunk or SplunkAlerts()
    try:
        text = render(convert(args.dir, args.target, args.format, args.index or DEFAULT_INDEX), alerts)
    except (ConvertError, CatalogueError) as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from forwarder.rules.convert import ConvertError
    from forwarder.rules.splunk_deploy import DeployError, deploy

    try:
        changes = deploy(load_config(args.config), dry_run=args.dry_run)
    except (DeployError, ConvertError, GenerateError) as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    prefix = "would " if args.dry_run else ""
    for change in changes:
        print(prefix + change.describe() if change.action != "unchanged" else change.describe())
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``sigma`` and its subcommands to the ``forwarder`` command."""
    sigma = commands.add_parser("sigma", help="the Sigma rules: generate, check, convert, deploy")
    actions = sigma.add_subparsers(dest="sigma_command", required=True, metavar="ACTION")

    gen = actions.add_parser("generate", help="write the rules specialised for a configuration")
    gen.add_argument("--config", type=Path, required=True, help="configuration file (YAML)")
    gen.add_argument("--out", type=Path, required=True, help="directory for the generated rules")
    gen.set_defaults(func=_generate)

    chk = actions.add_parser("check", help="validate rules: pySigma's validators, catalogued fields, conditions")
    chk.add_argument("dir", type=Path, nargs="?", default=TEMPLATES, help=f"rules directory (default {TEMPLATES})")
    chk.set_defaults(func=_check)

    conv = actions.add_parser("convert", help="convert generated rules for a SIEM")
    conv.add_argument("--target", choices=TARGETS, required=True)
    conv.add_argument("--format", help="the backend's output format (default: plain queries, each under its rule's "
                      "name, title and level; savedsearches: the alerts `sigma deploy splunk` creates)")
    conv.add_argument("--config", type=Path, help="configuration file: detections.splunk's search_prefix and alert "
                      "settings for the Splunk target (default: index=main sourcetype=aws:cloudtrail)")
    conv.add_argument("--index", action="append", help=f"index pattern for Elasticsearch targets (default {DEFAULT_INDEX[0]})")
    conv.add_argument("--out", help="write here instead of standard output")
    conv.add_argument("dir", type=Path, help="directory of generated rules (forwarder sigma generate --out DIR)")
    conv.set_defaults(func=_convert)

    dep = actions.add_parser("deploy", help="create or update the rules as SIEM searches")
    targets = dep.add_subparsers(dest="deploy_target", required=True, metavar="TARGET")
    splunk = targets.add_parser("splunk", help="one scheduled saved search per rule (detections.splunk)")
    splunk.add_argument("--config", type=Path, required=True, help="configuration file with detections.splunk")
    splunk.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    splunk.set_defaults(func=_deploy)
