"""A step's writes reach the SQLite file together, or not at all."""

import sqlite3
from pathlib import Path

import pytest

from forwarder.state.base import Held, StateError, Writes
from forwarder.state.sqlite import SqliteStore


def _held(wait_on: str) -> Held:
    return Held(wait_on, "111111111111", 100.0, "s3://trail/a.json.gz", b"{}")


def test_a_commit_is_durable_across_a_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.commit(Writes(values={("session", "k1"): (b"one", 10.0)}, clocks={"111111111111": 5.0},
                        holds=[_held("key:A")]))
    store.close()
    again = SqliteStore(tmp_path / "state.db")
    assert again.get("session", "k1") == b"one" and float(again.get("stream", "111111111111") or 0) == 5.0
    assert [h.wait_on for h in again.release("key:A")] == ["key:A"]


def test_a_failure_inside_a_commit_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.put("stream", "111111111111", b"1.0")
    broken = Held("key:B", None, 1.0, "s", b"{}")  # type: ignore[arg-type]  # NOT NULL refuses it, last
    with pytest.raises(StateError, match=str(tmp_path)):
        store.commit(Writes(values={("session", "k1"): (b"one", None)}, clocks={"111111111111": 2.0},
                            holds=[_held("key:A"), broken]))
    assert store.get("stream", "111111111111") == b"1.0" and store.get("session", "k1") is None
    assert store.held_count() == 0
    store.commit(Writes(values={("session", "k1"): (b"one", None)}))  # and the store still works
    assert store.get("session", "k1") == b"one"


def test_a_clock_only_moves_forward_and_a_default_never_replaces(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.commit(Writes(clocks={"111111111111": 10.0}, values={("session", "k"): (b"full", None)}))
    store.commit(Writes(clocks={"111111111111": 4.0}, defaults={("session", "k"): (b"thin", None),
                                                                ("session", "new"): (b"thin", None)}))
    assert float(store.get("stream", "111111111111") or 0) == 10.0
    assert store.get("session", "k") == b"full" and store.get("session", "new") == b"thin"


def test_a_damaged_state_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match=f"state.path {garbage}: not a usable SQLite database.*move it aside"):
        SqliteStore(garbage)
    with pytest.raises(StateError, match=f"state.path {tmp_path}: not a usable SQLite database"):
        SqliteStore(tmp_path)  # a directory


def test_a_new_state_file_is_the_owners_alone_whatever_the_umask(tmp_path: Path) -> None:
    import os

    previous = os.umask(0)
    try:
        store = SqliteStore(tmp_path / "new" / "state.db")
        store.commit(Writes(values={("session", "k"): (b"v", None)}))
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert (tmp_path / "new" / name).stat().st_mode & 0o777 == 0o600, name
        store.close()
    finally:
        os.umask(previous)
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700


def test_the_first_sighting_stands_across_processes_and_is_forgotten_by_its_position(tmp_path: Path) -> None:
    one, two = SqliteStore(tmp_path / "state.db"), SqliteStore(tmp_path / "state.db")
    a = "111111111111"
    one.commit(Writes(seen={a: {"e1": 10.0}}))
    two.commit(Writes(seen={a: {"e1": 99.0, "e2": 99.0}}))  # e1 already in the window: not logged again
    assert one.seen({a: ["e1", "e2", "e3"]}) == {(a, "e1"), (a, "e2")}
    third = SqliteStore(tmp_path / "state.db")
    assert third.forget_seen({a: 15.0}) == 1  # e1 stood at 10, where the first process saw it
    assert third.seen({a: ["e1", "e2"]}) == {(a, "e2")}
    assert SqliteStore(tmp_path / "state.db").seen({a: ["e1", "e2"]}) == {(a, "e2")}  # gone from the file too


def test_a_state_file_of_the_duplicate_window_a_row_per_event_keeps_its_window(tmp_path: Path) -> None:
    """The window as earlier versions kept it moves into the log when the file is first opened."""
    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE seen (account TEXT NOT NULL, event_id TEXT NOT NULL, position REAL NOT NULL,
                        PRIMARY KEY (account, event_id)) WITHOUT ROWID;
                        CREATE INDEX seen_position ON seen (account, position);""")
    a, b = "111111111111", "222222222222"
    db.executemany("INSERT INTO seen VALUES (?, ?, ?)", [(a, "e1", 10.0), (a, "e2", 20.0), (a, "e3", 20.0), (b, "e1", 5.0)])
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert store.seen({a: ["e1", "e2", "e3", "e4"], b: ["e1", "e2"]}) == {(a, "e1"), (a, "e2"), (a, "e3"), (b, "e1")}
    assert store._db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'seen'").fetchone()[0] == 0  # noqa: SLF001
    assert store.forget_seen({a: 25.0}) == 3
    assert SqliteStore(path).seen({a: ["e1", "e2", "e3"], b: ["e1"]}) == {(b, "e1")}


def test_a_failed_commit_leaves_no_event_in_the_duplicate_window(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    a = "111111111111"
    store.commit(Writes(holds=[_held("key:A")]))
    done = [held.id for held in store.release("key:A")]
    # Refused by the commit's last statement, after the window's rows were written.
    store._db.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON held BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")  # noqa: SLF001
    with pytest.raises(StateError):
        store.commit(Writes(seen={a: {"e1": 10.0}}, done=done))
    assert store.seen({a: ["e1"]}) == set()
    store.commit(Writes(seen={a: {"e1": 10.0}}))
    assert store.seen({a: ["e1"]}) == {(a, "e1")}
