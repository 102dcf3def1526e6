"""The SQLite store's transaction: one commit per object, all or nothing."""

from pathlib import Path

import pytest

from forwarder.state.sqlite import SqliteStore


def test_writes_inside_commit_together_and_survive_a_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    with store.transaction():
        store.put("session", "k1", b"one")
        with store.transaction():  # nested: the outer one commits
            store.put("session", "k2", b"two")
        assert store.get("session", "k2") == b"two"  # visible inside already
    store.close()
    again = SqliteStore(tmp_path / "state.db")
    assert (again.get("session", "k1"), again.get("session", "k2")) == (b"one", b"two")


def test_a_failure_inside_leaves_nothing_behind(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    store.put("stream", "111111111111", b"1.0")
    with pytest.raises(RuntimeError), store.transaction():
        store.put("stream", "111111111111", b"2.0")
        store.put("session", "k1", b"one")
        raise RuntimeError("enrichment failed half way")
    assert store.get("stream", "111111111111") == b"1.0" and store.get("session", "k1") is None
