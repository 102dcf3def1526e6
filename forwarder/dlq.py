"""``forwarder dlq replay``: send what was dead-lettered back through the forwarder once the
cause is fixed.

* documents: the records in ``dead-letter/documents.ndjson`` are enriched again and sent to the
  sink that refused them (or to every sink, for records that could not be enriched);
* objects: the objects named in ``dead-letter/objects.ndjson`` are read again (from S3 or disk)
  and go through the whole pipeline;
* queue: the messages the SQS redrive policy moved to the dead-letter queue go back to the
  source queue, where the running forwarder receives them as new.

A dead-letter file is first renamed aside, so the running forwarder appends new failures to a
fresh file meanwhile; what fails again is appended there with its new reason, and what was not
tried (a sink down, an interrupt) is put back as it was. An entry leaves the dead letter only
once it was accepted. A replay file left by an interrupted run is picked up by the next one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from forwarder import aws
from forwarder.config import MAX_OBJECT_BYTES, Config, ConfigError, S3Source, SqsSource
from forwarder.daemon import Runtime, build_runtime
from forwarder.deadletter import DOCUMENTS, OBJECTS, DeadLetter, append
from forwarder.enrich import Enricher
from forwarder.pipeline import Pipeline
from forwarder.reader import ObjectError
from forwarder.sinks.base import Sink
from forwarder.sources.objects import ObjectHandler
from forwarder.sources.s3get import ObjectReader

_CHUNK = 500  # documents enriched and sent per sink call
_REPLAYING = ".replaying-"

Say = Callable[[str], None]


@dataclass(slots=True)
class _Entry:
    line: bytes  # as it was in the file, to put back unchanged
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return str(self.data.get("source", "?"))


class _Counting(DeadLetter):
    """The live dead letter, counting what this replay adds to it."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.count = 0

    def _append(self, file: str, entry: dict[str, Any]) -> None:
        self.count += 1
        super()._append(file, entry)


class _Claimed:
    """The entries of one dead-letter file, renamed aside so that nobody else appends to them."""

    def __init__(self, directory: Path, name: str, dry_run: bool) -> None:
        self.live = directory / name
        self.dry_run = dry_run
        self.files = sorted(directory.glob(name + _REPLAYING + "*"))
        if self.live.exists():
            if dry_run:
                self.files.append(self.live)
            else:
                aside = directory / f"{name}{_REPLAYING}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
                self.live.rename(aside)
                self.files.append(aside)

    def entries(self) -> Iterator[_Entry]:
        for path in self.files:
            for line in path.read_bytes().splitlines():
                if line.strip():
                    try:
                        data = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        data = None
                    yield _Entry(line, data if isinstance(data, dict) else {})

    def put_back(self, entries: list[_Entry]) -> None:
        """Append entries unchanged to the live file (the running forwarder appends there too,
        one whole line per write, so lines never interleave)."""
        if entries and not self.dry_run:
            append(self.live, b"".join(entry.line + b"\n" for entry in entries))

    def finish(self) -> None:
        if not self.dry_run:
            for path in self.files:
                path.unlink(missing_ok=True)


def _record_bytes(entry: _Entry) -> bytes | None:
    if isinstance(entry.data.get("record"), dict):
        return orjson.dumps(entry.data["record"])
    if isinstance(entry.data.get("raw"), str):
        return entry.data["raw"].encode()
    return None


def _targets(entry: _Entry, sinks: list[Sink]) -> tuple[str, ...]:
    """The sink that refused the document; every sink for a record that was never enriched
    (or whose sink is no longer configured)."""
    names = {sink.name for sink in sinks}
    sink = entry.data.get("sink")
    return (sink,) if sink in names else tuple(sorted(names))


def _claim(config: Config, name: str, dry_run: bool, say: Say,
           describe: Callable[[_Entry], str]) -> tuple[_Claimed, list[_Entry]] | None:
    """The entries to replay; None when there is nothing to do (none, or a dry run that listed them)."""
    claimed = _Claimed(config.dead_letter.path, name, dry_run)
    entries = list(claimed.entries())
    what = name.removesuffix(".ndjson")
    if not entries:
        say(f"{what}: nothing to replay in {claimed.live}")
        return None
    if dry_run:
        for entry in entries:
            say(describe(entry))
        say(f"{what}: {len(entries)} would be replayed (dry run: nothing changed)")
        return None
    return claimed, entries


def _describe_document(entry: _Entry) -> str:
    kind = "record" if "record" in entry.data else "raw record" if "raw" in entry.data else "unreadable line"
    return (f"would replay {kind} from {entry.source} to {entry.data.get('sink') or 'every sink'}: "
            f"{entry.data.get('reason', '')}")


def replay_documents(config: Config, dry_run: bool, say: Say) -> int:
    work = _claim(config, DOCUMENTS, dry_run, say, _describe_document)
    if work is None:
        return 0
    claimed, entries = work
    runtime, dead_letter = _runtime(config)
    unusable = [entry for entry in entries if _record_bytes(entry) is None]
    claimed.put_back(unusable)
    groups: dict[tuple[str, ...], list[_Entry]] = {}
    for entry in entries:
        if _record_bytes(entry) is not None:
            groups.setdefault(_targets(entry, runtime.pipeline.sinks), []).append(entry)
    tried = 0
    pending = {id(entry): entry for group in groups.values() for entry in group}
    try:
        for names, group in groups.items():
            # One enricher per sink group: its duplicate filter must not drop the copy of a
            # record that another sink refused too.
            sinks = [sink for sink in runtime.pipeline.sinks if sink.name in names]
            enricher = Enricher(config, runtime.store, runtime.pipeline.enricher.policy)
            pipeline = Pipeline(enricher, sinks, dead_letter)
            for start in range(0, len(group), _CHUNK):
                chunk = group[start:start + _CHUNK]
                pipeline.process_entries([(entry.source, _record_bytes(entry) or b"") for entry in chunk])
                tried += len(chunk)
                for entry in chunk:
                    pending.pop(id(entry), None)
    finally:
        claimed.put_back(list(pending.values()))  # not tried (a sink failed, an interrupt): back as they were
        claimed.finish()
        runtime.close()
    say(f"documents: {tried - dead_letter.count} replayed, {dead_letter.count} dead-lettered again, "
        f"{len(unusable)} kept (no record in the entry)")
    return 1 if dead_letter.count or unusable else 0


