"""forwarder/baseline/profile.py's ``merged``, as a Redis script: one atomic step in the commit.

A read in Python and a write back would lose what another process merges in between. The
result is the one ``profile.join`` gives (a test holds the two together on the same deltas).
KEYS: the kind's hash, its expiry sorted set. ARGV: key, delta (with its bounds).
"""

from __future__ import annotations

MERGE = """
-- A stored value this version reads, or nil (another version's, damaged): merged afresh.
local function readable(raw)
  local ok, value = pcall(cjson.decode, raw or 'null')
  if not ok or type(value) ~= 'table' then return nil end
  for _, name in ipairs({'facets', 'days'}) do
    if type(value[name]) ~= 'table' then return nil end
  end
  if type(value.first) ~= 'number' or type(value.last) ~= 'number' then return nil end
  return value
end
local function names(a, b)
  local all = {}
  for name in pairs(a) do all[name] = true end
  for name in pairs(b) do all[name] = true end
  return all
end
local delta = cjson.decode(ARGV[2])
local cap, keep, kept_days, sample = delta.bounds[1], delta.bounds[2], delta.bounds[3], delta.bounds[4]
local old = readable(redis.call('HGET', KEYS[1], ARGV[1])) or {first = delta.first, last = delta.last, facets = {}, days = {}}
local last = math.max(old.last, delta.last)
local out = {first = math.min(old.first, delta.first), last = last, facets = {}, days = {}}

for name in pairs(names(old.facets, delta.facets)) do
  local union = {}
  for value, seen in pairs(old.facets[name] or {}) do union[value] = {seen[1], seen[2]} end
  for value, seen in pairs(delta.facets[name] or {}) do
    local known = union[value]
    if known == nil then union[value] = {seen[1], seen[2]}
    else union[value] = {math.min(known[1], seen[1]), math.max(known[2], seen[2])} end
  end
  local kept, order = {}, {}
  for value, seen in pairs(union) do
    if seen[2] >= last - keep then kept[value] = seen; order[#order + 1] = value end
  end
  if #order > cap then
    table.sort(order, function(x, y)
      if kept[x][2] ~= kept[y][2] then return kept[x][2] > kept[y][2] end
      return x < y
    end)
    local cut = {}
    for i = 1, cap do cut[order[i]] = kept[order[i]] end
    kept = cut
  end
  out.facets[name] = kept
end

local newest = nil
for day in pairs(names(old.days, delta.days)) do
  local n = tonumber(day)
  if newest == nil or n > newest then newest = n end
end
for day in pairs(names(old.days, delta.days)) do
  if tonumber(day) >= newest - kept_days then
    -- [hash, time, hash, time...] in the order of the hashes: the union, each hash's earliest
    -- time, cut to the `sample` smallest hashes.
    local union, hashes, flat = {}, {}, {}
    for _, part in ipairs({old.days[day] or {}, delta.days[day] or {}}) do
      for i = 1, #part, 2 do
        local digest, moment = part[i], part[i + 1]
        if union[digest] == nil or moment < union[digest] then union[digest] = moment end
      end
    end
    for digest in pairs(union) do hashes[#hashes + 1] = digest end
    table.sort(hashes)
    for i = 1, math.min(#hashes, sample) do
      flat[#flat + 1] = hashes[i]
      flat[#flat + 1] = union[hashes[i]]
    end
    out.days[day] = flat
  end
end

redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(out))
redis.call('ZADD', KEYS[2], last + keep, ARGV[1])
"""
