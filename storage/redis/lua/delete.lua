#!lua
-- Removes a peer from one address family of a swarm, and reports the
-- swarm as it was before (a `stopped` announce's answer). The swarm stays
-- in its index: collection drops it there once it finds it empty.
--
-- KEYS: 1 seeders' hash, 2 leechers' hash, 3 downloads, 4 shard totals.
-- ARGV: 1 address+port, 2 family.
-- Returns {seeders, leechers, downloads, role before: 0 absent,
-- 1 seeder, 2 leecher}.
local s = redis.call('HLEN', KEYS[1])
local l = redis.call('HLEN', KEYS[2])
local dl = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
local fam = ARGV[2]
local was = 0
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  was = 1
  redis.call('HINCRBY', KEYS[4], 's' .. fam, -1)
elseif redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  was = 2
  redis.call('HINCRBY', KEYS[4], 'l' .. fam, -1)
end
if was ~= 0 and s + l == 1 then
  redis.call('HINCRBY', KEYS[4], 'w' .. fam, -1)
end
return {s, l, dl, was}
