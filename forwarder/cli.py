"""The ``forwarder`` command."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

from forwarder import __version__
from forwarder.config import Config, ConfigError, NdjsonSink, load_config
from forwarder.deadletter import DeadLetter, ReportingDeadLetter, StderrDeadLetter
from forwarder.enrich import Enricher
from forwarder.pipeline import MustStop, NotDelivered, Pipeline
from forwarder.package import cli as package_commands
from forwarder.rules import cli as sigma_commands
from forwarder.sinks.base import Sink, SinkError
from forwarder.sinks.ndjson import NdjsonSink as NdjsonWriter
from forwarder.state.base import StateError
from forwarder.state.sqlite import SqliteStore

SAMPLES = Path(__file__).parent / "samples"


def _batch_pipeline(config: Config, sinks: Sequence[Sink], state: str, dead_letter: DeadLetter) -> Pipeline:
    store = SqliteStore(state)
    return Pipeline(Enricher(config, store, batch=True), sinks, dead_letter)


def cmd_enrich(args: argparse.Namespace) -> int:
    from forwarder.batch import run_files
    from forwarder.sinks import build_sink

    config = load_config(args.config)
    # The configured sinks when the file names any (a downloaded trail straight into the SIEM),
    # else NDJSON on standard output; what a sink refuses goes to the configured dead letter.
    named = "sinks" in config.model_fields_set
    dead_letter: StderrDeadLetter = ReportingDeadLetter(config.dead_letter.path) if named else StderrDeadLetter()
    stdout = NdjsonSink.model_construct(type="ndjson", path="-")  # valid as written: no validator to build
    sinks = [build_sink(sink) for sink in config.sinks] if named else [NdjsonWriter(stdout)]
    try:
        pipeline = _batch_pipeline(config, sinks, args.state or ":memory:", dead_letter)
        result = run_files(pipeline, args.paths)
        pipeline.enricher.store.close()
    finally:
        for sink in sinks:
            sink.close()
    if named:
        print(f"forwarder: {result.delivered} documents to {', '.join(sink.name for sink in sinks)}"
              + (f"; {dead_letter.count} dead-lettered in {config.dead_letter.path}" if dead_letter.count else ""),
              file=sys.stderr)
    return 1 if result.failed_files or dead_letter.count else 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from forwarder.preflight import problems

    config = load_config(args.file)
    found = problems(config)
    if found:  # said as load_config says an invalid file, and the same exit status
        lines = "\n".join(f"  {args.file}: {problem}" for problem in found)
        raise ConfigError(f"{args.file}: not ready for `forwarder run`\n{lines}")
    sinks = ", ".join(sink.type for sink in config.sinks)
    print(f"{args.file}: valid for `forwarder run` (source {config.source.type}, state {config.state.type}, sinks {sinks})")
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


def cmd_setup_elasticsearch(args: argparse.Namespace) -> int:
    from forwarder.config import ElasticsearchSink
    from forwarder.sinks.es_setup import setup_elasticsearch

    return _setup(args.config, "elasticsearch", lambda sink: setup_elasticsearch(sink) if isinstance(
        sink, ElasticsearchSink) else None)


def cmd_setup_opensearch(args: argparse.Namespace) -> int:
    from forwarder.config import OpenSearchSink
    from forwarder.sinks.os_setup import setup_opensearch

    return _setup(args.config, "opensearch", lambda sink: setup_opensearch(sink) if isinstance(
        sink, OpenSearchSink) else None)


def _setup(path: Path, kind: str, setup: Callable[[object], list[str] | None]) -> int:
    """``setup`` each sink of the configuration (None: not its kind), printing what it did."""
    found = False
    for sink in load_config(path).sinks:
        lines = setup(sink)
        found = found or lines is not None
        for line in lines or ():
            print(line)
    if not found:
        print(f"forwarder: {path}: no sink of type {kind} to set up", file=sys.stderr)
        return 2
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from forwarder import daemon, logs

    config = load_config(args.config)
    if args.metrics_listen is not None:  # several processes on one host, one configuration
        metrics = config.metrics.model_copy(update={"listen": args.metrics_listen or None})  # checked by _listen
        config = config.model_copy(update={"metrics": metrics})
    logs.configure(config.logging)
    return daemon.run(config, args.exit_when_idle, args.shutdown_timeout)


def cmd_backfill(args: argparse.Namespace) -> int:
    from forwarder import logs
    from forwarder.backfill import run_backfill

    config = load_config(args.config)
    logs.configure(config.logging)
    return run_backfill(config, args.date_from, args.date_to, args.bucket, args.prefix, not args.no_progress)


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from forwarder import logs
    from forwarder.config import SqsSource
    from forwarder.dlq import replay

    config = load_config(args.config)
    logs.configure(config.logging)
    what = args.what or ["documents", "objects"] + (["queue"] if isinstance(config.source, SqsSource) else [])
    try:
        return replay(config, list(dict.fromkeys(what)), args.dry_run)
    except (BotoCoreError, ClientError) as exc:
        print(f"forwarder: dlq replay: AWS refused or could not be reached: {exc}", file=sys.stderr)
        return 3


def iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _listen(text: str) -> str:
    if text:
        from forwarder.config import listen_address

        try:
            listen_address(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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

    check = commands.add_parser("check-config", help="validate a configuration file: what `forwarder run` will need")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_check_config)

    demo = commands.add_parser("demo", help="run the forwarder on its shipped sample story")
    demo.add_argument("--out", default="demo-output/enriched.ndjson", help="where the enriched NDJSON goes")
    demo.set_defaults(func=cmd_demo)

    run = commands.add_parser("run", help="the daemon: read the configured SQS queue or S3 bucket until stopped")
    run.add_argument("--config", type=Path, required=True, help="configuration file (YAML)")
    run.add_argument("--exit-when-idle", type=float, metavar="SECONDS",
                     help="exit once nothing has arrived for this long (tests, batch jobs)")
    run.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="SECONDS",
                     help="on SIGTERM, how long in-flight objects may take to finish (default 30)")
    run.add_argument("--metrics-listen", metavar="HOST:PORT", type=_listen,
                     help="serve /metrics and /healthz here instead of metrics.listen ('' for none): "
                          "one port per process when several run on one host")
    run.set_defaults(func=cmd_run)

    backfill = commands.add_parser("backfill", help="read the CloudTrail objects of a past date range from S3")
    backfill.add_argument("--config", type=Path, required=True, help="configuration file (YAML)")
    backfill.add_argument("--from", dest="date_from", type=iso_date, required=True, metavar="DATE", help="first day, YYYY-MM-DD (UTC)")
    backfill.add_argument("--to", dest="date_to", type=iso_date, required=True, metavar="DATE", help="last day, included")
    backfill.add_argument("--bucket", help="bucket to read (default: the s3 source's)")
    backfill.add_argument("--prefix", help="key prefix before AWSLogs/ (default: the s3 source's)")
    backfill.add_argument("--no-progress", action="store_true", help="no progress bar")
    backfill.set_defaults(func=cmd_backfill)

    setup = commands.add_parser("setup", help="prepare a destination for the forwarder")
    targets = setup.add_subparsers(dest="target", required=True, metavar="TARGET")
    setup_es = targets.add_parser("elasticsearch", help="install or update the Elasticsearch index templates")
    setup_es.add_argument("--config", type=Path, required=True, help="configuration file with an elasticsearch sink")
    setup_es.set_defaults(func=cmd_setup_elasticsearch)
    setup_os = targets.add_parser("opensearch", help="install or update the OpenSearch index templates (and ISM policy)")
    setup_os.add_argument("--config", type=Path, required=True, help="configuration file with an opensearch sink")
    setup_os.set_defaults(func=cmd_setup_opensearch)
    package_commands.register_setup(targets)  # `forwarder setup kibana`

    dlq = commands.add_parser("dlq", help="the dead letter: what could not be read or delivered")
    dlq_actions = dlq.add_subparsers(dest="action", required=True, metavar="ACTION")
    dlq_replay = dlq_actions.add_parser("replay", help="send dead-lettered documents, objects and queue messages back through")
    dlq_replay.add_argument("--config", type=Path, required=True, help="configuration file (YAML)")
    dlq_replay.add_argument("--what", action="append", choices=["documents", "objects", "queue"],
                            help="what to replay (repeatable; default: documents, objects, and the queue for an sqs source)")
    dlq_replay.add_argument("--dry-run", action="store_true", help="list what would be replayed, change nothing")
    dlq_replay.set_defaults(func=cmd_dlq_replay)

    sigma_commands.register(commands)
    package_commands.register(commands)  # `forwarder package splunk-app|kibana`
    __import__("forwarder.session_cli").session_cli.register(commands)  # `forwarder session show|list`
    __import__("forwarder.baseline.cli").baseline.cli.register(commands)  # `forwarder baseline build|show`
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ConfigError, StateError) as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 2
    except MustStop as exc:
        print(f"forwarder: {exc.reason}", file=sys.stderr)
        return 3
    except SinkError as exc:
        print(f"forwarder: {exc}", file=sys.stderr)
        return 3
    except NotDelivered as exc:  # nothing of what failed was kept: the same command can be run again
        print(f"forwarder: not delivered: {exc.reason}", file=sys.stderr)
        return 3 if exc.kind == "sink" else 1
    except BrokenPipeError:  # `forwarder demo | head`: the reader left, which is no error
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        _quiet_if_stdout_closed()


def _quiet_if_stdout_closed() -> None:
    """After the reader of standard output left, Python's flush at exit would complain in a
    traceback-like line; point standard output at /dev/null instead (as Python's docs advise)."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
