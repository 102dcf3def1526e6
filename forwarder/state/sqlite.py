"""The default state store: one SQLite file, no set-up, safe across restarts."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import orjson

from forwarder.state.base import Held, StateError, Writes, stored_as
from forwarder import usage
from forwarder.baseline import profile

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
CREATE TABLE IF NOT EXISTS seen_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, account TEXT NOT NULL, position REAL NOT NULL, event_ids BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_log_position ON seen_log (account, position);
"""
_PUT = "INSERT OR REPLACE INTO kv (kind, key, value, expires_at) VALUES (?, ?, ?, ?)"
_PUT_NEW = "INSERT OR IGNORE INTO kv (kind, key, value, expires_at) VALUES (?, ?, ?, ?)"
# A clock only moves forward, whichever of two objects in work commits first.
_CLOCK = """INSERT INTO kv (kind, key, value, expires_at) VALUES ('stream', ?, ?, NULL)
ON CONFLICT (kind, key) DO UPDATE SET value = excluded.value
WHERE CAST(kv.value AS REAL) < CAST(excluded.value AS REAL)"""


def _usage(stored: bytes | None, delta: bytes) -> tuple[bytes, float]:
    merged = usage.merged(stored, delta)
    return usage.dump(merged), merged.expires_at


def _baseline(stored: bytes | None, delta: bytes) -> tuple[bytes, float]:
    merged, expires_at = profile.merged(stored, delta)
    return profile.dump(merged), expires_at


# The kinds whose deltas are merged into the stored value inside the commit: value, expiry.
_MERGES: dict[str, Callable[[bytes | None, bytes], tuple[bytes, float]]] = {"usage": _usage, "baseline": _baseline}
_SCAN_PAGE = 500  # rows per read: the daemon's writes go on between them
_IN_LIMIT = 500  # keys per lookup, well inside SQLite's limit on bound parameters


_Row = tuple[int, str, float, list[str]]  # a row of seen_log: id, account, position, eventIDs
_LOG = "INSERT INTO seen_log (account, position, event_ids) VALUES (?, ?, ?)"


class _Window:
    """The duplicate window as this process knows it, mirrored from the ``seen_log`` table.

    The table is the truth every process shares: a row per commit and account holds that step's
    new eventIDs and its stream position. A row per eventID in a B-tree keyed by eventID (as
    before) costs a random page per record, written to the WAL and checkpointed: on small
    objects it was a quarter of the daemon's CPU. Here a commit appends a row, and a lookup
    first reads the rows committed since the last one (usually none, or the other processes'
    few), then asks this dict. The price is memory: about 0.12 MiB per thousand eventIDs in
    the window, the same as Redis takes for it."""

    def __init__(self) -> None:
        self.ids: defaultdict[str, dict[str, int]] = defaultdict(dict)  # account -> eventID -> its row
        self.rows: dict[int, tuple[str, float, list[str]]] = {}  # row -> account, position, eventIDs
        self.read_to = 0  # the last row read (rows only ever get higher ids: AUTOINCREMENT)

    def catch_up(self, db: sqlite3.Connection) -> None:
        for row, account, position, event_ids in db.execute(
                "SELECT id, account, position, event_ids FROM seen_log WHERE id > ? ORDER BY id", (self.read_to,)):
            self._add(row, account, position, orjson.loads(event_ids))

    def _add(self, row: int, account: str, position: float, event_ids: list[str]) -> None:
        known = self.ids[account]
        for event_id in event_ids:
            known.setdefault(event_id, row)  # the first sighting stands
        self.rows[row] = (account, position, event_ids)
        self.read_to = row

    def append(self, db: sqlite3.Connection, seen: Mapping[str, Mapping[str, float]]) -> list[_Row]:
        """Log a step's sightings (inside its write transaction, caught up: no other writer
        between), those already in the window left out, so the first sighting stands; the rows
        join the mirror once the transaction has committed (``add``), never before."""
        rows: list[_Row] = []
        for account, marks in seen.items():
            known = self.ids.get(account, {})
            by_position: dict[float, list[str]] = {}
            for event_id, position in marks.items():
                if event_id not in known:
                    by_position.setdefault(position, []).append(event_id)
            for position, event_ids in by_position.items():
                row = db.execute(_LOG, (account, position, orjson.dumps(event_ids))).lastrowid
                assert row is not None  # an INSERT's
                rows.append((row, account, position, event_ids))
        return rows

    def add(self, rows: Iterable[_Row]) -> None:
        for row in rows:
            self._add(*row)

    def forget(self, db: sqlite3.Connection, horizons: Mapping[str, float]) -> int:
        gone = [row for row, (account, position, _) in self.rows.items()
                if account in horizons and position < horizons[account]]
        db.executemany("DELETE FROM seen_log WHERE account=? AND position < ?", horizons.items())
        forgotten = 0
        for row in gone:
            account, _, event_ids = self.rows.pop(row)
            known = self.ids[account]
            for event_id in event_ids:
                if known.get(event_id) == row:
                    del known[event_id]
                    forgotten += 1
        return forgotten