def replay_objects(config: Config, dry_run: bool, say: Say) -> int:
    work = _claim(config, OBJECTS, dry_run, say,
                  lambda entry: f"would read again {entry.source}: {entry.data.get('reason', '')}")
    if work is None:
        return 0
    claimed, entries = work
    runtime, dead_letter = _runtime(config)
    source = config.source if isinstance(config.source, SqsSource | S3Source) else None
    s3 = ObjectReader(source.region, source.endpoint_url) if source else ObjectReader(None, None)
    objects = ObjectHandler(s3, runtime.pipeline, runtime.metrics, "replay")
    kept: list[_Entry] = []
    tried = 0
    try:
        for entry in entries:
            name = entry.source
            if name.startswith("s3://"):
                bucket, _, key = name.removeprefix("s3://").partition("/")
                objects.handle(bucket, key)
            elif not entry.data:
                say(f"kept a line that is not a dead-letter entry: {entry.line[:200]!r}")
                kept.append(entry)
            elif name.startswith("sqs:"):
                say(f"kept {name}: its records came inside a queue message, there is no object to read again")
                kept.append(entry)
            else:
                _replay_file(Path(name), runtime.pipeline, dead_letter)
            tried += 1
    finally:
        claimed.put_back(kept + entries[tried:])  # not tried (S3 or a sink failed): back as they were
        claimed.finish()
        runtime.close()
    replayed = tried - len(kept)
    say(f"objects: {replayed} read again, {dead_letter.count} dead-lettered again, {len(kept)} kept")
    return 1 if dead_letter.count or kept else 0


def _replay_file(path: Path, pipeline: Pipeline, dead_letter: DeadLetter) -> None:
    try:
        pipeline.process(str(path), path.read_bytes())
    except OSError as exc:
        dead_letter.object(str(path), f"cannot read: {exc.strerror or exc}")
    except ObjectError as exc:
        dead_letter.object(str(path), exc.reason)


def replay_queue(config: Config, dry_run: bool, say: Say) -> int:
    source = config.source
    if not isinstance(source, SqsSource):
        raise ConfigError("source: replaying the dead-letter queue needs source type sqs")
    sqs = aws.client("sqs", source.region, source.endpoint_url)
    policy = sqs.get_queue_attributes(QueueUrl=source.queue_url, AttributeNames=["RedrivePolicy"])
    redrive = policy.get("Attributes", {}).get("RedrivePolicy")
    if not redrive:
        raise ConfigError(f"{source.queue_url} has no redrive policy, so no dead-letter queue to replay")
    _, _, _, _, account, name = orjson.loads(redrive)["deadLetterTargetArn"].split(":", 5)
    dlq = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    if dry_run:
        count = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
        waiting = count.get("Attributes", {}).get("ApproximateNumberOfMessages", "?")
        say(f"queue: about {waiting} messages would move from {dlq} to {source.queue_url} (dry run: nothing changed)")
        return 0
    moved = failed = 0
    while True:
        # Each message stays invisible in the dead-letter queue until it is safely in the
        # source queue; one that could not be sent shows up there again later.
        messages = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=120,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        entries = [
            {"Id": str(n), "MessageBody": m["Body"], **({"MessageAttributes": m["MessageAttributes"]}
                                                       if m.get("MessageAttributes") else {})}
            for n, m in enumerate(messages)
        ]
        sent = sqs.send_message_batch(QueueUrl=source.queue_url, Entries=entries)
        for problem in sent.get("Failed", []):
            say(f"not moved {messages[int(problem['Id'])]['MessageId']}: {problem.get('Message', problem.get('Code'))}")
        done = [{"Id": ok["Id"], "ReceiptHandle": messages[int(ok["Id"])]["ReceiptHandle"]}
                for ok in sent.get("Successful", [])]
        if done:
            sqs.delete_message_batch(QueueUrl=dlq, Entries=done)
        moved += len(done)
        failed += len(sent.get("Failed", []))
    say(f"queue: {moved} messages moved from {dlq} to {source.queue_url}, {failed} not moved")
    return 1 if failed else 0


def _runtime(config: Config) -> tuple[Runtime, _Counting]:
    """The daemon's runtime, its dead letter counting what this replay adds."""
    source = config.source
    runtime = build_runtime(config, source.max_object_bytes if isinstance(source, SqsSource | S3Source) else MAX_OBJECT_BYTES)
    counting = _Counting(config.dead_letter.path)
    runtime.pipeline.dead_letter = counting
    return runtime, counting


REPLAY: dict[str, Callable[[Config, bool, Say], int]] = {
    "documents": replay_documents,
    "objects": replay_objects,
    "queue": replay_queue,
}


def replay(config: Config, what: list[str], dry_run: bool, say: Say = print) -> int:
    """Replay each of ``what`` in turn; 0 when everything went back, 1 when some stayed."""
    return max(REPLAY[name](config, dry_run, say) for name in what)
