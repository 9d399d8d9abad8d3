#!lua
-- put.lua with locality on. A role of a family keeps its peers in one of
-- two forms (local.go):
--
--   short:   the role's hash alone (no order key): address+port -> last
--            seen (4 bytes big-endian), the cell with a topology, the
--            peer ID (20 bytes; none with keep_peer_ids off);
--   ordered: beside the hash, the role's order, a sorted set (all
--            scored 0) whose member is the cell ("" by prefix), the
--            address+port and the peer ID; the hash's value is then the
--            last seen and the cell alone (the ID is kept once).
--
-- A role is short until a peer new to it makes its hash hold more than
-- short peers, and is then ordered until it empties (both keys go with
-- its last peer). The form is whether the order key exists.
--
-- KEYS as put.lua, then 6 the new role's order, 7 the other role's.
-- ARGV: 1 address+port, 2 the value (last seen, then the cell), 3 the
-- peer ID ("" with keep_peer_ids off: every tracker sharing the Redis
-- keeps them or not alike), 4 "1" to count a download (absent
-- otherwise).
-- Returns as put.lua.
--
-- All keys are declared, so on a Cluster whose slot is moving Redis
-- refuses the script up front unless every one of them is on this node;
-- a command inside it fails only on a key the script itself emptied, so
-- none is named again after a write that may empty it, and the forms are
-- read before the first write.
local short = 4
local addr, val, id = ARGV[1], ARGV[2], ARGV[3]
local cell = string.sub(val, 5)
local member = cell .. addr .. id
local key = KEYS[1]
local n = #key
local fam, role = string.sub(key, n - 1, n - 1), string.sub(key, n)
local ordered = redis.call('EXISTS', KEYS[6]) == 1
local otherOrdered = redis.call('EXISTS', KEYS[7]) == 1
local v = ordered and val or val .. id

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
-- grow makes the short role of KEYS[1] ordered once it holds more than
-- short peers: every peer's member into the order, its ID out of the
-- hash's value. Otherwise it adds the new peer's member to an ordered
-- role.
local function grow()
  if ordered then
    redis.call('ZADD', KEYS[6], 0, member)
    return
  end
  if redis.call('HLEN', KEYS[1]) <= short then return end
  local all = redis.call('HGETALL', KEYS[1])
  local zargs, hargs = {}, {}
  for i = 1, #all, 2 do
    local w = all[i + 1]
    zargs[#zargs + 1] = 0
    local cut = #w - #id -- the value without the peer ID
    zargs[#zargs + 1] = string.sub(w, 5, cut) .. all[i] .. string.sub(w, cut + 1)
    hargs[#hargs + 1] = all[i]
    hargs[#hargs + 1] = string.sub(w, 1, cut)
  end
  redis.call('ZADD', KEYS[6], unpack(zargs))
  redis.call('HSET', KEYS[1], unpack(hargs))
end
-- newPeer counts a peer new to the swarm's family.
local function newPeer()
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  if redis.call('HLEN', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
    redis.call('HINCRBY', KEYS[5], 'w' .. fam, 1)
  end
end
-- moved counts a peer that changed role.
local function moved()
  redis.call('HINCRBY', KEYS[5], role .. fam, 1)
  redis.call('HINCRBY', KEYS[5], (role == 's' and 'l' or 's') .. fam, -1)
end

if cell == '' then
  -- By prefix, a peer announcing again in its role is an HSET, and a
  -- ZADD that finds its member there when the role is ordered: its cell
  -- is its address.
  if redis.call('HSET', KEYS[1], addr, v) == 0 then
    if ordered and redis.call('ZADD', KEYS[6], 0, member) == 1 then
      drop(KEYS[6], '', member) -- a new peer ID
    end
    if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
    return 1
  end
  grow()
  local was = redis.call('HDEL', KEYS[2], addr)
  if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
  if was == 1 then
    if otherOrdered then drop(KEYS[7], '', nil) end
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
redis.call('HSET', KEYS[1], addr, v)
if was == 1 then
  if ordered and redis.call('ZADD', KEYS[6], 0, member) == 1 then
    drop(KEYS[6], string.sub(old, 5), member)
  end
  if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
  return 1
end
grow()
if ARGV[4] == '1' then redis.call('INCR', KEYS[3]) end
if was == 2 then
  redis.call('HDEL', KEYS[2], addr)
  if otherOrdered then drop(KEYS[7], string.sub(old, 5), nil) end
  moved()
  return 2
end
newPeer()
return 0
