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
-- the cell sets (locality), or "" without locality.
-- Returns {peers removed, peers left}.
local cutoff = tonumber(ARGV[1])
local removed, left = 0, 0
local fams = {{'4', KEYS[1], KEYS[2], ARGV[3]}, {'6', KEYS[3], KEYS[4], ARGV[4]}}
for _, f in ipairs(fams) do
  local fam, base = f[1], f[4]
  local before, after = 0, 0
  for r = 2, 3 do
    local key = f[r]
    local role = r == 2 and 's' or 'l'
    local all = redis.call('HGETALL', key)
    local n = #all / 2
    local stale, cells = {}, {}
    for i = 1, #all, 2 do
      local v = all[i + 1]
      if struct.unpack('>I4', v, 21) < cutoff then
        stale[#stale + 1] = all[i]
        if base ~= '' and #v > 24 then
          local cell = string.sub(v, 25)
          redis.call('SREM', base .. role .. 'c:' .. cell, all[i] .. string.sub(v, 1, 20))
          cells[cell] = true
        end
      end
    end
    for cell in pairs(cells) do
      if redis.call('EXISTS', base .. role .. 'c:' .. cell) == 0 then
        redis.call('ZREM', base .. role .. 'd', cell)
      end
    end
    for i = 1, #stale, 1000 do
      redis.call('HDEL', key, unpack(stale, i, math.min(i + 999, #stale)))
    end
    if #stale > 0 then
      redis.call('HINCRBY', KEYS[6], role .. fam, -#stale)
    end
    before, after = before + n, after + n - #stale
    removed = removed + #stale
  end
  if before > 0 and after == 0 then
    redis.call('HINCRBY', KEYS[6], 'w' .. fam, -1)
  end
  left = left + after
end
if left == 0 then
  redis.call('SREM', KEYS[5], ARGV[2])
end
return {removed, left}