class SqliteStore:
    def __init__(self, path: str | Path = ":memory:", *, read_only: bool = False) -> None:
        self.path = str(path)
        try:
            self._db = _open_read_only(Path(path)) if read_only else self._open_for_writing(Path(path))
            self._db.execute("SELECT count(*) FROM held").fetchone()  # a damaged file fails here, not later
        except (sqlite3.Error, OSError) as exc:
            if read_only:
                raise StateError(f"state.path {self.path}: cannot be read as the forwarder's state "
                                 f"({_reason(exc)})") from None
            raise StateError(f"state.path {self.path}: not a usable SQLite database ({_reason(exc)}); "
                             "free space, fix its permissions, or move it aside to start with empty state") from None
        # Re-entrant: a commit holds it while the writes inside take it again.
        self._lock = threading.RLock()
        self._claimed: set[int] = set()
        self._window = _Window()

    def _open_for_writing(self, path: Path) -> sqlite3.Connection:
        if self.path != ":memory:":
            _create_owner_only(path)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL keeps WAL commits durable against a process crash (not a power cut) at a
        # fraction of FULL's fsync cost; a crash is what the at-least-once promise covers.
        db.execute("PRAGMA synchronous=NORMAL")
        # The WAL moved into the database every 128 pages (512 KiB) and cut back to 1 MiB after:
        # it never takes a small volume whole, which would leave no room for the checkpoint that
        # frees it (SQLite's default waits for 4 MiB and keeps the file at its largest).
        db.execute("PRAGMA wal_autocheckpoint=128")
        db.execute("PRAGMA journal_size_limit=1048576")
        db.executescript(_SCHEMA)
        _move_window(db)
        return db

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except BaseException as exc:
                if self._db.in_transaction:  # whatever failed, the step leaves no trace
                    self._db.execute("ROLLBACK")
                if not isinstance(exc, sqlite3.Error):
                    raise
                raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.Error) -> StateError:
        if "full" in str(exc):
            self._checkpoint()
        # Another process (a replay, a backfill) holding the file: it passes by itself.
        return StateError(f"state {self.path}: {_reason(exc)}", transient="locked" in str(exc))

    def _checkpoint(self) -> None:
        """Move the WAL into the database and cut it back. On a full volume the WAL cannot be
        reused until its pages are in the database file, so once space is back this is what
        lets commits go through again (a small volume may never reach the automatic checkpoint)."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error:
            pass  # still no space: tried again at the next failure

    def get(self, kind: str, key: str) -> bytes | None:
        # The enrichment's most frequent call (a key's session, per step): a read needs no
        # rollback, so no context manager around it.
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM kv WHERE kind=? AND key=?", (kind, key)).fetchone()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return row[0] if row else None

    def get_many(self, kind: str, keys: Collection[str]) -> dict[str, bytes]:
        with self._guard() as db:
            return _read_many(db, kind, keys)

    def put(self, kind: str, key: str, value: bytes, expires_at: float | None = None) -> None:
        with self._guard() as db:
            db.execute(_PUT, (kind, key, value, expires_at))

    def commit(self, writes: Writes) -> set[str]:
        if not writes:
            return set()
        registered, awaited = writes.links()
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
            for kind, deltas in (("usage", writes.usage), ("baseline", writes.baseline)):
                if deltas:
                    # Inside the write transaction: no other process writes between read and write.
                    stored, merge = _read_many(db, kind, deltas), _MERGES[kind]
                    db.executemany(_PUT, [(kind, key, *merge(stored.get(key), delta)) for key, delta in deltas.items()])
            logged: list[_Row] = []
            if writes.seen:
                self._window.catch_up(db)
                logged = self._window.append(db, writes.seen)
            done = [int(i) for i in writes.done]
            db.executemany("DELETE FROM held WHERE id=?", [(n,) for n in done])
            wake = {link for link in awaited if _known(db, link)} | {
                link for link in registered if db.execute("SELECT 1 FROM held WHERE wait_on=? LIMIT 1", (link,)).fetchone()}
            db.execute("COMMIT")
            self._window.add(logged)
            self._claimed.difference_update(done)
        return wake

    def expire(self, kind: str, before: float) -> int:
        with self._guard() as db:
            return db.execute("DELETE FROM kv WHERE kind=? AND expires_at < ?", (kind, before)).rowcount

    def seen(self, event_ids: Mapping[str, Collection[str]]) -> set[tuple[str, str]]:
        with self._guard() as db:
            self._window.catch_up(db)
            window = self._window.ids
            return {(account, event_id) for account, ids in event_ids.items() if account in window
                    for event_id in ids if event_id in window[account]}

    def forget_seen(self, horizons: Mapping[str, float]) -> int:
        with self._guard() as db:
            self._window.catch_up(db)
            return self._window.forget(db, horizons)

    def count(self, kind: str) -> int:
        with self._guard() as db:
            return db.execute("SELECT count(*) FROM kv WHERE kind=?", (kind,)).fetchone()[0]

    def scan(self, kind: str) -> Iterator[tuple[str, bytes]]:
        after, beyond = "", ">="
        while True:
            with self._guard() as db:
                rows = db.execute(f"SELECT key, value FROM kv WHERE kind=? AND key {beyond} ? ORDER BY key LIMIT ?",
                                  (kind, after, _SCAN_PAGE)).fetchall()
            yield from rows
            if len(rows) < _SCAN_PAGE:
                return
            after, beyond = rows[-1][0], ">"

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

    def claims_elsewhere(self) -> bool:
        return False  # one process owns the file's claims (they live in its memory)

    def held_count(self) -> int:
        with self._guard() as db:
            return db.execute("SELECT count(*) FROM held").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A reader beside a running daemon (``forwarder session``): in WAL mode it never blocks the
    daemon's writes, and it cannot create an empty state file where none is."""
    if not path.is_file():
        raise FileNotFoundError(2, "no such file")
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False,
                           isolation_level=None)


