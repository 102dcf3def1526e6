"""The shared state store: Redis, for several forwarder processes on one queue.

Layout under ``key_prefix`` (p):

* ``p kv:<kind>`` hash key -> value, with ``p exp:<kind>`` a sorted set of key by expiry
  (event time, so not Redis TTLs, which run on the wall clock); ``p kv:usage`` values are
  merged in place by ``_USAGE`` (forwarder/usage.py's merge, atomic in Redis), ``p kv:baseline``
  by forwarder/baseline/redis_merge.py's script (the baseline's join);
* ``p held:<id>`` a hash per held record, indexed by ``p wait:<wait_on>`` (set),
  ``p due:<account>`` (sorted set by deadline, the accounts in ``p due:accounts``) and
  ``p held:all`` (set);
* ``p seen:<account>`` the duplicate window: a sorted set of eventIDs by the account's stream
  position when each was seen (``ZADD NX``: the first sighting stands);
* ``p claim:<id>`` the claim on a held record: ``SET NX PX`` with this process's token, so
  one process delivers it; a process that dies loses its claims when the lease runs out.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager

from urllib.parse import urlsplit

import redis
import redis.sentinel

from forwarder.config import RedisState
from forwarder.state.base import Held, StateError, Writes, stored_as
from forwarder.baseline.redis_merge import MERGE
from forwarder.usage import KEEP_SECONDS, LIMIT

_EXPIRE = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
for i = 1, #keys, 500 do
  local chunk = {unpack(keys, i, math.min(i + 499, #keys))}
  redis.call('HDEL', KEYS[2], unpack(chunk))
  redis.call('ZREM', KEYS[1], unpack(chunk))
end
return #keys
"""

_UNCLAIM = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


# A stream clock only moves forward, whichever process or object commits first.
_CLOCK = """
local now = redis.call('HGET', KEYS[1], ARGV[1])
if not now or tonumber(now) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
"""

