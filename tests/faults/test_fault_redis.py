"""Redis, the shared state of two daemons on one queue, stopped mid-run and started again on
the same port: no record lost, both daemons survive to exit 0, no traceback.

Redis runs without persistence (as the session's Redis), so a restart also empties it: the
records here are assumptions and the calls of their sessions, none held back, so what is lost
with Redis's memory is sessions to resolve later chains with, never a record."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from aws_world import World
from ledger import Ledger, Run, Start, check, wait_for
from servers.redis_process import RedisProcess


def _config(world: World, name: str, redis_url: str) -> Path:
    """A config of its own per daemon: its own NDJSON file and dead letter, the same queue and Redis."""
    written = world.config(state={"type": "redis", "url": redis_url},
                           sinks=[{"type": "ndjson", "path": str(world.tmp / f"out-{name}.ndjson")}],
                           dead_letter={"path": str(world.tmp / f"dead-letter-{name}")})
    return Path(shutil.copy(written, world.tmp / f"forwarder-{name}.yaml"))


@pytest.mark.redis
@pytest.mark.parametrize("outage", [1.5, 5.0])
def test_redis_stopped_and_restarted_under_two_daemons_loses_nothing(world: World, ledger: Ledger, daemons: Start,
                                                                      redis_server: RedisProcess, outage: float) -> None:
    names = ("a", "b")
    outputs = [world.tmp / f"out-{name}.ndjson" for name in names]
    configs = [_config(world, name, redis_server.url) for name in names]
    ledger.notify(ledger.put(6, 50))
    runs: list[Run] = [daemons(config, "--exit-when-idle", "6", name=f"forwarder-{name}")
                       for name, config in zip(names, configs)]
    wait_for("the first wave delivered", lambda: ledger.delivered_so_far(outputs) >= 300, 60)
    redis_server.stop()
    ledger.notify(ledger.put(16, 50))  # work in hand while Redis is away
    time.sleep(outage)  # the outage itself: nothing is asserted about time
    redis_server.start()
    ended = {run: run.wait(180) for run in runs}
    check(ledger.tally_ndjson(outputs, [world.tmp / f"dead-letter-{name}" for name in names]), world, ended)
