"""``forwarder backfill``: the objects of a date range, once, with progress and a resumable position.
``forwarder baseline build --from --to`` is the same reading with no sink: it learns, and ships nothing.

The range's keys are listed first (listing is cheap next to reading), so the bar knows its
total and the ETA means something. The position is its own checkpoint per range and prefix,
so a stopped backfill resumes where it was and never moves the live poller's checkpoint.
Held records still waiting when the range is done ship as they are (the end of the input).
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date

from botocore.exceptions import BotoCoreError, ClientError
from tqdm import tqdm

from forwarder.config import Config, ConfigError, S3Source
from forwarder.pipeline import MustStop, NotDelivered, Outcome, Pipeline
from forwarder.sources.objects import ObjectHandler
from forwarder.sources.s3poll import ACCOUNT, CHECKPOINT, MINUTE, days, in_order, list_keys, region_prefixes
from forwarder.sources.turns import Turn
from forwarder.state.base import StateStore


@dataclass(slots=True)
class BackfillResult:
    objects: int = 0
    records: int = 0
    delivered: int = 0
    already_done: int = 0


def backfill(config: S3Source, first: date, last: date, pipeline: Pipeline, objects: ObjectHandler,
             store: StateStore, stop: threading.Event, progress: bool = True, job: str = "backfill") -> BackfillResult:
    """``job`` names the checkpoints (a baseline build's position is not a backfill's) and the bar."""
    result = BackfillResult()
    work: list[tuple[str, str]] = []  # (checkpoint name, key)
    for prefix in region_prefixes(objects.s3, config):
        name = f"{job}:{first}:{last}:s3://{config.bucket}/{prefix}"
        done_until = (store.get(CHECKPOINT, name) or b"").decode()
        for day in days(first, last):
            for key in list_keys(objects.s3, config.bucket, f"{prefix}{day:%Y/%m/%d}/"):
                if key <= done_until:
                    result.already_done += 1
                else:
                    work.append((name, key))
    # A day at a time, each account's regions together by the minute in each file's name, as its
    # trail delivered them: an account's stream clock then moves as it did live (a call logged in
    # one region waits for a parent logged in another as it would have then), and no account's
    # clock runs more than a day (chains.account_lag_seconds) ahead of another's.
    work.sort(key=lambda item: (_minute(item[1])[:8], _account(item[1]), _minute(item[1]), item[1]))
    bar = tqdm(total=len(work) + result.already_done, initial=result.already_done, unit="obj",
               desc=job, disable=not progress, dynamic_ncols=True)

    def done(item: str, outcome: Outcome | None) -> None:
        name, key = item.split("\0", 1)
        result.objects += 1
        if outcome is not None:
            result.records += outcome.records
            result.delivered += outcome.delivered
        store.put(CHECKPOINT, name, key.encode())
        bar.update(1)
        bar.set_postfix(records=result.records, refresh=False)

    def handle(item: str, turn: Turn) -> Outcome | None:
        return objects.handle(config.bucket, item.split("\0", 1)[1], turn=turn)

    with ThreadPoolExecutor(config.concurrency, thread_name_prefix="backfill") as pool:
        try:
            in_order(pool, (f"{name}\0{key}" for name, key in work), handle, done, stop, 2 * config.concurrency)
        finally:
            bar.close()
    if not stop.is_set():
        flushed = pipeline.flush()
        objects.metrics.outcome(objects.label, flushed)
        result.delivered += flushed.delivered
    return result


def _account(key: str) -> str:
    parts = key.split("/")
    return next((part for part in parts if ACCOUNT.match(part)), "")


def _minute(key: str) -> str:
    found = MINUTE.search(key)
    return found.group(1) if found else ""


def run_backfill(config: Config, first: date, last: date, bucket: str | None, prefix: str | None, progress: bool,
                 *, learn: bool = False) -> int:
    """The command: the range, then a summary line; 0 when the whole range was read. ``learn``:
    no sink (``forwarder baseline build``): the state store keeps what the range taught."""
    from forwarder.daemon import build_runtime
    from forwarder.sources.s3get import ObjectReader

    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    source = _s3_source(config, bucket, prefix)
    job = "baseline" if learn else "backfill"
    runtime = build_runtime(config.model_copy(update={"sinks": []}) if learn else config, source.max_object_bytes)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    s3 = ObjectReader(source.region, source.endpoint_url, pool=source.concurrency + 2)
    objects = ObjectHandler(s3, runtime.pipeline, runtime.metrics, "backfill")
    try:
        result = backfill(source, first, last, runtime.pipeline, objects, runtime.store, stop, progress, job)
    except KeyboardInterrupt:
        stop.set()
        print(f"forwarder: {job} interrupted: run the same command again to resume", file=sys.stderr)
        return 130
    except NotDelivered as exc:  # nothing of the object was kept: the position is before it
        print(f"forwarder: {job} stopped: {exc.reason}; run the same command again to resume", file=sys.stderr)
        return 3 if isinstance(exc, MustStop) else 1
    except (BotoCoreError, ClientError) as exc:  # listing the range: nothing past the position was read
        print(f"forwarder: {job} stopped: listing s3://{source.bucket}/ failed: {exc}; "
              "run the same command again to resume", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    shipped = f"{result.delivered} documents delivered" if not learn else "learnt, nothing shipped"
    print(f"{job} {first}..{last}: {result.objects} objects read ({result.already_done} done before), "
          f"{result.records} records, {shipped}", file=sys.stderr)
    return 1 if stop.is_set() else 0


def _s3_source(config: Config, bucket: str | None, prefix: str | None) -> S3Source:
    current = config.source
    if isinstance(current, S3Source):
        return current.model_copy(update={k: v for k, v in (("bucket", bucket), ("prefix", prefix)) if v is not None})
    if bucket is None:
        raise ConfigError("backfill reads an S3 bucket: give --bucket, or a source of type s3 in the configuration")
    region = getattr(current, "region", None)
    endpoint = getattr(current, "endpoint_url", None)
    return S3Source(type="s3", bucket=bucket, prefix=prefix or "", region=region, endpoint_url=endpoint)