# A value written only where there is none yet (a thin session never replaces the full one).
_PUT_NEW = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 and ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
end
"""

# forwarder/usage.py's merge of a step's calls (ARGV[2]) into a key's usage, in one atomic step:
# a read in Python and a write back would lose the counts another process adds in between.
# ARGV: key, delta, LIMIT, KEEP_SECONDS.
_USAGE = """
local function earliest(a, b, limit)
  local union, n = {}, 0
  for value, moment in pairs(a) do union[value] = moment; n = n + 1 end
  for value, moment in pairs(b) do
    if union[value] == nil then n = n + 1; union[value] = moment
    elseif moment < union[value] then union[value] = moment end
  end
  if n <= limit then return union, false end
  local order = {}
  for value in pairs(union) do order[#order + 1] = value end
  table.sort(order, function(x, y)
    if union[x] ~= union[y] then return union[x] < union[y] end
    return x < y
  end)
  local kept = {}
  for i = 1, limit do kept[order[i]] = union[order[i]] end
  return kept, true
end
local function readable(raw)
  if not raw then return nil end
  local ok, value = pcall(cjson.decode, raw)
  if ok and type(value) == 'table' and type(value.calls) == 'number' and type(value.first) == 'number'
      and type(value.last) == 'number' and type(value.ips) == 'table' and type(value.agents) == 'table' then
    return value
  end
  return nil
end
local new = cjson.decode(ARGV[2])
local old = readable(redis.call('HGET', KEYS[1], ARGV[1]))
if old then
  local limit = tonumber(ARGV[3])
  local ips, more_ips = earliest(old.ips, new.ips, limit)
  local agents, more_agents = earliest(old.agents, new.agents, limit)
  new = {calls = old.calls + new.calls, first = math.min(old.first, new.first), last = math.max(old.last, new.last),
         ips = ips, agents = agents, more_ips = old.more_ips == true or new.more_ips == true or more_ips,
         more_agents = old.more_agents == true or new.more_agents == true or more_agents}
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(new))
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
redis.call('ZADD', KEYS[2], new.last + tonumber(ARGV[4]), ARGV[1])
"""


class RedisStore:
    def __init__(self, config: RedisState) -> None:
        self._where = _safe(config.url) if config.sentinel is None else (
            f"{config.sentinel.service_name} (Sentinel {', '.join(config.sentinel.hosts)})")
        self._redis = _client(config)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise StateError(f"state: cannot reach Redis at {self._where}: {exc}") from None
        self._p = config.key_prefix
        self._lease_ms = config.claim_lease_seconds * 1000
        self._token = uuid.uuid4().hex.encode()
        self._expire = self._redis.register_script(_EXPIRE)
        self._unclaim = self._redis.register_script(_UNCLAIM)
        self._clock = self._redis.register_script(_CLOCK)
        self._put_new = self._redis.register_script(_PUT_NEW)
        self._usage = self._redis.register_script(_USAGE)
        self._baseline = self._redis.register_script(MERGE)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise StateError(f"state: Redis at {self._where}: {exc}",
                             transient=isinstance(exc, redis.ConnectionError | redis.TimeoutError)) from None

    # -- values -------------------------------------------------------------------------------

    def get(self, kind: str, key: str) -> bytes | None:
        with self._guard():
            return self._redis.hget(f"{self._p}kv:{kind}", key)

    def get_many(self, kind: str, keys: Collection[str]) -> dict[str, bytes]:
        asked = list(keys)
        if not asked:
            return {}
        with self._guard():
            values = self._redis.hmget(f"{self._p}kv:{kind}", asked)
        return {key: value for key, value in zip(asked, values, strict=True) if value is not None}

    def put(self, kind: str, key: str, value: bytes, expires_at: float | None = None) -> None:
        with self._guard(), self._redis.pipeline(transaction=True) as pipe:
            self._set(pipe, kind, key, value, expires_at)
            pipe.execute()

    def _set(self, pipe: redis.client.Pipeline, kind: str, key: str, value: bytes, expires_at: float | None) -> None:
        pipe.hset(f"{self._p}kv:{kind}", key, value)
        if expires_at is None:
            pipe.zrem(f"{self._p}exp:{kind}", key)
        else:
            pipe.zadd(f"{self._p}exp:{kind}", {key: expires_at})

    def commit(self, writes: Writes) -> set[str]:
        if not writes:
            return set()
        registered, awaited = writes.links()
        with self._guard():
            # Numbers for the new held records first: a gap left by a failed commit is harmless.
            last = self._redis.incrby(f"{self._p}held:seq", len(writes.holds)) if writes.holds else 0
            where = self._where_held(writes.done)
            with self._redis.pipeline(transaction=True) as pipe:
                for (kind, key), (value, expires_at) in writes.values.items():
                    self._set(pipe, kind, key, value, expires_at)
                for (kind, key), (value, expires_at) in writes.defaults.items():
                    self._put_new(keys=[f"{self._p}kv:{kind}", f"{self._p}exp:{kind}"],
                                  args=[key, value, "" if expires_at is None else repr(expires_at)], client=pipe)
                for account, moment in writes.clocks.items():
                    self._clock(keys=[f"{self._p}kv:stream"], args=[account, repr(moment)], client=pipe)
                for key, delta in writes.usage.items():
                    self._usage(keys=[f"{self._p}kv:usage", f"{self._p}exp:usage"],
                                args=[key, delta, LIMIT, KEEP_SECONDS], client=pipe)
                for key, delta in writes.baseline.items():
                    self._baseline(keys=[f"{self._p}kv:baseline", f"{self._p}exp:baseline"], args=[key, delta], client=pipe)
                for account, marks in writes.seen.items():
                    pipe.zadd(f"{self._p}seen:{account}", marks, nx=True)
                for number, held in enumerate(writes.holds, start=last - len(writes.holds) + 1):
                    self._add_held(pipe, number, held)
                self._forget_held(pipe, writes.done, where)
                pipe.execute()
            return self._to_wake(registered, awaited)

    def _to_wake(self, registered: set[str], awaited: set[str]) -> set[str]:
        # Read after this commit's EXEC: of two processes storing the two sides of one link,
        # whichever commits second sees the other's write here, so no wait is missed.
        if not (registered or awaited):
            return set()
        links = sorted(awaited) + sorted(registered)
        with self._redis.pipeline(transaction=False) as pipe:
            for link in sorted(awaited):
                kind, key = stored_as(link)
                pipe.hexists(f"{self._p}kv:{kind}", key)
            for link in sorted(registered):
                pipe.exists(f"{self._p}wait:{link}")
            answers = pipe.execute()
        return {link for link, answer in zip(links, answers, strict=True) if answer}

    def expire(self, kind: str, before: float) -> int:
        with self._guard():
            return int(self._expire(keys=[f"{self._p}exp:{kind}", f"{self._p}kv:{kind}"], args=[repr(before)]))

    def seen(self, event_ids: Mapping[str, Collection[str]]) -> set[tuple[str, str]]:
        asked = [(account, list(ids)) for account, ids in event_ids.items() if ids]
        if not asked:
            return set()
        with self._guard(), self._redis.pipeline(transaction=False) as pipe:
            for account, ids in asked:
                pipe.zmscore(f"{self._p}seen:{account}", ids)
            answers = pipe.execute()
        return {(account, event_id) for (account, ids), scores in zip(asked, answers, strict=True)
                for event_id, score in zip(ids, scores, strict=True) if score is not None}

    def forget_seen(self, horizons: Mapping[str, float]) -> int:
        if not horizons:
            return 0
        with self._guard(), self._redis.pipeline(transaction=False) as pipe:
            for account, horizon in horizons.items():
                pipe.zremrangebyscore(f"{self._p}seen:{account}", "-inf", f"({horizon!r}")
            return sum(pipe.execute())

    def count(self, kind: str) -> int:
        with self._guard():
            return int(self._redis.hlen(f"{self._p}kv:{kind}"))

    def scan(self, kind: str) -> Iterator[tuple[str, bytes]]:
        with self._guard():
            for key, value in self._redis.hscan_iter(f"{self._p}kv:{kind}", count=500):
                yield key.decode(), value

    # -- held records -----------------------------------------------------------------------------

    def _add_held(self, pipe: redis.client.Pipeline, number: int, held: Held) -> None:
        pipe.hset(f"{self._p}held:{number}", mapping={
            "wait_on": held.wait_on, "account": held.account, "source": held.source, "record": held.record,
            "deadline": "" if held.deadline is None else repr(held.deadline),
        })
        pipe.sadd(f"{self._p}wait:{held.wait_on}", number)
        if held.deadline is not None:
            pipe.zadd(f"{self._p}due:{held.account}", {number: held.deadline})
            pipe.sadd(f"{self._p}due:accounts", held.account)
        pipe.sadd(f"{self._p}held:all", number)

    def release(self, wait_on: str) -> list[Held]:
        with self._guard():
            return self._claim(self._redis.smembers(f"{self._p}wait:{wait_on}"))

    def release_due(self, account: str, stream_time: float) -> list[Held]:
        with self._guard():
            return self._claim(self._redis.zrangebyscore(f"{self._p}due:{account}", "-inf", f"({stream_time!r}"))

    def release_stale(self, before: float) -> list[Held]:
        with self._guard():
            ids: list[bytes] = []
            for account in self._redis.smembers(f"{self._p}due:accounts"):
                ids += self._redis.zrangebyscore(f"{self._p}due:{account.decode()}", "-inf", f"({before!r}")
            return self._claim(ids)

    def release_all(self) -> list[Held]:
        with self._guard():
            return self._claim(self._redis.smembers(f"{self._p}held:all"))

    def _claim(self, ids: Iterable[bytes]) -> list[Held]:
        numbers = sorted(int(i) for i in ids)
        if not numbers:
            return []
        with self._redis.pipeline(transaction=False) as pipe:
            for number in numbers:
                pipe.set(f"{self._p}claim:{number}", self._token, nx=True, px=self._lease_ms)
            won = [number for number, ok in zip(numbers, pipe.execute(), strict=True) if ok]
        with self._redis.pipeline(transaction=False) as pipe:
            for number in won:
                pipe.hgetall(f"{self._p}held:{number}")
            rows = pipe.execute()
        claimed: list[Held] = []
        gone: list[str] = []
        for number, row in zip(won, rows, strict=True):
            if not row:  # delivered and forgotten by another process in the meantime
                gone.append(str(number))
                continue
            deadline = row[b"deadline"].decode()
            claimed.append(Held(row[b"wait_on"].decode(), row[b"account"].decode(),
                                float(deadline) if deadline else None, row[b"source"].decode(),
                                row[b"record"], str(number)))
        self._unclaim_now(gone)
        return claimed

    def _where_held(self, ids: list[str]) -> list[list[bytes | None]]:
        """The index entries of held records, read before the transaction that forgets them."""
        if not ids:
            return []
        with self._redis.pipeline(transaction=False) as pipe:
            for number in ids:
                pipe.hmget(f"{self._p}held:{number}", ["wait_on", "account"])
            return pipe.execute()

    def _forget_held(self, pipe: redis.client.Pipeline, ids: list[str], where: list[list[bytes | None]]) -> None:
        for number, (wait_on, account) in zip(ids, where, strict=True):
            pipe.delete(f"{self._p}held:{number}", f"{self._p}claim:{number}")
            pipe.srem(f"{self._p}held:all", number)
            if wait_on is not None:
                pipe.srem(f"{self._p}wait:{wait_on.decode()}", number)
            if account is not None:
                pipe.zrem(f"{self._p}due:{account.decode()}", number)

    def unclaim(self, ids: Iterable[str]) -> None:
        with self._guard():
            self._unclaim_now(list(ids))

    def _unclaim_now(self, ids: list[str]) -> None:
        keys = [f"{self._p}claim:{number}" for number in ids]
        if keys:
            self._unclaim(keys=keys, args=[self._token])

    def claims_elsewhere(self) -> bool:
        with self._guard():
            for key in self._redis.scan_iter(match=f"{self._p}claim:*", count=500):
                if self._redis.get(key) != self._token:
                    return True
            return False

    def held_count(self) -> int:
        with self._guard():
            return int(self._redis.scard(f"{self._p}held:all"))

    def close(self) -> None:
        """Give back this process's claims at once (those of work it abandoned at shutdown), so
        another process releases the records now rather than after the lease."""
        try:
            mine = [key for key in self._redis.scan_iter(match=f"{self._p}claim:*", count=500)
                    if self._redis.get(key) == self._token]
            if mine:
                self._unclaim(keys=mine, args=[self._token])
        except redis.RedisError:
            pass  # Redis is away: the claims lapse with their lease
        self._redis.close()


def _client(config: RedisState) -> redis.Redis:
    password = config.password.get() if config.password else None
    if config.sentinel is None:
        return redis.Redis.from_url(config.url, password=password, health_check_interval=30)
    # The URL's scheme and database (and its TLS settings) for the primary, wherever it is now.
    options = redis.connection.parse_url(config.url)
    options.pop("host", None)
    options.pop("port", None)
    options.pop("connection_class", None)
    sentinel = config.sentinel
    addresses = [(host.rpartition(":")[0].strip("[]"), int(host.rpartition(":")[2])) for host in sentinel.hosts]
    watchers = redis.sentinel.Sentinel(
        addresses, sentinel_kwargs={"password": sentinel.password.get()} if sentinel.password else {},
        socket_timeout=5)
    return watchers.master_for(sentinel.service_name, password=password, health_check_interval=30,
                               ssl=urlsplit(config.url).scheme == "rediss", **options)


def _safe(url: str) -> str:
    """The URL without a password written into it."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rpartition('@')[2]}" if "@" in rest else url
