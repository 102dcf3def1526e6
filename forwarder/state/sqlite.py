"""The default state store: one SQLite file, no set-up, safe across restarts."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from forwarder.state.base import Held

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


class SqliteStore:
    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps WAL commits durable against a process crash (not a power cut) at a
        # fraction of FULL's fsync cost; a crash is what the at-least-once promise covers.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # Re-entrant: a transaction holds it while the writes inside take it again.
        self._lock = threading.RLock()
        self._claimed: set[int] = set()

    def get(self, kind: str, key: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE kind=? AND key=?", (kind, key)).fetchone()
        return row[0] if row else None

    def put(self, kind: str, key: str, value: bytes, expires_at: float | None = None) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO kv (kind, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (kind, key, value, expires_at),
            )

    def expire(self, kind: str, before: float) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM kv WHERE kind=? AND expires_at < ?", (kind, before)).rowcount

    def count(self, kind: str) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM kv WHERE kind=?", (kind,)).fetchone()[0]

    def hold(self, held: Held) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO held (wait_on, account, deadline, source, record) VALUES (?, ?, ?, ?, ?)",
                (held.wait_on, held.account, held.deadline, held.source, held.record),
            )

    def _claim(self, where: str, params: tuple[object, ...]) -> list[Held]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, wait_on, account, deadline, source, record FROM held WHERE {where} ORDER BY id", params
            ).fetchall()
            fresh = [row for row in rows if row[0] not in self._claimed]
            self._claimed.update(row[0] for row in fresh)
        return [Held(w, a, d, s, r, str(i)) for i, w, a, d, s, r in fresh]

    def release(self, wait_on: str) -> list[Held]:
        return self._claim("wait_on = ?", (wait_on,))

    def release_due(self, account: str, stream_time: float) -> list[Held]:
        return self._claim("account = ? AND deadline < ?", (account, stream_time))

    def release_all(self) -> list[Held]:
        return self._claim("1", ())

    def done(self, ids: Iterable[str]) -> None:
        numbers = [int(i) for i in ids]
        with self._lock:
            self._db.executemany("DELETE FROM held WHERE id=?", [(n,) for n in numbers])
            self._claimed.difference_update(numbers)

    def unclaim(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._claimed.difference_update(int(i) for i in ids)

    def held_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM held").fetchone()[0]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        # A commit per write costs more than enriching a record; one per object does not.
        # Other threads' calls wait for it (they take the same lock), so nothing interleaves.
        with self._lock:
            if self._db.in_transaction:
                yield  # nested: the outer transaction commits
                return
            self._db.execute("BEGIN")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")  # the object was not acknowledged: it is read again
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()
