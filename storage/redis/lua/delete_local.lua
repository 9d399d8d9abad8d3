#!lua
-- delete.lua with locality on: the peer also leaves its role's order
-- when the role is ordered (put_local.lua has the two forms of a role).
--
-- KEYS as delete.lua, then 5 the seeders' order, 6 the leechers'.
-- ARGV as delete.lua.
-- Returns as delete.lua.
--
-- The keys are all declared and measured before the first write: after
-- it, naming a key the script just emptied fails the script while a
-- reshard moves the slot, and what it wrote before would stay.
local addr, fam = ARGV[1], ARGV[2]
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
-- The peer's members, in an ordered role: from its cell and address up
-- to 21 bytes 0xff after them, above any peer ID (put_local.lua).
local members = {}
if redis.call('EXISTS', KEYS[4 + was]) == 1 then
  local prefix = string.sub(old, 5) .. addr
  members = redis.call('ZRANGEBYLEX', KEYS[4 + was], '[' .. prefix, '(' .. prefix .. string.rep('\255', 21))
end
redis.call('HDEL', KEYS[was], addr)
if #members > 0 then
  redis.call('ZREM', KEYS[4 + was], unpack(members))
end
redis.call('HINCRBY', KEYS[4], role .. fam, -1)
if left == 0 then
  redis.call('HINCRBY', KEYS[4], 'w' .. fam, -1)
end
return was
