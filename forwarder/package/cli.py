"""``forwarder package splunk-app|kibana`` and ``forwarder setup kibana``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from forwarder.config import load_config

# The builders load pySigma and its backends: only in the commands that use them.


def _build_errors() -> tuple[type[Exception], ...]:
    """What building from the rules and the catalogue can raise, each with a one-line message."""
    from forwarder.catalogue import CatalogueError
    from forwarder.rules.convert import ConvertError
    from forwarder.rules.generate import GenerateError

    return ConvertError, GenerateError, CatalogueError


def _splunk_app(args: argparse.Namespace) -> int:
    from forwarder.package.splunk_app import build

    config = load_config(args.config)
    try:
        target = build(config, args.out)
    except _build_errors() as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {target}")
    return inspect(target) if args.inspect else 0


def report_path(package: Path) -> Path:
    """Where the AppInspect report of ``package`` is kept: beside it."""
    return package.with_name(package.name.removesuffix(".tgz") + ".appinspect.json")


def inspect(package: Path) -> int:
    """Run splunk-appinspect on the package, keep its JSON report beside it; 1 on any failure or error."""
    program = shutil.which("splunk-appinspect") or shutil.which("splunk-appinspect", path=str(Path(sys.executable).parent))
    if program is None:
        print("forwarder: splunk-appinspect is not installed (pip install splunk-appinspect, or the project's dev "
              "extras)", file=sys.stderr)
        return 2
    import subprocess  # here: `forwarder` registers this command on every start

    report = report_path(package)
    # Offline: the trusted-libraries list is the one the installed version ships.
    run = subprocess.run([program, "inspect", str(package), "--mode", "precert", "--data-format", "json",
                          "--output-file", str(report), "--skip-trusted-libraries-update"],
                         capture_output=True, text=True, check=False)
    try:
        summary = json.loads(report.read_text())["summary"]
    except (OSError, ValueError, KeyError):
        print(f"forwarder: splunk-appinspect wrote no report (exit {run.returncode}): "
              f"{(run.stderr or run.stdout).strip()[-500:]}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{summary.get(key, 0)} {key}" for key in ("failure", "error", "warning", "success"))
    print(f"appinspect: {counts}; report {report}")
    return 1 if summary.get("failure") or summary.get("error") else 0


def _kibana(args: argparse.Namespace) -> int:
    from forwarder.package.kibana import build

    config = load_config(args.config)
    try:
        for path in build(config, args.out):
            print(f"wrote {path}")
    except _build_errors() as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    return 0


def _setup_kibana(args: argparse.Namespace) -> int:
    from forwarder.package.kibana_setup import SetupError, setup_kibana

    config = load_config(args.config)
    try:
        changes = setup_kibana(config, args.dry_run)
    except SetupError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 3
    except _build_errors() as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 1
    prefix = "would " if args.dry_run else ""
    for change in changes:
        verb = change.action if change.action == "unchanged" else prefix + change.action
        print(f"{change.kind} {change.name}: {verb}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``package`` and its targets to the ``forwarder`` command."""
    package = commands.add_parser("package", help="build the SIEM plugins: a Splunk app, a Kibana content pack")
    targets = package.add_subparsers(dest="package_target", required=True, metavar="TARGET")
    splunk = targets.add_parser("splunk-app", help="the Splunk app (.tgz): CIM mapping, alerts, dashboard")
    splunk.add_argument("--config", type=Path, help="configuration file: its rules, HEC index and sourcetype, "
                        "detections.splunk alert settings (default: an empty configuration)")
    splunk.add_argument("--out", type=Path, default=Path("dist"), help="directory for the .tgz (default dist)")
    splunk.add_argument("--inspect", action="store_true",
                        help="run splunk-appinspect on it, keep the report beside it, fail on any failure or error")
    splunk.set_defaults(func=_splunk_app)
    kibana = targets.add_parser("kibana", help="the Kibana content pack: saved objects and detection rules (NDJSON)")
    kibana.add_argument("--config", type=Path, help="configuration file: its rules and kibana.index_pattern "
                        "(default: an empty configuration)")
    kibana.add_argument("--out", type=Path, default=Path("dist"), help="directory for the files (default dist)")
    kibana.set_defaults(func=_kibana)


def register_setup(targets: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``kibana`` to ``forwarder setup``."""
    kibana = targets.add_parser("kibana", help="import the Kibana content pack (saved objects, detection rules)")
    kibana.add_argument("--config", type=Path, required=True, help="configuration file with a kibana section")
    kibana.add_argument("--dry-run", action="store_true", help="print what would change; change nothing")
    kibana.set_defaults(func=_setup_kibana)
