"""A child record delivered before its parent: held durably (across restarts), chained when the
parent arrives within the window, shipped unresolved when the window ends first."""

from __future__ import annotations

import signal
import urllib.request

from aws_world import World, log_key, wait_until, when
from servers.ports import free_port
from cloudtrail import assume, call, issued_key, session_identity, user

ROLE = "arn:aws:iam::111111111111:role/Deploy"


def _notify(world: World, key: str) -> None:
    world.send({"s3Bucket": world.bucket, "s3ObjectKey": [key]})


def test_child_gets_its_chain_when_the_parent_arrives_later(world: World) -> None:
    parent = assume(user("111111111111", "alice"), ROLE, when("2026-03-31T07:00:00Z"))
    child = call(session_identity(ROLE, issued_key(parent), "2026-03-31T07:00:00Z"), when("2026-03-31T07:02:00Z"))
    config = world.config()

    _notify(world, world.put_log(log_key("111111111111", "2026/03/31", "0705"), [child]))
    assert world.run(config) == 0
    assert world.event_ids() == []  # held in the state store; the message is gone all the same
    assert world.queue_depth() == 0

    _notify(world, world.put_log(log_key("111111111111", "2026/03/31", "0710"), [parent]))
    assert world.run(config) == 0  # a new process: the held child comes from the store
    documents = {d["eventID"]: d for d in world.documents()}
    assert set(documents) == {parent["eventID"], child["eventID"]}
    chain = documents[child["eventID"]]["assumerole"]["chain"]
    assert chain["resolved"] is True
    assert chain["origin"]["arn"] == "arn:aws:iam::111111111111:user/alice"
    assert chain["hops"] == [ROLE]


def test_child_ships_unresolved_once_the_window_has_passed(world: World) -> None:
    child = call(session_identity(ROLE, "ASIANEVERSEEN0000001", "2026-03-31T07:00:00Z"), when("2026-03-31T07:02:00Z"))
    later = call(user("111111111111", "bob"), when("2026-03-31T08:00:00Z"), name="DescribeInstances")
    config = world.config(chains={"hold_back_seconds": 900})

    _notify(world, world.put_log(log_key("111111111111", "2026/03/31", "0705"), [child]))
    assert world.run(config) == 0
    assert world.event_ids() == []

    # The account's stream reaches 08:00, past 07:00 + 15 min: the parent will not come.
    _notify(world, world.put_log(log_key("111111111111", "2026/03/31", "0805"), [later]))
    assert world.run(config) == 0
    documents = {d["eventID"]: d for d in world.documents()}
    assert set(documents) == {child["eventID"], later["eventID"]}
    chain = documents[child["eventID"]]["assumerole"]["chain"]
    assert chain["resolved"] is False
    assert chain["hops"] == [ROLE]


def _gauge(port: int, name: str) -> float | None:
    """The gauge's value; None while the endpoint is not up yet."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not exported")


def test_held_records_and_sessions_show_in_the_metrics(world: World) -> None:
    parent = assume(user("111111111111", "alice"), ROLE, when("2026-03-31T07:00:00Z"))
    child = call(session_identity(ROLE, issued_key(parent), "2026-03-31T07:00:00Z"), when("2026-03-31T07:02:00Z"))
    port = free_port()
    run = world.spawn("run", "--config", str(world.config(metrics={"listen": f"127.0.0.1:{port}"})))
    try:
        _notify(world, world.put_log(log_key("111111111111", "2026/03/31", "0705"), [child]))
        assert wait_until(lambda: _gauge(port, "forwarder_held_records") == 1.0, 30, every=0.25)
        assert _gauge(port, "forwarder_session_store_size") == 0.0

        _notify(world, world.put_log(log_key("111111111111", "2026/03/31", "0710"), [parent]))
        assert wait_until(lambda: _gauge(port, "forwarder_held_records") == 0.0, 30, every=0.25)
        assert _gauge(port, "forwarder_session_store_size") == 1.0
        assert sorted(world.event_ids()) == sorted([parent["eventID"], child["eventID"]])
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=20)
    assert run.returncode == 0
