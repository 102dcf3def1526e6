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
@pytest.mark.parametrize("outage", [1.5, 5.0, 30.0])
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


@pytest.mark.redis
def test_a_daemon_killed_while_it_holds_claims_leaves_them_to_the_other_after_the_lease(
        world: World, ledger: Ledger, daemons: Start, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Children held in Redis; their parents read by a daemon whose sink never confirms (its
    collector holds the acks), so it dies holding the children's claims. The other daemon ships
    parents and children, resolved, once the lease is over: nothing lost, nothing left held."""
    import uuid

    import redis
    from servers.hec_server import HecServer, Token

    token = "6a5d2f0b-3c4e-4f70-9b8c-0d1e2f3a4b5c"
    monkeypatch.setenv("TEST_HEC_TOKEN", token)
    prefix = f"kill{uuid.uuid4().hex[:8]}:"
    state = {"type": "redis", "url": redis_url, "key_prefix": prefix}
    children, parents = ledger.put_children_first(20)
    ledger.notify([children])
    run = daemons(world.config(state=state), "--exit-when-idle", "3", name="holder")
    assert run.wait(60) == 0
    assert world.documents() == []
    client = redis.Redis.from_url(redis_url)
    assert client.scard(f"{prefix}held:all") == 20  # the children wait for their parents

    with HecServer([Token(token, ack=True)]) as hec:
        hec.hold_acks()  # the events arrive, but the collector never confirms them
        stuck_config = world.config(state=state, sinks=[{
            "type": "splunk_hec", "url": hec.url, "token": {"env": "TEST_HEC_TOKEN"}, "ack": True,
            "ack_timeout_seconds": 120, "ack_poll_seconds": 0.2}])
        stuck_config = stuck_config.rename(world.tmp / "forwarder-stuck.yaml")
        ledger.notify([parents])
        stuck = daemons(stuck_config, name="stuck")
        claims = lambda: list(client.scan_iter(match=f"{prefix}claim:*"))  # noqa: E731
        wait_for("the stuck daemon claimed the children", lambda: len(claims()) == 20, 60)
        stuck.kill()  # SIGKILL: its claims stay until their lease (3 s) runs out

    final = world.config(state=state)
    shipper = daemons(final, "--exit-when-idle", "6", name="shipper")
    code = shipper.wait(120)
    check(ledger.tally_ndjson([world.output], [world.dead_letter]), world, {shipper: code})
    shipped = {doc["eventID"]: doc for doc in world.documents()}
    child_ids = ledger.objects[f"s3://{world.bucket}/{children}"]
    assert all(shipped[event_id]["assumerole"]["chain"]["resolved"] is True for event_id in child_ids)
    assert client.scard(f"{prefix}held:all") == 0 and claims() == []
