"""The ``forwarder`` command."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from forwarder import __version__
from forwarder.config import Config, ConfigError, NdjsonSink, load_config
from forwarder.deadletter import DeadLetter, StderrDeadLetter
from forwarder.enrich import Enricher
from forwarder.pipeline import Pipeline
from forwarder.sinks.base import Sink, SinkError
from forwarder.sinks.ndjson import NdjsonSink as NdjsonWriter
from forwarder.state.sqlite import SqliteStore

SAMPLES = Path(__file__).parent / "samples"


def _batch_pipeline(config: Config, sinks: Sequence[Sink], state: str, dead_letter: DeadLetter) -> Pipeline:
    store = SqliteStore(state)
    return Pipeline(Enricher(config, store, batch=True), sinks, dead_letter)


def cmd_enrich(args: argparse.Namespace) -> int:
    from forwarder.batch import run_files

    config = load_config(args.config)
    dead_letter = StderrDeadLetter()
    sink = NdjsonWriter(NdjsonSink(type="ndjson", path="-"))
    pipeline = _batch_pipeline(config, [sink], args.state or ":memory:", dead_letter)
    result = run_files(pipeline, args.paths)
    sink.close()
    pipeline.enricher.store.close()
    return 1 if result.failed_files or dead_letter.count else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    sinks = ", ".join(sink.type for sink in config.sinks)
    print(f"{args.file}: valid (source {config.source.type}, state {config.state.type}, sinks {sinks})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from forwarder.batch import run_files
    from forwarder.summary import Summary

    config = load_config(SAMPLES / "demo-config.yaml")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="forwarder-demo-"))
    summary = Summary()
    sink = NdjsonWriter(NdjsonSink(type="ndjson", path=str(out)))
    dead_letter = StderrDeadLetter()
    try:
        pipeline = _batch_pipeline(config, [sink, summary], str(workdir / "state.db"), dead_letter)
        result = run_files(pipeline, [SAMPLES / "demo"])
        pipeline.enricher.store.close()
    finally:
        sink.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"Read {result.files} CloudTrail files ({result.records} records) from {SAMPLES / 'demo'}; "
        f"wrote {result.delivered} enriched documents to {out} "
        f"({result.duplicates} duplicate deliveries dropped)."
    )
    print(summary.render())
    return 1 if result.failed_files or dead_letter.count else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forwarder",
        description="Reads CloudTrail, resolves who stands behind every role assumption, ships enriched events.",
    )
    parser.add_argument("--version", action="version", version=f"forwarder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    enrich = commands.add_parser("enrich", help="enrich CloudTrail log files to NDJSON on standard output")
    enrich.add_argument("--config", type=Path, help="configuration file (YAML)")
    enrich.add_argument("--state", help="SQLite state file (default: in memory, forgotten at exit)")
    enrich.add_argument("paths", nargs="+", type=Path, metavar="PATH", help=".json or .json.gz files, or directories")
    enrich.set_defaults(func=cmd_enrich)

    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_config)

    demo = commands.add_parser("demo", help="run the forwarder on its shipped sample story")
    demo.add_argument("--out", default="demo-output/enriched.ndjson", help="where the enriched NDJSON goes")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 2
    except SinkError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
