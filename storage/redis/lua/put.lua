#!lua
-- Stores a peer as a seeder or a leecher of one address family of a
-- swarm: one announce's update. The totals change only when a peer comes,
-- goes or changes role.
--
-- KEYS: 1 the peer's new role's hash, 2 the other role's hash, 3 the
-- torrent's downloads, 4 the swarm index of the swarm's shard (declared
-- for its slot only: nothing adds to it, collection finds swarms by
-- SCAN), 5 the totals of that shard.
-- ARGV: 1 address+port, 2 the value (peer ID, last seen as 4 bytes
-- big-endian), 3 "1" to count a download (absent otherwise).
-- Returns the peer's role before: 0 absent, 1 the new role, 2 the other.
--
-- The common case (a peer announcing again in its role) is one HSET that
-- replaces the value: a peer is never in both roles, so it is not in the
-- other. Only a peer new to the role is looked for in the other one.
-- Every argument costs Redis time on every call, so what only the rare
-- case needs (the family, the role) is read from the name of the role's
-- hash: P{H}Fr, or P{H}wFr for the WebSocket peers of the swarm (see
-- codec.go, kinds.go).
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  if ARGV[3] == '1' then
    redis.call('INCR', KEYS[3])
  end
  return 1
end
local key = KEYS[1]
local n = #key
local fam, role = string.sub(key, n - 1, n - 1), string.sub(key, n)
local moved = redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[3])
end
if moved == 1 then
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  redis.call('HINCRBY', KEYS[5], (role == 's' and 'l' or 's') .. fam, -1)
  return 2
end
redis.call('HINCRBY', KEYS[5], role .. fam, 1)
if redis.call('HLEN', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  -- The family's first peer: a new swarm for the totals.
  redis.call('HINCRBY', KEYS[5], 'w' .. fam, 1)
end
return 0
