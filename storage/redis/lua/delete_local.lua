#!lua
-- delete.lua with locality on: the peer also leaves its cell's set.
--
-- KEYS as delete.lua. ARGV as delete.lua, then 3 the family's key base.
-- Returns as delete.lua.
local addr, fam, base = ARGV[1], ARGV[2], ARGV[3]
local was, role = 0, 's'
local old = redis.call('HGET', KEYS[1], addr)
if old then
  was = 1
else
  old = redis.call('HGET', KEYS[2], addr)
  if old then was, role = 2, 'l' end
end
if was == 0 then
  return 0
end
redis.call('HDEL', KEYS[was], addr)
redis.call('HINCRBY', KEYS[4], role .. fam, -1)
if redis.call('EXISTS', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('HINCRBY', KEYS[4], 'w' .. fam, -1)
end
if #old > 24 then
  local cell = string.sub(old, 25)
  local ck = base .. role .. 'c:' .. cell
  redis.call('SREM', ck, addr .. string.sub(old, 1, 20))
  if redis.call('SCARD', ck) == 0 then
    redis.call('ZREM', base .. role .. 'd', cell)
  end
end
return was
