"""Durable state: sessions for chain resolution, held-back records, stream positions, checkpoints."""

from __future__ import annotations

from forwarder.config import RedisState, SqliteState
from forwarder.state.base import Held, StateStore


def open_store(config: SqliteState | RedisState, *, read_only: bool = False) -> StateStore:
    """``read_only``: for a reader beside the running daemon; only SQLite needs to know (a
    Redis reader takes no lock), and it will not create a state file where there is none."""
    if isinstance(config, RedisState):
        from forwarder.state.redis import RedisStore

        return RedisStore(config)
    from forwarder.state.sqlite import SqliteStore

    return SqliteStore(config.path, read_only=read_only)


__all__ = ["Held", "StateStore", "open_store"]
