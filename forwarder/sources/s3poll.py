"""S3 prefix polling for trails without notifications, and the date-range walk backfill uses.

Keys under ``AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/`` sort by date and, within a
day, by the minute in the file name, so a listing with ``StartAfter`` continues where the
previous one stopped. The position is kept per account and region in the state store (kind
``checkpoint``) and advances only over keys whose records every sink accepted (or that were
dead-lettered), in key order.

Within a minute the names end in a random suffix, and CloudTrail may write several files of
the same minute one after the other: a file can appear under a key that sorts before one
already read. So each poll lists again from ``lookback_minutes`` before the checkpoint's
minute, and reads what it finds there that is not marked done (kind ``polled``, kept for
twice the lookback).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

from forwarder.config import S3Source as S3Config
from forwarder.metrics import Health, Metrics
from forwarder.errors import defect
from forwarder.pipeline import MustStop, NotDelivered, Outcome, Pipeline
from forwarder.sources.objects import ObjectHandler, transient
from forwarder.sources.s3get import ObjectReader
from forwarder.sources.turns import Turn, Turns
from forwarder.state.base import StateError, StateStore, Writes

log = logging.getLogger("forwarder.s3poll")

ACCOUNT = re.compile(r"^\d{12}$")
ORG_ID = re.compile(r"^o-[a-z0-9]{10,32}$")
CHECKPOINT = "checkpoint"
POLLED = "polled"
# <account>_CloudTrail_<region>_<yyyymmdd>T<hhmm>Z_<random>.json.gz
MINUTE = re.compile(r"_(\d{8}T\d{4})Z_[^/]*$")


def _base(prefix: str) -> str:
    return f"{prefix.rstrip('/')}/AWSLogs/" if prefix.strip("/") else "AWSLogs/"


def _folders(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The names of the 'folders' directly under ``prefix``."""
    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        names.extend(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
    return names


def region_prefixes(s3: Any, config: S3Config) -> list[str]:
    """Every ``.../CloudTrail/<region>/`` prefix of the bucket, narrowed by accounts and regions."""
    base = _base(config.prefix)
    account_dirs: list[tuple[str, str]] = []
    for name in _folders(s3, config.bucket, base):
        if ACCOUNT.match(name):
            account_dirs.append((name, f"{base}{name}/"))
        elif ORG_ID.match(name):  # an organization trail: AWSLogs/<org-id>/<account>/
            account_dirs.extend(
                (account, f"{base}{name}/{account}/")
                for account in _folders(s3, config.bucket, f"{base}{name}/") if ACCOUNT.match(account)
            )
    found = []
    for account, folder in account_dirs:
        if config.accounts is not None and account not in config.accounts:
            continue
        for region in _folders(s3, config.bucket, f"{folder}CloudTrail/"):
            if config.regions is None or region in config.regions:
                found.append(f"{folder}CloudTrail/{region}/")
    return sorted(found)


def list_keys(s3: Any, bucket: str, prefix: str, start_after: str = "") -> Iterator[str]:
    kwargs = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for item in page.get("Contents", []):
            yield item["Key"]


def relist_from(key: str, lookback: timedelta) -> str:
    """The ``StartAfter`` that lists again every key named ``lookback`` or less before ``key``'s
    minute; ``key`` itself when its name is not CloudTrail's."""
    folder, _, name = key.rpartition("/")
    minute = MINUTE.search(name)
    day = folder.rsplit("/", 3)
    if minute is None or len(day) < 4:
        return key
    at = datetime.strptime(minute.group(1), "%Y%m%dT%H%M") - lookback
    return f"{day[0]}/{at:%Y/%m/%d}/{name[:minute.start(1)]}{at:%Y%m%dT%H%M}Z"


def in_order(
    pool: ThreadPoolExecutor, keys: Iterable[str], handle: Callable[[str, Turn], Outcome | None],
    done: Callable[[str, Outcome | None], None], stop: threading.Event, ahead: int,
) -> None:
    """Handle keys concurrently (``ahead`` at a time), each enriched in key order (its ``Turn``,
    forwarder.sources.turns), and report them done in key order, so a checkpoint never passes a
    key that is not finished. An error stops the walk and is raised once the keys already
    started have finished."""
    window: deque[tuple[str, Future[Outcome | None]]] = deque()
    keys = iter(keys)
    turns = Turns()

    def taking_turns(key: str, turn: Turn) -> Outcome | None:
        try:
            return handle(key, turn)
        finally:
            turn.finish()  # also when it never reached its enrichment: the next may go

    submitted = 0
    try:
        while True:
            while len(window) < ahead and not stop.is_set():
                key = next(keys, None)
                if key is None:
                    break
                # The pool starts work in submission order, so an earlier turn is always running.
                window.append((key, pool.submit(taking_turns, key, turns.turn(submitted))))
                submitted += 1
            if not window:
                return
            key, future = window.popleft()
            done(key, future.result())
    finally:
        for _, future in window:
            future.cancel()
        for _, future in window:
            if not future.cancelled():
                future.exception()  # wait: nothing may still run when the caller moves on


class S3Poller:
    label = "s3"

    def __init__(self, config: S3Config, pipeline: Pipeline, store: StateStore, metrics: Metrics, health: Health,
                 stop: threading.Event) -> None:
        self.config = config
        self.store = store
        self.health = health
        self.stop = stop
        self.objects = ObjectHandler(ObjectReader(config.region, config.endpoint_url, pool=config.concurrency + 2),
                                     pipeline, metrics, self.label)
        self.s3 = self.objects.s3
        self.metrics = metrics
        self._pool = ThreadPoolExecutor(config.concurrency, thread_name_prefix="s3-object")
        self._next_poll = 0.0
        self._arrived = 0

    def step(self) -> int:
        """Poll when due (every prefix, to its end or until stopped); otherwise wait a moment."""
        if time.monotonic() < self._next_poll:
            self.stop.wait(min(0.5, self._next_poll - time.monotonic()))
            return 0
        self._arrived = 0
        try:
            for prefix in region_prefixes(self.s3, self.config):
                if self.stop.is_set():
                    break
                self._poll(prefix)
            self.health.receive()
            self.metrics.last_receive.set_to_current_time()
        except MustStop:
            raise
        except NotDelivered as exc:  # nothing of the failed object was kept: the checkpoint holds the place
            self._stopped_short(exc.reason, exc.kind, exc.transient)
        except StateError as exc:
            self._stopped_short(str(exc), "state", exc.transient)
        except Exception as exc:  # noqa: BLE001 - a listing failing, or a defect: the checkpoint holds the place
            self._stopped_short(defect(exc) if not transient(exc) else str(exc), "s3_poll", transient(exc))
        self._next_poll = time.monotonic() + self.config.poll_interval_seconds
        return self._arrived

    def _stopped_short(self, reason: str, kind: str, retry: bool) -> None:
        log.log(logging.WARNING if retry else logging.ERROR,
                "polling stopped short: it resumes from the checkpoint at the next poll",
                extra={"bucket": self.config.bucket, "kind": kind, "reason": reason,
                       "retry_in_seconds": self.config.poll_interval_seconds})
        self.metrics.errors.labels(kind).inc()

    def busy(self) -> bool:
        return False  # each poll finishes (or stops at a key boundary) within step()

    def drain(self, timeout: float) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _poll(self, prefix: str) -> None:
        name = f"s3://{self.config.bucket}/{prefix}"
        stored = self.store.get(CHECKPOINT, name)
        position = stored.decode() if stored is not None else ""
        lookback = timedelta(minutes=self.config.lookback_minutes)
        if position:
            start = relist_from(position, lookback)
        else:
            first_day = datetime.now(UTC).date() - timedelta(days=self.config.start_days_back)
            start = f"{prefix}{first_day:%Y/%m/%d}/"
        keep = 2 * lookback.total_seconds()

        def new(key: str) -> bool:
            if self.store.get(POLLED, f"s3://{self.config.bucket}/{key}") is not None:
                return False
            if key > position:
                return True
            log.info("a file appeared under a key before the checkpoint: reading it now",
                     extra={"object": f"s3://{self.config.bucket}/{key}", "checkpoint": position})
            return True

        def handle(key: str, turn: Turn) -> Outcome | None:
            # The mark that the object is done commits with what its enrichment learnt.
            polled = Writes(values={(POLLED, f"s3://{self.config.bucket}/{key}"): (b"", time.time() + keep)})
            return self.objects.handle(self.config.bucket, key, polled, turn)

        def done(key: str, outcome: Outcome | None) -> None:
            self._arrived += 1
            # Reported in key order, so a key past the starting position is the furthest yet;
            # a late key before it leaves the checkpoint where it is. A crash before this line
            # re-lists the key, and its polled mark skips it.
            if key > position:
                self.store.put(CHECKPOINT, name, key.encode())

        keys = (key for key in list_keys(self.s3, self.config.bucket, prefix, start) if new(key))
        in_order(self._pool, keys, handle, done, self.stop, 2 * self.config.concurrency)
        self.store.expire(POLLED, time.time())


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
