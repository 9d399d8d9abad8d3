#!lua
-- put.lua with locality on: the peer is also a member (address+port, peer
-- ID) of its cell's set, and its cell is named in the role's directory.
-- The cell keys share the swarm's hash tag, so they are in its slot.
--
-- KEYS as put.lua. ARGV as put.lua (the value ends with the cell), then
-- 7 the family's key base (P{H}F), 8 the peer's cell.
-- Returns as put.lua.
--
-- Everything is read before the first write, and no command after it
-- names a key that may be gone: the cell keys are computed, not
-- declared, and while a reshard moves the slot Redis fails a script at
-- the first command that names a key not on this node (a cell key
-- already moved, or one the script itself just emptied), and what the
-- script wrote before that would stay. So the keys are all named first,
-- and members are added before others are removed.
local addr, val, fam, role, base, cell = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[7], ARGV[8]
local member = addr .. string.sub(val, 1, 20)
local ck, dir = base .. role .. 'c:' .. cell, base .. role .. 'd'
local was = 0
local old = redis.call('HGET', KEYS[1], addr)
if old then
  was = 1
else
  old = redis.call('HGET', KEYS[2], addr)
  if old then was = 2 end
end
local inCell, wasCk, wasDir, wasMember, wasCell, wasLeft = false, nil, nil, nil, nil, 0
if old then
  local wasRole = role
  if was == 2 then wasRole = role == 's' and 'l' or 's' end
  wasMember = addr .. string.sub(old, 1, 20)
  wasCell = string.sub(old, 25)
  if was == 1 and wasMember == member and wasCell == cell then
    inCell = true
  else
    wasCk, wasDir = base .. wasRole .. 'c:' .. wasCell, base .. wasRole .. 'd'
    wasLeft = redis.call('SCARD', wasCk) - redis.call('SISMEMBER', wasCk, wasMember)
    redis.call('EXISTS', wasDir)
  end
end
local first = false
if not inCell then
  redis.call('EXISTS', ck, dir)
end
if was == 0 then
  first = redis.call('HLEN', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0
end
-- The writes.
if was == 2 then
  redis.call('HDEL', KEYS[2], addr)
end
redis.call('HSET', KEYS[1], addr, val)
if not inCell then
  redis.call('SADD', ck, member)
  redis.call('ZADD', dir, 0, cell)
end
if wasCk then
  redis.call('SREM', wasCk, wasMember)
  if wasLeft == 0 and wasCk ~= ck then
    redis.call('ZREM', wasDir, wasCell)
  end
end
if ARGV[5] == '1' then
  redis.call('INCR', KEYS[3])
end
if was == 2 then
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  redis.call('HINCRBY', KEYS[5], (role == 's' and 'l' or 's') .. fam, -1)
elseif was == 0 then
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  if first then
    redis.call('HINCRBY', KEYS[5], 'w' .. fam, 1)
    redis.call('SADD', KEYS[4], ARGV[6])
  end
end
return was
