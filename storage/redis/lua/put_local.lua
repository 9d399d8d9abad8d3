#!lua
-- put.lua with locality on. The role's hash holds address+port -> last
-- seen (4 bytes big-endian), then the cell with a topology; the peer ID
-- is in the peer's member of its role's order instead, a sorted set (all
-- scored 0) whose member is the cell ("" by prefix), the address+port and
-- the peer ID (local.go), so that an answer reads its peers from the
-- order alone.
--
-- KEYS as put.lua, then 6 the new role's order, 7 the other role's.
-- ARGV: 1 address+port, 2 the value (last seen, then the cell), 3 the
-- peer ID, 4 "1" to count a download (absent otherwise).
-- Returns as put.lua.
--
-- All keys are declared, so on a Cluster whose slot is moving Redis
-- refuses the script up front unless every one of them is on this node;
-- a command inside it fails only on a key the script itself emptied, so
-- none is named again after a write that may empty it.
local addr, val = ARGV[1], ARGV[2]
local cell = string.sub(val, 5)
local member = cell .. addr .. ARGV[3]
local key = KEYS[1]
local n = #key
local fam, role = string.sub(key, n - 1, n - 1), string.sub(key, n)

-- drop removes from order z the members of the peer at cell c other
-- than keep (a peer ID changed, a cell changed, a role left): they are
-- the members from c..addr up to c..addr then 21 bytes 0xff, above any
-- peer ID.
local function drop(z, c, keep)
  local prefix = c .. addr
  local ms = redis.call('ZRANGEBYLEX', z, '[' .. prefix, '(' .. prefix .. string.rep('\255', 21))
  local gone = {}
  for i = 1, #ms do
    if ms[i] ~= keep then gone[#gone + 1] = ms[i] end
  end
  if #gone > 0 then redis.call('ZREM', z, unpack(gone)) end
end
-- newPeer counts a peer new to the swarm's family.
local function newPeer()
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  if redis.call('HLEN', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HINCRBY', KEYS[5], 'w' .. fam, 1)
    redis.call('SADD', KEYS[4], string.sub(key, n - 42, n - 3))
  end
end
-- moved counts a peer that changed role.
local function moved()
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  redis.call('HINCRBY', KEYS[5], (role == 's' and 'l' or 's') .. fam, -1)
end

if cell == '' then
  -- By prefix, a peer announcing again in its role is an HSET and a
  -- ZADD that finds its member there: its cell is its address.
  if redis.call('HSET', KEYS[1], addr, val) == 0 then
    if redis.call('ZADD', KEYS[6], 0, member) == 1 then
      drop(KEYS[6], '', member) -- a new peer ID
    end
    if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
    return 1
  end
  redis.call('ZADD', KEYS[6], 0, member)
  local was = redis.call('HDEL', KEYS[2], addr)
  if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
  if was == 1 then
    drop(KEYS[7], '', nil)
    moved()
    return 2
  end
  newPeer()
  return 0
end

-- With a topology the cell may have changed (a reload): the members
-- before are found by the cell of the value before.
local was, old = 0, redis.call('HGET', KEYS[1], addr)
if old then
  was = 1
else
  old = redis.call('HGET', KEYS[2], addr)
  if old then was = 2 end
end
redis.call('HSET', KEYS[1], addr, val)
local added = redis.call('ZADD', KEYS[6], 0, member)
if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
if was == 1 then
  if added == 1 then drop(KEYS[6], string.sub(old, 5), member) end
  return 1
end
if was == 2 then
  redis.call('HDEL', KEYS[2], addr)
  drop(KEYS[7], string.sub(old, 5), nil)
  moved()
  return 2
end
newPeer()
return 0
