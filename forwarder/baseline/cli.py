"""``forwarder baseline build|show``: learn the baseline from history, and read what it knows.

``build`` runs the given CloudTrail files, or a date range of the S3 source's bucket (read as
``backfill`` reads it, with its own resumable position), through the enrichment into the
configured state store without shipping anything: the baseline (and the sessions, stream clocks
and duplicate window beside it) is what remains. ``show`` reads the store beside the running daemon (SQLite
read-only, or the shared Redis).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from forwarder.baseline.judge import short, usual_hours
from forwarder.baseline.profile import Profile, day_total, readable
from forwarder.config import load_config

KIND = "baseline"
_FACETS = {"net": "networks", "cc": "countries", "as": "autonomous systems", "ua": "user agents", "reg": "regions",
           "role": "roles", "subj": "subjects"}


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``baseline`` and its subcommands to the ``forwarder`` command."""
    baseline = commands.add_parser("baseline", help="the behaviour baseline: learn it from history, show what it knows")
    actions = baseline.add_subparsers(dest="action", required=True, metavar="ACTION")
    from forwarder.cli import iso_date

    build = actions.add_parser("build", help="learn the baseline from CloudTrail files, or a date range in S3, into the "
                                             "state store, shipping nothing")
    build.add_argument("--config", type=Path, required=True, help="the daemon's configuration file: its state store is written")
    build.add_argument("paths", nargs="*", type=Path, metavar="PATH", help=".json or .json.gz files, or directories")
    build.add_argument("--from", dest="date_from", type=iso_date, metavar="DATE", help="first day in S3, YYYY-MM-DD (UTC)")
    build.add_argument("--to", dest="date_to", type=iso_date, metavar="DATE", help="last day in S3, included")
    build.add_argument("--bucket", help="bucket to read (default: the s3 source's)")
    build.add_argument("--prefix", help="key prefix before AWSLogs/ (default: the s3 source's)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(func=_build)
    show = actions.add_parser("show", help="what the baseline knows of a subject (an ARN, a service, a federated subject) or a role")
    show.add_argument("name", metavar="SUBJECT|ROLE")
    show.add_argument("--config", type=Path, required=True, help="the daemon's configuration file: its state store is read")
    show.add_argument("--json", action="store_true", help="one JSON object on standard output")
    show.set_defaults(func=_show)


def _build(args: argparse.Namespace) -> int:
    from forwarder.batch import run_files
    from forwarder.deadletter import StderrDeadLetter
    from forwarder.enrich import Enricher
    from forwarder.pipeline import Pipeline
    from forwarder.state import open_store

    ranged = args.date_from is not None or args.date_to is not None
    if ranged == bool(args.paths) or (ranged and (args.date_from is None or args.date_to is None)):
        print("forwarder: baseline build: give either PATH... (files) or both --from and --to (S3)", file=sys.stderr)
        return 2
    config = load_config(args.config)
    if not config.baseline.enabled:
        print(f"forwarder: {args.config}: baseline.enabled is false: there is nothing to build", file=sys.stderr)
        return 2
    if ranged:
        from forwarder import logs
        from forwarder.backfill import run_backfill

        logs.configure(config.logging)
        return run_backfill(config, args.date_from, args.date_to, args.bucket, args.prefix, not args.no_progress,
                            learn=True)
    store = open_store(config.state)
    try:
        pipeline = Pipeline(Enricher(config, store, batch=True), [], StderrDeadLetter())
        result = run_files(pipeline, args.paths)
        pairs = sum(1 for key, _ in store.scan(KIND) if key.startswith("p|"))
    finally:
        store.close()
    print(f"baseline: {result.files} files, {result.records} records read into {config.state.type} state; "
          f"{pairs} (subject, role) pairs known", file=sys.stderr)
    return 1 if result.failed_files else 0


def _show(args: argparse.Namespace) -> int:
    from forwarder.state import open_store

    config = load_config(args.config)
    store = open_store(config.state, read_only=True)
    try:
        found = known(store, args.name)
    finally:
        store.close()
    if not found["subject"] and not found["role"]:
        print(f"forwarder: {args.name}: the baseline knows no subject or role of that name (names are as on "
              "assumerole.chain.origin.arn or assumerole.role.arn)", file=sys.stderr)
        return 1
    sample = config.baseline.volume.sample
    if args.json:
        print(orjson.dumps(_json(found, sample), option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(_text(args.name, found, sample)))
    return 0


def known(store: Any, name: str) -> dict[str, Any]:
    """The subject's and the role's profiles of that name, and the pairs they are in."""
    pairs: dict[str, Profile] = {}
    for key, value in store.scan(KIND):
        if key.startswith("p|") and (key.startswith(f"p|{name}|") or key.endswith(f"|{name}")):
            found = readable(value)
            if found is not None:
                pairs[key[2:]] = found
    values = store.get_many(KIND, [f"s|{name}", f"r|{name}"])
    return {"subject": _readable(values.get(f"s|{name}")), "role": _readable(values.get(f"r|{name}")), "pairs": pairs}


def _readable(value: bytes | None) -> Profile | None:
    return readable(value) if value is not None else None


def _iso(moment: int) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _day(moment: int) -> str:
    """When something was last seen: the baseline keeps the (UTC) day only."""
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


def _facets(found: Profile) -> dict[str, list[dict[str, Any]]]:
    return {_FACETS[name]: [{"value": value, "first": _iso(first), "last": _day(last)}
                            for value, (first, last) in sorted(values.items(), key=lambda item: -item[1][1])]
            for name, values in found.facets.items() if name in _FACETS}


def _profile(found: Profile, sample: int) -> dict[str, Any]:
    return {"first_seen": _iso(found.first), "last_seen": _day(found.last),
            "days_seen": len(found.facets.get("day", {})), "hours": usual_hours(found, found.last + 1),
            **_facets(found),
            "daily_counts": {datetime.fromordinal(int(day)).date().isoformat(): round(day_total(found.sample(int(day), sample), sample))
                             for day in sorted(found.days, key=int)}}


def _json(found: dict[str, Any], sample: int) -> dict[str, Any]:
    return {"subject": _profile(found["subject"], sample) if found["subject"] else None,
            "role": _profile(found["role"], sample) if found["role"] else None,
            "pairs": {pair: _profile(value, sample) for pair, value in sorted(found["pairs"].items())}}


def _text(name: str, found: dict[str, Any], sample: int) -> list[str]:
    lines: list[str] = []
    for title, value in (("subject", found["subject"]), ("role", found["role"])):
        if value is not None:
            lines += _described(f"{name} as a {title}", _profile(value, sample))
    for pair, value in sorted(found["pairs"].items()):
        subject, _, role = pair.rpartition("|")
        lines += _described(f"{short(subject)} assuming {short(role)}", _profile(value, sample))
    return lines


def _described(title: str, shown: dict[str, Any]) -> list[str]:
    lines = [title, f"  seen         {shown['first_seen']} .. {shown['last_seen']}, on {shown['days_seen']} days",
             f"  hours        {shown['hours']}"]
    for label in _FACETS.values():
        if shown.get(label):
            values = ", ".join(short(item["value"]) for item in shown[label][:8])
            more = len(shown[label]) - 8
            lines.append(f"  {label:<12} {values}" + (f" and {more} more" if more > 0 else ""))
    if shown["daily_counts"]:
        recent = list(shown["daily_counts"].items())[-7:]
        lines.append("  per day      " + ", ".join(f"{day} {count}" for day, count in recent))
    return lines
