"""What a fault test counts: every record put in S3, and where each one ended.

The delivery promise, as the tests check it: every record put in S3 is delivered (a document
with its eventID) or dead-lettered (its object named in objects.ndjson, or the record itself in
documents.ndjson); nothing else comes out; a record out twice is a duplicate with the same
eventID, which the promise allows. Whatever is neither is lost.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import yaml
from aws_world import World, json_logs, log_key, wait_until, when
from cloudtrail import assume, call, issued_key, session_identity, user

from forwarder.deadletter import DOCUMENTS, OBJECTS

ROLE = "arn:aws:iam::111111111111:role/Ops"
TRACEBACK = "Traceback (most recent call last)"


def read_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []


@dataclass
class Tally:
    expected: int
    delivered: Counter[Any] = field(default_factory=Counter)
    dead_lettered: Counter[Any] = field(default_factory=Counter)
    unreadable: list[bytes] = field(default_factory=list)  # output lines that are no JSON document
    lost: set[str] = field(default_factory=set)  # put in S3, neither delivered nor dead-lettered
    foreign: Counter[Any] = field(default_factory=Counter)  # out, but never put in S3

    def __str__(self) -> str:
        twice = sum(n - 1 for n in self.delivered.values() if n > 1)
        return (f"{self.expected} records in: {len(self.delivered)} delivered ({twice} duplicate deliveries), "
                f"{len(self.dead_lettered)} dead-lettered, {len(self.lost)} lost, "
                f"{sum(self.foreign.values())} foreign, {len(self.unreadable)} unreadable lines")

    def problems(self) -> list[str]:
        found = []
        if self.unreadable:
            found.append(f"unreadable output lines, e.g. {self.unreadable[:2]}")
        if self.foreign:
            found.append(f"documents no record put in S3 had, e.g. {list(self.foreign)[:3]}")
        if self.lost:
            found.append(f"{len(self.lost)} records lost, e.g. {sorted(self.lost)[:3]}")
        return found


class Ledger:
    """The objects a test put in S3, by name (``s3://bucket/key``), with their records' eventIDs."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.objects: dict[str, list[str]] = {}
        self._minute = 0

    def put(self, objects: int, records: int) -> list[str]:
        """``objects`` new CloudTrail objects, a minute apart, of ``records`` records each: role
        assumptions, each followed by a call made with the session it opened (so that every
        record reads or writes the state store)."""
        keys = []
        for _ in range(objects):
            minute, self._minute = self._minute, self._minute + 1
            start = when("2026-03-31T07:00:00Z") + timedelta(minutes=minute)
            batch: list[dict[str, Any]] = []
            for n in range(records):
                at = start + timedelta(milliseconds=n)
                if n % 2 == 0:
                    batch.append(assume(user("111111111111", "alice"), ROLE, at))
                else:
                    created = (at - timedelta(milliseconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                    batch.append(call(session_identity(ROLE, issued_key(batch[-1]), created), at))
            stamp = f"{7 + minute // 60:02d}{minute % 60:02d}"
            key = self.world.put_log(log_key("111111111111", "2026/03/31", stamp), batch)
            self.objects[f"s3://{self.world.bucket}/{key}"] = [record["eventID"] for record in batch]
            keys.append(key)
        return keys

    def put_children_first(self, pairs: int) -> tuple[str, str]:
        """Two objects: ``pairs`` calls made with sessions nobody has seen yet, then (a minute
        later in name, a second earlier in event time) the ``pairs`` assumptions that opened
        them. Read in that order, every call is held until its parent arrives. Returns the
        (children's, parents') keys."""
        start = when("2026-03-31T09:00:00Z")
        parents = [assume(user("111111111111", "alice"), ROLE, start + timedelta(milliseconds=n)) for n in range(pairs)]
        created = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        children = [call(session_identity(ROLE, issued_key(parent), created), start + timedelta(seconds=1, milliseconds=n))
                    for n, parent in enumerate(parents)]
        keys = []
        for stamp, batch in (("0900", children), ("0901", parents)):
            key = self.world.put_log(log_key("111111111111", "2026/03/31", stamp), batch)
            self.objects[f"s3://{self.world.bucket}/{key}"] = [record["eventID"] for record in batch]
            keys.append(key)
        return keys[0], keys[1]

    def notify(self, keys: Iterable[str]) -> None:
        """One CloudTrail notification per object on the world's queue."""
        for key in keys:
            self.world.send({"s3Bucket": self.world.bucket, "s3ObjectKey": [key]})

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.objects.values())

    def tally(self, delivered: Iterable[Any], dead_letters: Iterable[Path], unreadable: Iterable[bytes] = ()) -> Tally:
        """Count ``delivered`` eventIDs and the dead-letter directories against what was put."""
        expected = {event_id for ids in self.objects.values() for event_id in ids}
        tally = Tally(len(expected), unreadable=list(unreadable))
        for event_id in delivered:
            (tally.delivered if event_id in expected else tally.foreign)[event_id] += 1
        for directory in dead_letters:
            for line in read_lines(directory / OBJECTS):
                tally.dead_lettered.update(self.objects.get(orjson.loads(line)["source"], []))
            for line in read_lines(directory / DOCUMENTS):
                event_id = _dead_record_id(orjson.loads(line), expected)
                (tally.dead_lettered if event_id in expected else tally.foreign)[event_id] += 1
        tally.lost = expected - set(tally.delivered) - set(tally.dead_lettered)
        return tally

    def tally_ndjson(self, outputs: Iterable[Path], dead_letters: Iterable[Path]) -> Tally:
        """``tally`` of NDJSON sink files: one document per line, each with its eventID."""
        ids: list[Any] = []
        unreadable: list[bytes] = []
        for path in outputs:
            for line in read_lines(path):
                try:
                    ids.append(orjson.loads(line).get("eventID"))
                except (orjson.JSONDecodeError, AttributeError):
                    unreadable.append(line[:200])
        return self.tally(ids, dead_letters, unreadable)

    def delivered_so_far(self, outputs: Iterable[Path]) -> int:
        return sum(len(read_lines(path)) for path in outputs)


def _dead_record_id(entry: dict[str, Any], expected: set[str]) -> Any:
    record = entry.get("record")
    if isinstance(record, dict):
        return record.get("eventID")
    raw = entry.get("raw")
    try:
        return orjson.loads(raw).get("eventID")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return next((event_id for event_id in expected if raw and event_id in raw), None)


@dataclass(eq=False)
class Run:
    """One ``forwarder run`` process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def logs(self) -> list[dict[str, Any]]:
        return json_logs(self.log.read_bytes()) if self.log.exists() else []

    def logged(self, since: int = 0, levels: tuple[str, ...] = ("WARNING", "ERROR", "CRITICAL")) -> list[dict[str, Any]]:
        """Log entries at ``levels``, from entry number ``since`` on."""
        return [entry for entry in self.logs()[since:] if entry.get("level") in levels]

    def wait(self, timeout: float) -> int:
        """The exit code; a process still running after ``timeout`` seconds is a failure."""
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} still running after {timeout:g}s; its log ends:\n{self.text()[-3000:]}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def problems(self, code: int) -> list[str]:
        """What is wrong with how it ended: exit 0 at --exit-when-idle, its "stopped" line
        written, and no traceback anywhere."""
        text = self.text()
        found = []
        if code != 0:
            found.append(f"{self.name} exited {code}; its log ends:\n{text[-2000:]}")
        if TRACEBACK in text:
            found.append(f"{self.name} wrote a traceback:\n{_around(text, TRACEBACK)}")
        if not any(entry.get("message") == "forwarder stopped" for entry in self.logs()):
            found.append(f"{self.name} did not log that it stopped")
        return found


def check(tally: Tally, world: World, ended: dict[Run, int]) -> None:
    """The fault suite's verdict, every problem at once: the counts, how each daemon ended,
    and an empty queue (each message deleted, once its records were out)."""
    problems = tally.problems() + [problem for run, code in ended.items() for problem in run.problems(code)]
    depth = world.queue_depth()
    if depth:
        problems.append(f"{depth} messages still on the queue")
    assert not problems, f"{tally}\n" + "\n".join(problems)


# The `daemons` fixture: start(config, *arguments, name=...) -> Run.
Start = Callable[..., Run]


def _around(text: str, needle: str, width: int = 1500) -> str:
    at = text.find(needle)
    return text[max(0, at - 300): at + width]


def with_settings(config: Path, section: str, **changes: Any) -> Path:
    """``config`` (as World.config wrote it) with ``changes`` made to one of its sections."""
    settings = yaml.safe_load(config.read_text())
    settings[section] = {**settings[section], **changes}
    config.write_text(yaml.safe_dump(settings))
    return config


def wait_for(what: str, check: Callable[[], Any], seconds: float, every: float = 0.1) -> None:
    """``wait_until`` that fails the test, saying what did not happen."""
    assert wait_until(check, seconds, every), f"not within {seconds:g}s: {what}"
