"""Chain origins across accounts, in any order, and the hold-back bound in event time."""

import itertools
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from cloudtrail import Collect, assume, call, enrich_objects, issued_key, session_identity, thin, user, without_baseline
from forwarder.config import parse_config
from forwarder.deadletter import StderrDeadLetter
from forwarder.pipeline import Pipeline

ORG, DEV, PROD = "111111111111", "222222222222", "333333333333"
T0 = datetime(2026, 3, 31, 7, 12, tzinfo=UTC)
CREATED = "2026-03-31T07:12:00Z"
DEVELOPER = f"arn:aws:iam::{DEV}:role/HumanDeveloper"
DEPLOY = f"arn:aws:iam::{PROD}:role/DeployRole"
RELEASE = f"arn:aws:iam::{PROD}:role/ReleaseManager"
ALICE = f"arn:aws:iam::{ORG}:user/alice"


def three_account_chain() -> tuple[list[list[dict]], dict[str, str]]:
    """alice -> HumanDeveloper (dev) -> DeployRole (prod) -> ReleaseManager (prod) -> PutObject."""
    alice = user(ORG, "alice")
    first = assume(alice, DEVELOPER, T0, recipient=ORG, shared="hop-1", source_identity="alice")
    first_owner = dict(first, userIdentity=thin(alice), recipientAccountId=DEV, eventID="hop-1-owner")
    dev_session = session_identity(DEVELOPER, issued_key(first), first["eventTime"])
    second = assume(dev_session, DEPLOY, T0 + timedelta(minutes=2), recipient=DEV, shared="hop-2")
    second_owner = dict(second, userIdentity=thin(dev_session), recipientAccountId=PROD, eventID="hop-2-owner")
    deploy_session = session_identity(DEPLOY, issued_key(second), second["eventTime"])
    third = assume(deploy_session, RELEASE, T0 + timedelta(minutes=3))
    release_session = session_identity(RELEASE, issued_key(third), third["eventTime"])
    action = call(release_session, T0 + timedelta(minutes=4), "PutObject")
    objects = [[first], [first_owner], [second], [second_owner], [third], [action]]
    ids = {"first": first["eventID"], "third": third["eventID"], "action": action["eventID"], "second": second["eventID"]}
    return objects, ids


@pytest.mark.parametrize("order", list(itertools.permutations(range(6)))[::37])
def test_chain_through_three_accounts_in_any_order(order: tuple[int, ...]) -> None:
    objects, ids = three_account_chain()
    docs = enrich_objects([objects[i] for i in order]).by_event()
    assert len(docs) == 6
    action = docs[ids["action"]]["assumerole"]
    assert action["chain"] == {
        "origin": {"arn": ALICE, "type": "IAMUser", "account_id": ORG, "identity_provider": None},
        "depth": 3,
        "hops": [DEVELOPER, DEPLOY, RELEASE],
        "resolved": True,
        "source_identity_changed": False,
    }
    assert action["session"]["access_key_id"] == objects[4][0]["responseElements"]["credentials"]["accessKeyId"]
    third = docs[ids["third"]]["assumerole"]
    assert third["chain"]["depth"] == 3 and third["session"]["source_identity"] == "alice"
    for owner_copy in ("hop-1-owner", "hop-2-owner"):
        assert docs[owner_copy]["assumerole"]["chain"]["origin"]["arn"] == ALICE
        assert docs[owner_copy]["assumerole"]["primary"] is True
    assert docs["hop-2-owner"]["assumerole"]["caller"]["type"] == "AssumedRole"
    assert docs[ids["second"]]["assumerole"]["primary"] is False


def test_unknown_parent_ships_unresolved_with_what_the_session_tells() -> None:
    legacy = f"arn:aws:iam::{DEV}:role/LegacyBatchJob"
    record = call(session_identity(legacy, "ASIANEVERSEEN0000001", "2026-03-30T22:00:00Z"), T0)
    ar = without_baseline(enrich_objects([[record]]).documents[0].assumerole)
    assert ar == {
        "session": {"access_key_id": "ASIANEVERSEEN0000001"},
        "chain": {"origin": {"arn": None, "type": None, "account_id": None, "identity_provider": None}, "depth": 1,
                  "hops": [legacy], "resolved": False, "source_identity_changed": False},
    }


def test_duplicate_deliveries_ship_once() -> None:
    objects, ids = three_account_chain()
    objects.append([objects[5][0], objects[0][0]])  # CloudTrail delivered two records again
    docs = enrich_objects(objects).documents
    assert len(docs) == 6 and len({d.event_id for d in docs}) == 6


def test_selection() -> None:
    objects, _ = three_account_chain()
    noise = call(user(ORG, "alice"), T0, "DescribeInstances", "ec2.amazonaws.com")
    objects.append([noise])
    assert len(enrich_objects(objects).documents) == 6
    assert len(enrich_objects(objects, parse_config({"select": "assumptions"})).documents) == 5
    everything = enrich_objects(objects, parse_config({"select": "all"})).by_event()
    assert len(everything) == 7 and "assumerole" not in everything[noise["eventID"]]


def test_cycle_of_keys_does_not_hang() -> None:
    role_a, role_b = f"arn:aws:iam::{ORG}:role/A", f"arn:aws:iam::{ORG}:role/B"
    a = assume(session_identity(role_b, "ASIAKEYB000000000000", CREATED), role_a, T0, key="ASIAKEYA000000000000")
    b = assume(session_identity(role_a, "ASIAKEYA000000000000", CREATED), role_b, T0, key="ASIAKEYB000000000000")
    docs = enrich_objects([[a], [b]]).documents
    assert {d.assumerole["chain"]["resolved"] for d in docs} == {False}


