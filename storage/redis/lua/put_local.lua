#!lua
-- put.lua with locality on: the peer is also a member (address+port, peer
-- ID) of its cell's set, and its cell is named in the role's directory.
-- The cell keys share the swarm's hash tag, so they are in its slot.
--
-- KEYS as put.lua. ARGV as put.lua (the value ends with the cell), then
-- 7 the family's key base (P{H}F), 8 the peer's cell.
-- Returns as put.lua.
local addr, val, fam, role, base, cell = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[7], ARGV[8]
local member = addr .. string.sub(val, 1, 20)
local was = 0
local old = redis.call('HGET', KEYS[1], addr)
if old then
  was = 1
else
  old = redis.call('HGET', KEYS[2], addr)
  if old then was = 2 end
end
local inCell = false
if old then
  local wasRole = role
  if was == 2 then wasRole = role == 's' and 'l' or 's' end
  local wasMember = addr .. string.sub(old, 1, 20)
  local wasCell = string.sub(old, 25)
  if was == 1 and wasMember == member and wasCell == cell then
    inCell = true
  else
    local ck = base .. wasRole .. 'c:' .. wasCell
    redis.call('SREM', ck, wasMember)
    if redis.call('SCARD', ck) == 0 then
      redis.call('ZREM', base .. wasRole .. 'd', wasCell)
    end
  end
end
if was == 2 then
  redis.call('HDEL', KEYS[2], addr)
end
redis.call('HSET', KEYS[1], addr, val)
if not inCell then
  redis.call('SADD', base .. role .. 'c:' .. cell, member)
  redis.call('ZADD', base .. role .. 'd', 0, cell)
end
if ARGV[5] == '1' then
  redis.call('INCR', KEYS[3])
end
if was == 2 then
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  redis.call('HINCRBY', KEYS[5], (role == 's' and 'l' or 's') .. fam, -1)
elseif was == 0 then
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  if redis.call('HLEN', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HINCRBY', KEYS[5], 'w' .. fam, 1)
    redis.call('SADD', KEYS[4], ARGV[6])
  end
end
return was
