"""Durable state: sessions for chain resolution, held-back records, stream positions, checkpoints."""

from __future__ import annotations

from forwarder.config import RedisState, SqliteState
from forwarder.state.base import Held, StateStore


def open_store(config: SqliteState | RedisState) -> StateStore:
    if isinstance(config, RedisState):
        from forwarder.state.redis import RedisStore

        return RedisStore(config)
    from forwarder.state.sqlite import SqliteStore

    return SqliteStore(config.path)


__all__ = ["Held", "StateStore", "open_store"]
