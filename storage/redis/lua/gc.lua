#!lua
-- Collects the stale peers of one swarm, both families, and drops the
-- swarm from its shard's index once it has no peers left (its downloads
-- stay, as the memory driver keeps them).
--
-- KEYS: 1 IPv4 seeders, 2 IPv4 leechers, 3 IPv6 seeders, 4 IPv6 leechers
-- (hashes: address+port -> peer ID, last seen as 4 bytes big-endian, and
-- with locality the peer's cell), 5 the shard's swarm index, 6 the
-- shard's totals.
-- ARGV: 1 cutoff (peers last seen before it are stale, Unix seconds),
-- 2 the swarm's index member, 3 and 4 the IPv4 and IPv6 key bases of
-- the cell sets (locality), or "" without locality, 5 which of KEYS 1-4
-- a walk by SCAN met the swarm by (scan.go), or 0: the swarm is left to
-- the walk's visit of an earlier one that exists.
-- Returns {peers removed, peers left}.
for i = 1, (tonumber(ARGV[5]) or 0) - 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return {0, 0}
  end
end
local cutoff = tonumber(ARGV[1])
local removed, left = 0, 0
local fams = {{'4', KEYS[1], KEYS[2], ARGV[3]}, {'6', KEYS[3], KEYS[4], ARGV[4]}}
-- First only read: the stale peers of each hash, the cell sets they
-- leave and what stays in those. No command after the first write names
-- a key that may be gone: the cell keys are computed, not declared, and
-- while a reshard moves the slot Redis fails a script at the first
-- command that names a key not on this node (a cell key already moved,
-- or one the script itself just emptied), and what the script wrote
-- before that would stay.
local function chunks(list, f)
  for k = 1, #list, 1000 do
    f(unpack(list, k, math.min(k + 999, #list)))
  end
end
local work = {}
for _, f in ipairs(fams) do
  local base = f[4]
  for r = 2, 3 do
    local key = f[r]
    local role = r == 2 and 's' or 'l'
    local all = redis.call('HGETALL', key)
    local w = {key = key, role = role, fam = f[1], dir = base .. role .. 'd', n = #all / 2,
      stale = {}, cells = {}}
    for i = 1, #all, 2 do
      local v = all[i + 1]
      if struct.unpack('>I4', v, 21) < cutoff then
        w.stale[#w.stale + 1] = all[i]
        if base ~= '' and #v > 24 then
          local cell = string.sub(v, 25)
          local c = w.cells[cell]
          if not c then
            c = {key = base .. role .. 'c:' .. cell, members = {}}
            w.cells[cell] = c
          end
          c.members[#c.members + 1] = all[i] .. string.sub(v, 1, 20)
        end
      end
    end
    -- A set or directory that empties is deleted whole (DEL): removing
    -- in chunks could name it again once emptied.
    w.emptied = {}
    for cell, c in pairs(w.cells) do
      local stay = redis.call('SCARD', c.key)
      chunks(c.members, function(...)
        for _, m in ipairs(redis.call('SMISMEMBER', c.key, ...)) do
          stay = stay - m
        end
      end)
      c.empties = stay <= 0
      if c.empties then w.emptied[#w.emptied + 1] = cell end
    end
    if next(w.cells) then
      w.dirEmpties = #w.emptied >= redis.call('ZCARD', w.dir)
    end
    work[#work + 1] = w
  end
end
for i = 1, #work, 2 do
  local before, after = 0, 0
  for j = i, i + 1 do
    local w = work[j]
    for _, c in pairs(w.cells) do
      if c.empties then
        redis.call('DEL', c.key)
      else
        chunks(c.members, function(...) redis.call('SREM', c.key, ...) end)
      end
    end
    if w.dirEmpties then
      redis.call('DEL', w.dir)
    elseif #w.emptied > 0 then
      chunks(w.emptied, function(...) redis.call('ZREM', w.dir, ...) end)
    end
    if #w.stale == w.n and w.n > 0 then
      redis.call('DEL', w.key)
    else
      chunks(w.stale, function(...) redis.call('HDEL', w.key, ...) end)
    end
    if #w.stale > 0 then
      redis.call('HINCRBY', KEYS[6], w.role .. w.fam, -#w.stale)
    end
    before, after = before + w.n, after + w.n - #w.stale
    removed = removed + #w.stale
  end
  if before > 0 and after == 0 then
    redis.call('HINCRBY', KEYS[6], 'w' .. work[i].fam, -1)
  end
  left = left + after
end
if left == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
end
return {removed, left}
