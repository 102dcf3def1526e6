"""The default state store: one SQLite file, no set-up, safe across restarts."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from forwarder.state.base import Held, StateError, Writes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, expires_at REAL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_expiry ON kv (kind, expires_at);
CREATE TABLE IF NOT EXISTS held (
    id INTEGER PRIMARY KEY AUTOINCREMENT, wait_on TEXT NOT NULL, account TEXT NOT NULL,
    deadline REAL, source TEXT NOT NULL, record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS held_wait ON held (wait_on);
CREATE INDEX IF NOT EXISTS held_due ON held (account, deadline);
"""
_PUT = "INSERT OR REPLACE INTO kv (kind, key, value, expires_at) VALUES (?, ?, ?, ?)"
_PUT_NEW = "INSERT OR IGNORE INTO kv (kind, key, value, expires_at) VALUES (?, ?, ?, ?)"
# A clock only moves forward, whichever of two objects in work commits first.
_CLOCK = """INSERT INTO kv (kind, key, value, expires_at) VALUES ('stream', ?, ?, NULL)
ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value
WHERE CAST(kv.value AS REAL) < CAST(excluded.value AS REAL)"""


class SqliteStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                _create_owner_only(Path(path))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL keeps WAL commits durable against a process crash (not a power cut) at a
            # fraction of FULL's fsync cost; a crash is what the at-least-once promise covers.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("SELECT count(*) FROM held").fetchone()  # a damaged file fails here, not later
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"state.path {self.path}: not a usable SQLite database ({_reason(exc)}); "
                             "free space, fix its permissions, or move it aside to start with empty state") from None
        # Re-entrant: a commit holds it while the writes inside take it again.
        self._lock = threading.RLock()
        self._claimed: set[int] = set()

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                # Another process (a replay, a backfill) holding the file: it passes by itself.
                raise StateError(f"state {self.path}: {_reason(exc)}", transient="locked" in str(exc)) from None

    def get(self, kind: str, key: str) -> bytes | None:
        with self._guard() as db:
            row = db.execute("SELECT value FROM kv WHERE kind=? AND key=?", (kind, key)).fetchone()
        return row[0] if row else None

    def put(self, kind: str, key: str, value: bytes, expires_at: float | None = None) -> None:
        with self._guard() as db:
            db.execute(_PUT, (kind, key, value, expires_at))

    def commit(self, writes: Writes) -> None:
        if not writes:
            return
        with self._guard() as db:
            # One commit per step: a commit per write costs more than enriching a record.
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_PUT, [(k, key, v, e) for (k, key), (v, e) in writes.values.items()])
            db.executemany(_PUT_NEW, [(k, key, v, e) for (k, key), (v, e) in writes.defaults.items()])
            db.executemany(_CLOCK, [(account, repr(moment).encode()) for account, moment in writes.clocks.items()])
            db.executemany(
                "INSERT INTO held (wait_on, account, deadline, source, record) VALUES (?, ?, ?, ?, ?)",
                [(h.wait_on, h.account, h.deadline, h.source, h.record) for h in writes.holds],
            )
            done = [int(i) for i in writes.done]
            db.executemany("DELETE FROM held WHERE id=?", [(n,) for n in done])
            db.execute("COMMIT")
            self._claimed.difference_update(done)

    def expire(self, kind: str, before: float) -> int:
        with self._guard() as db:
            return db.execute("DELETE FROM kv WHERE kind=? AND expires_at < ?", (kind, before)).rowcount

    def count(self, kind: str) -> int:
        with self._guard() as db:
            return db.execute("SELECT count(*) FROM kv WHERE kind=?", (kind,)).fetchone()[0]

    def _claim(self, where: str, params: tuple[object, ...]) -> list[Held]:
        with self._guard() as db:
            rows = db.execute(
                f"SELECT id, wait_on, account, deadline, source, record FROM held WHERE {where} ORDER BY id", params
            ).fetchall()
            fresh = [row for row in rows if row[0] not in self._claimed]
            self._claimed.update(row[0] for row in fresh)
        return [Held(w, a, d, s, r, str(i)) for i, w, a, d, s, r in fresh]

    def release(self, wait_on: str) -> list[Held]:
        return self._claim("wait_on = ?", (wait_on,))

    def release_due(self, account: str, stream_time: float) -> list[Held]:
        return self._claim("account = ? AND deadline < ?", (account, stream_time))

    def release_stale(self, before: float) -> list[Held]:
        return self._claim("deadline < ?", (before,))

    def release_all(self) -> list[Held]:
        return self._claim("1", ())

    def unclaim(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._claimed.difference_update(int(i) for i in ids)

    def held_count(self) -> int:
        with self._guard() as db:
            return db.execute("SELECT count(*) FROM held").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _create_owner_only(path: Path) -> None:
    """A new file (and a folder made for it) readable by the owner alone, whatever the umask:
    it holds records and who assumed what. SQLite gives its -wal and -shm files the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.is_dir():
        raise IsADirectoryError(21, "is a directory")
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # the operator's file: its mode is theirs


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
