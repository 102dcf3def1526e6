"""The daemon gives the batch's documents whatever order the objects arrive in.

The demo story (three accounts, chains across them, both copies of cross-account calls) is
put in S3 and announced on SQS in several orders: one account's objects all first (as a
backfill reads them), the accounts in reverse, and the accounts interleaved. Each account's
own files keep their order, as each trail delivers them: the hold-back's bound is that an
account's stream, once past a session's start by the window, brings nothing older (DESIGN.md).
Every order must give `forwarder enrich`'s documents, every `assumerole` field equal.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from typing import Any

import orjson
import pytest
import yaml
from aws_world import World
from cloudtrail import without_baseline

from forwarder.cli import main
from paths import REPO

SAMPLES = REPO / "forwarder" / "samples"
DEMO = SAMPLES / "demo"


def _delivered(key: str) -> tuple[str, str]:
    """An account's files in the order its trail delivers them, every region together: by the
    minute in the name (``..._20260331T0725Z_...``)."""
    return key.split("/")[1], key.rsplit("_", 2)[-2]


def _by_account(keys: list[str]) -> list[str]:
    return sorted(keys, key=_delivered)


def _accounts_reversed(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda key: (-int(_delivered(key)[0]), _delivered(key)[1]))


def _interleaved(keys: list[str]) -> list[str]:
    accounts: dict[str, list[str]] = {}
    for key in sorted(keys, key=_delivered):
        accounts.setdefault(key.split("/")[1], []).append(key)
    lanes = list(accounts.values())[::-1]  # the last account first, so no order is the natural one
    out: list[str] = []
    while any(lanes):
        for lane in lanes:
            if lane:
                out.append(lane.pop(0))
    return out


def _enrich_documents() -> dict[str, dict[str, Any]]:
    out = io.BytesIO()
    wrapper = io.TextIOWrapper(out, encoding="utf-8")
    with redirect_stdout(wrapper):
        assert main(["enrich", "--config", str(SAMPLES / "demo-config.yaml"), str(DEMO)]) == 0
        wrapper.flush()
    return _keyed([orjson.loads(line) for line in out.getvalue().splitlines()])


def _chains(document: dict[str, Any]) -> dict[str, Any] | None:
    """What the enrichment says of the chains, every field of it. The behaviour baseline's
    verdicts are left out: they depend on which of two objects in work was read first, which
    the orders here vary on purpose (docs/baseline.md, "What it costs, and its limits")."""
    assumerole = document.get("assumerole")
    return without_baseline(assumerole) if assumerole is not None else None


def _keyed(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['recipientAccountId']}:{d['eventID']}": d for d in documents}


@pytest.mark.parametrize("order", [_by_account, _accounts_reversed, _interleaved],
                         ids=["by-account", "accounts-reversed", "interleaved"])
def test_every_delivery_order_gives_the_batch_documents(world: World, order: Any) -> None:
    keys = [str(path.relative_to(DEMO)) for path in DEMO.rglob("*.json.gz")]
    for key in keys:
        world.put_raw(key, (DEMO / key).read_bytes())
    for key in order(keys):
        world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
    settings = yaml.safe_load((SAMPLES / "demo-config.yaml").read_text())
    # One object at a time, so that the order tested is the order read: the story packs a day
    # into files hours apart, where objects in work together could swap more than the window.
    source = {"type": "sqs", "queue_url": world.queue_url, "wait_time_seconds": 1, "visibility_timeout_seconds": 30,
              "concurrency": 1}
    config = world.config(source, **{k: v for k, v in settings.items() if k != "select"}, select="sessions")
    assert world.run(config, idle=3.0) == 0
    daemon = _keyed(world.documents())
    batch = _enrich_documents()
    assert sorted(daemon) == sorted(batch)
    different = {key: (_chains(daemon[key]), _chains(batch[key])) for key in batch if _chains(daemon[key]) != _chains(batch[key])}
    assert different == {}


def test_a_backfill_of_the_story_gives_the_batch_documents(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    for path in DEMO.rglob("*.json.gz"):
        world.put_raw(str(path.relative_to(DEMO)), path.read_bytes())
    settings = yaml.safe_load((SAMPLES / "demo-config.yaml").read_text())
    config = world.config(source={"type": "s3", "bucket": world.bucket, "concurrency": 4},
                          **{k: v for k, v in settings.items() if k != "select"}, select="sessions")
    assert main(["backfill", "--config", str(config), "--from", "2026-03-31", "--to", "2026-03-31", "--no-progress"]) == 0
    capsys.readouterr()
    backfilled = _keyed(world.documents())
    batch = _enrich_documents()
    assert sorted(backfilled) == sorted(batch)
    assert {k: _chains(d) for k, d in backfilled.items()} == {k: _chains(d) for k, d in batch.items()}


def test_two_daemons_on_one_queue_with_the_story_split_between_them_give_the_batch_documents(
        world: World, redis_url: str) -> None:
    """Scale-out: the children's accounts read by one process, the parents' by the other. The
    first holds the children in Redis; the second stores their parents' sessions and finds them
    waiting there (each process's own view would leave them to their deadlines, unresolved)."""
    import signal
    import time
    import uuid

    from aws_world import wait_until

    keys = [str(path.relative_to(DEMO)) for path in DEMO.rglob("*.json.gz")]
    for key in keys:
        world.put_raw(key, (DEMO / key).read_bytes())
    children = [key for key in _accounts_reversed(keys) if not key.startswith("AWSLogs/111111111111/")]
    parents = [key for key in _accounts_reversed(keys) if key.startswith("AWSLogs/111111111111/")]
    settings = yaml.safe_load((SAMPLES / "demo-config.yaml").read_text())
    state = {"type": "redis", "url": redis_url, "key_prefix": f"split{uuid.uuid4().hex[:8]}:"}
    source = {"type": "sqs", "queue_url": world.queue_url, "wait_time_seconds": 1, "visibility_timeout_seconds": 30,
              "concurrency": 1}
    outputs = [world.tmp / "out-a.ndjson", world.tmp / "out-b.ndjson"]
    configs = []
    for name, output in zip("ab", outputs):
        written = world.config(source, **{k: v for k, v in settings.items() if k != "select"}, select="sessions",
                               state=state, sinks=[{"type": "ndjson", "path": str(output)}],
                               dead_letter={"path": str(world.tmp / f"dead-letter-{name}")})
        configs.append(written.rename(world.tmp / f"forwarder-{name}.yaml"))
    first = world.spawn_logged(world.tmp / "a.log", "run", "--config", str(configs[0]), "--exit-when-idle", "6")
    second = None
    try:
        for key in children:
            world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
        assert wait_until(lambda: world.queue_depth() == 0, 60), "the first daemon did not take the children's objects"
        first.send_signal(signal.SIGSTOP)  # it stays connected to Redis and the queue, but takes nothing more
        time.sleep(2.5)  # its long poll open at the stop (1 s) ends empty: the queue holds nothing yet
        second = world.spawn_logged(world.tmp / "b.log", "run", "--config", str(configs[1]), "--exit-when-idle", "6")
        for key in parents:
            world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})
        assert wait_until(lambda: world.queue_depth() == 0, 60), "the second daemon did not take the parents' objects"
        first.send_signal(signal.SIGCONT)
        assert first.wait(120) == 0 and second.wait(120) == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
    daemons = [orjson.loads(line) for output in outputs if output.exists() for line in output.read_bytes().splitlines()]
    assert all(output.exists() for output in outputs), "each daemon must have shipped its share"
    shipped = _keyed(daemons)
    assert len(shipped) == len(daemons), "a record shipped twice"
    batch = _enrich_documents()
    assert sorted(shipped) == sorted(batch)
    different = {key: (_chains(shipped[key]), _chains(batch[key])) for key in batch if _chains(shipped[key]) != _chains(batch[key])}
    assert different == {}
