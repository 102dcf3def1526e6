"""A child record delivered before its parent: held durably (across restarts), chained when the
parent arrives within the window, shipped unresolved when the window ends first."""

from __future__ import annotations

from aws_world import World, log_key, when
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