def _move_window(db: sqlite3.Connection) -> None:
    """A state file from before the duplicate window was a log: its eventIDs move into the
    log (once, whichever process opens the file first), so that no duplicate slips through."""
    old = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='seen'"
    if db.execute(old).fetchone() is None:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute(old).fetchone() is not None:
            grouped: dict[tuple[str, float], list[str]] = {}
            for account, event_id, position in db.execute("SELECT account, event_id, position FROM seen"):
                grouped.setdefault((account, position), []).append(event_id)
            db.executemany(_LOG, [(account, position, orjson.dumps(ids)) for (account, position), ids in grouped.items()])
            db.execute("DROP TABLE seen")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


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


def _read_many(db: sqlite3.Connection, kind: str, keys: Collection[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    asked = list(keys)
    for start in range(0, len(asked), _IN_LIMIT):
        chunk = asked[start:start + _IN_LIMIT]
        found.update(db.execute(f"SELECT key, value FROM kv WHERE kind=? AND key IN ({','.join('?' * len(chunk))})",
                                (kind, *chunk)).fetchall())
    return found


def _known(db: sqlite3.Connection, link: str) -> bool:
    return db.execute("SELECT 1 FROM kv WHERE kind=? AND key=?", stored_as(link)).fetchone() is not None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)
