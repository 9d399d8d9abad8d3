#!lua
-- delete.lua with locality on: the peer also leaves its cell's set.
--
-- KEYS as delete.lua. ARGV as delete.lua, then 3 the family's key base.
-- Returns as delete.lua.
--
-- Everything is read before the first write, and no command after it
-- names a key that may be gone: while a reshard moves the slot, Redis
-- fails a script at the first command that names a key not on this node
-- (a computed cell key already moved, or a key the script itself just
-- emptied), and what the script wrote before that would stay.
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
local left = redis.call('HLEN', KEYS[1]) + redis.call('HLEN', KEYS[2]) - 1
local member = addr .. string.sub(old, 1, 20)
local ck, cell, cellLeft = nil, nil, 0
if #old > 24 then
  cell = string.sub(old, 25)
  ck = base .. role .. 'c:' .. cell
  cellLeft = redis.call('SCARD', ck) - redis.call('SISMEMBER', ck, member)
  redis.call('EXISTS', base .. role .. 'd')
end
redis.call('HDEL', KEYS[was], addr)
redis.call('HINCRBY', KEYS[4], role .. fam, -1)
if left == 0 then
  redis.call('HINCRBY', KEYS[4], 'w' .. fam, -1)
end
if ck then
  redis.call('SREM', ck, member)
  if cellLeft == 0 then
    redis.call('ZREM', base .. role .. 'd', cell)
  end
end
return was
