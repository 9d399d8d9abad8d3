#!lua
-- Collects the stale peers of one swarm, both families, and drops the
-- swarm from its shard's index once it has no peers left (its downloads
-- stay, as the memory driver keeps them).
--
-- KEYS: 1 IPv4 seeders, 2 IPv4 leechers, 3 IPv6 seeders, 4 IPv6 leechers
-- (hashes: address+port -> peer ID, last seen as 4 bytes big-endian), 5
-- the shard's swarm index, and with locality 6 to 9 the orders of 1 to 4
-- (sorted sets of the same peers, for the roles that are ordered; the
-- hashes' values are then the last seen, then the cell, and in a short
-- role the peer ID after it: see put_local.lua).
-- ARGV: 1 cutoff (peers last seen before it are stale, Unix seconds),
-- 2 the swarm's index member, 3 which of KEYS 1-4 a walk by SCAN met
-- the swarm by (scan.go), or 0: the swarm is left to the walk's visit of
-- an earlier one that exists, 4 the length of the peer IDs at the end of
-- a member of an order (20, or 0 with keep_peer_ids off).
-- Returns {peers removed, peers left, then the changes to the totals:
-- IPv4 seeders, leechers, swarms, IPv6 seeders, leechers, swarms}: the
-- tracker sends them with its own (totals.go), the totals being one key
-- that a script of a Cluster's slot cannot reach.
local none = {0, 0, 0, 0, 0, 0, 0, 0}
for i = 1, (tonumber(ARGV[3]) or 0) - 1 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    return none
  end
end
local cutoff = tonumber(ARGV[1])
local idLen = tonumber(ARGV[4]) or 20
local removed, left = 0, 0
-- changes: the totals' changes, in the order returned.
local changes = {0, 0, 0, 0, 0, 0}
local fams = {{'4', KEYS[1], KEYS[2], KEYS[6], KEYS[7]}, {'6', KEYS[3], KEYS[4], KEYS[8], KEYS[9]}}
-- First only read: the stale peers of each hash, and their members in
-- its order. Every key is declared; no command after the first write
-- names a key that may be gone: while a reshard moves the slot, Redis
-- fails a script at the first command that names a key not on this node
-- (one the script itself just emptied), and what the script wrote before
-- that would stay.
local function chunks(list, f)
  for k = 1, #list, 1000 do
    f(unpack(list, k, math.min(k + 999, #list)))
  end
end
local work = {}
for _, f in ipairs(fams) do
  for r = 2, 3 do
    local key, order = f[r], f[r + 2]
    local role = r == 2 and 's' or 'l'
    local all = redis.call('HGETALL', key)
    local w = {key = key, role = role, fam = f[1], order = order, n = #all / 2, stale = {}, members = {}}
    -- The stamp follows the peer ID in a native value (24 bytes, 26 a
    -- WebSocket peer's); it is the whole value without one (4 bytes,
    -- keep_peer_ids off), and starts a value of locality.
    local at = order and 1 or 21
    -- A short role has no order (put_local.lua): its peers are the
    -- hash's alone.
    local ordered = order and redis.call('EXISTS', order) == 1
    -- gone: the cell and address of each stale peer with locality.
    local gone = {}
    for i = 1, #all, 2 do
      local v = all[i + 1]
      local from = at
      if #v < 24 then from = 1 end
      if struct.unpack('>I4', v, from) < cutoff then
        w.stale[#w.stale + 1] = all[i]
        if ordered then gone[string.sub(v, 5) .. all[i]] = true end
      end
    end
    -- A member is the cell, the address and the peer ID: the stale
    -- ones are found by reading the order once. One that empties is
    -- deleted whole (DEL): removing in chunks could name it again once
    -- emptied.
    if ordered and #w.stale > 0 then
      local ms = redis.call('ZRANGE', order, 0, -1)
      for _, m in ipairs(ms) do
        if gone[string.sub(m, 1, #m - idLen)] then w.members[#w.members + 1] = m end
      end
      w.orderEmpties = #w.members >= #ms
    end
    work[#work + 1] = w
  end
end
for i = 1, #work, 2 do
  local before, after = 0, 0
  for j = i, i + 1 do
    local w = work[j]
    if w.orderEmpties then
      redis.call('DEL', w.order)
    elseif #w.members > 0 then
      chunks(w.members, function(...) redis.call('ZREM', w.order, ...) end)
    end
    if #w.stale == w.n and w.n > 0 then
      redis.call('DEL', w.key)
    else
      chunks(w.stale, function(...) redis.call('HDEL', w.key, ...) end)
    end
    local o = w.fam == '4' and 0 or 3
    if w.role == 's' then
      changes[o + 1] = changes[o + 1] - #w.stale
    else
      changes[o + 2] = changes[o + 2] - #w.stale
    end
    before, after = before + w.n, after + w.n - #w.stale
    removed = removed + #w.stale
  end
  if before > 0 and after == 0 then
    local o = work[i].fam == '4' and 0 or 3
    changes[o + 3] = changes[o + 3] - 1
  end
  left = left + after
end
if left == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
end
return {removed, left, unpack(changes)}
