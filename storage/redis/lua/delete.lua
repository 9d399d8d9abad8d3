#!lua
-- Removes a peer from one address family of a swarm. The swarm stays in
-- its index: collection drops it there once it finds it empty.
--
-- KEYS: 1 seeders' hash, 2 leechers' hash, 3 downloads, 4 shard totals.
-- ARGV: 1 address+port, 2 family.
-- Returns the peer's role before: 0 absent, 1 seeder, 2 leecher.
--
-- The hashes are measured before the first write: after it, naming a
-- hash the script just emptied fails the script while a reshard moves the
-- slot (see delete_local.lua).
local fam = ARGV[2]
local left = redis.call('HLEN', KEYS[1]) + redis.call('HLEN', KEYS[2]) - 1
local was = 0
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  was = 1
  redis.call('HINCRBY', KEYS[4], 's' .. fam, -1)
elseif redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  was = 2
  redis.call('HINCRBY', KEYS[4], 'l' .. fam, -1)
else
  return 0
end
if left == 0 then
  redis.call('HINCRBY', KEYS[4], 'w' .. fam, -1)
end
return was