def test_reused_key_of_another_role_is_not_taken_for_the_parent() -> None:
    first = assume(user(ORG, "alice"), DEVELOPER, T0)
    other = call(session_identity(f"arn:aws:iam::{DEV}:role/SomethingElse", issued_key(first), CREATED), T0)
    ar = enrich_objects([[first, other]]).by_event()[other["eventID"]]["assumerole"]
    assert ar["chain"]["resolved"] is False


# -- the daemon's hold-back: bounded by event time, per account ------------------------------

DAEMON = parse_config({"chains": {"hold_back_seconds": 900}})


def test_child_before_parent_gets_its_chain_within_the_window() -> None:
    parent = assume(user(ORG, "alice"), DEVELOPER, T0, recipient=DEV)
    child = call(session_identity(DEVELOPER, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    sink = enrich_objects([[child], [parent]], DAEMON, batch=False)
    assert [d.event_id for d in sink.documents] == [parent["eventID"], child["eventID"]]
    assert sink.documents[1].assumerole["chain"]["resolved"] is True


def test_child_ships_unresolved_when_its_accounts_stream_passes_the_window() -> None:
    parent = assume(user(ORG, "alice"), DEVELOPER, T0, recipient=DEV)
    child = call(session_identity(DEVELOPER, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    later = call(session_identity(DEVELOPER, "ASIAOTHERSESSION0001", "2026-03-31T07:00:00Z"), T0 + timedelta(minutes=20))
    sink = enrich_objects([[child], [later]], DAEMON, batch=False)
    shipped = {d.event_id: d.assumerole["chain"]["resolved"] for d in sink.documents}
    assert shipped == {child["eventID"]: False, later["eventID"]: False}


def test_session_older_than_the_window_ships_at_once() -> None:
    clock = call(user(DEV, "ops"), T0 + timedelta(hours=2), "DescribeInstances")
    old = call(session_identity(DEVELOPER, "ASIAOLDSESSION000001", "2026-03-31T07:00:00Z"), T0 + timedelta(hours=2))
    sink = enrich_objects([[clock], [old]], DAEMON, batch=False)
    assert [d.event_id for d in sink.documents] == [old["eventID"]]


def test_stream_clock_is_per_account() -> None:
    parent = assume(user(ORG, "alice"), DEVELOPER, T0, recipient=DEV)
    child = call(session_identity(DEVELOPER, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=1))
    elsewhere = call(session_identity(DEPLOY, "ASIAPRODSESSION00001", "2026-03-31T09:00:00Z"), T0 + timedelta(hours=3))
    elsewhere["recipientAccountId"] = PROD
    # Another account's trail being hours ahead does not end the dev account's wait.
    sink = enrich_objects([[child], [elsewhere], [parent]], DAEMON, batch=False)
    by_id = {d.event_id: d.assumerole["chain"]["resolved"] for d in sink.documents}
    assert by_id[child["eventID"]] is True


def test_expired_sessions_are_forgotten_by_the_most_advanced_stream() -> None:
    from forwarder.enrich import Enricher
    from forwarder.state.sqlite import SqliteStore

    config = parse_config({"chains": {"session_margin_seconds": 600, "account_lag_seconds": 3600}})
    store = SqliteStore()
    sink = Collect()
    pipeline = Pipeline(Enricher(config, store), [sink], StderrDeadLetter())
    parent = assume(user(ORG, "alice"), DEVELOPER, T0, recipient=DEV)  # credentials for one hour
    quiet = call(user(PROD, "ops"), T0, "DescribeInstances")  # an account that then falls silent
    pipeline.process("a", orjson.dumps({"Records": [parent, quiet]}))

    def stream_reaches(moment: datetime) -> None:
        pipeline.process("clock", orjson.dumps({"Records": [call(user(DEV, "ops"), moment, "DescribeInstances")]}))
        pipeline.forget_expired()

    stream_reaches(T0 + timedelta(hours=1, minutes=10) + timedelta(hours=1) - timedelta(minutes=1))
    assert store.count("session") == 1  # expiry + margin + lag not yet passed
    stream_reaches(T0 + timedelta(hours=1, minutes=10) + timedelta(hours=1, minutes=1))
    assert store.count("session") == 0
    late = call(session_identity(DEVELOPER, issued_key(parent), parent["eventTime"]), T0 + timedelta(minutes=30))
    sink.documents.clear()
    pipeline.process("late", orjson.dumps({"Records": [late]}))
    assert [d.assumerole["chain"]["resolved"] for d in sink.documents] == [False]  # its session is gone


def test_duplicate_filter_forgets_only_what_left_its_window() -> None:
    from forwarder.enrich import Enricher
    from forwarder.state.sqlite import SqliteStore

    sink = Collect()
    worker = Pipeline(Enricher(parse_config({"chains": {"dedup_window_seconds": 1800}}), SqliteStore()), [sink],
                      StderrDeadLetter())
    identity = session_identity(DEVELOPER, "ASIAWINDOW0000000001", CREATED)
    early, mid, recent, latest = (call(identity, T0 + timedelta(minutes=m)) for m in (-10, 8, 25, 30))
    for record in (early, mid, recent, latest):  # one object each
        worker.process("first", orjson.dumps({"Records": [record]}))
    worker.forget_expired()
    # An eventID is remembered for the window from where its account's stream stood when it was
    # read (the first one: its own time). Pruned with the stream at 07:37: early and mid (read at
    # 07:02) are forgotten, recent (read at 07:20) is not.
    sink.documents.clear()
    again = worker.process("again", orjson.dumps({"Records": [recent, early]}))
    assert again.duplicates == 1
    assert [d.event_id for d in sink.documents] == [early["eventID"]]
