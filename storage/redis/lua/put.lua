#!lua
-- Stores a peer as a seeder or a leecher of one address family of a
-- swarm, and reports the swarm as it was before: one announce's update
-- and the counts for its answer, atomically.
--
-- KEYS: 1 the peer's new role's hash, 2 the other role's hash, 3 the
-- torrent's downloads, 4 the swarm index of the swarm's shard, 5 the
-- totals of that shard.
-- ARGV: 1 address+port, 2 the value (peer ID, last seen as 4 bytes
-- big-endian), 3 family ("4" or "6"), 4 the new role ("s" or "l"),
-- 5 "1" to count a download, 6 the swarm's index member.
-- Returns {peers in the new role's hash, in the other's, downloads, the
-- role before: 0 absent, 1 the new role, 2 the other}, all before the
-- update.
local own = redis.call('HLEN', KEYS[1])
local other = redis.call('HLEN', KEYS[2])
local fam, role = ARGV[3], ARGV[4]
local moved = redis.call('HDEL', KEYS[2], ARGV[1])
local added = redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local dl
if ARGV[5] == '1' then
  dl = redis.call('INCR', KEYS[3]) - 1
else
  dl = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
end
local was = 0
if moved == 1 then
  was = 2
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  redis.call('HINCRBY', KEYS[5], (role == 's' and 'l' or 's') .. fam, -1)
elseif added == 0 then
  was = 1
else
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  if own + other == 0 then
    redis.call('HINCRBY', KEYS[5], 'w' .. fam, 1)
    redis.call('SADD', KEYS[4], ARGV[6])
  end
end
return {own, other, dl, was}
