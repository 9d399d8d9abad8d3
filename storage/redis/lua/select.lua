#!lua flags=no-writes
-- Answers an announce with locality on: the counts, the announcer's role
-- and the peers. It only reads, so it runs on a Redis that is out of
-- memory as well. The order of the answer is that of the memory driver
-- (see announceLocal there): the own cell, leaving room for the reserve;
-- the reserve, from anywhere outside the own cell; then, if the own cell
-- ran short, the nearest tiers out. Each part is seeders first for a
-- leecher, leechers only for a seeder.
--
-- An ordered role's peers are also members of a sorted set, all scored
-- 0, so ordered by member (put_local.lua): the cell's name with a
-- topology, the address+port, the peer ID. Every group at every tier is
-- then a contiguous run of ranks, whose ends ZLEXCOUNT finds; a part
-- takes consecutive members (ZRANGE by rank) from a random rank of its
-- run, going round it once. O(numwant) members, plus O(log peers) per
-- run. A short role (at most a few peers, no sorted set) is read whole
-- from its hash, whose values hold the cell and the peer ID, and its
-- members are put in the same order here, so that both forms answer
-- alike.
--
-- KEYS: 1 seeders' hash, 2 leechers' hash, 3 downloads, 4 the seeders in
-- order, 5 the leechers in order.
-- ARGV: 1 the announcer's address+port, 2 numwant, 3 the reserve, 4 "1"
-- for a seeder, 5 a random seed in [1, 2^31-2], 6 the announcer's cell
-- as its stored value and member carry it ("" by prefix), 7 the length of
-- the peer IDs stored (20, or 0 with keep_peer_ids off), then for each
-- tier from
-- the nearest (tier 0, the cell) the bounds of the announcer's group
-- there: the least member of the group and a string above every member
-- of it and below every member after it ("", "" where the announcer is in
-- no group).
-- Returns {seeders, leechers, downloads, the announcer's role ("s", "l"
-- or ""), members (address+port, peer ID)...}.
local selfAddr = ARGV[1]
local numWant, reserve = tonumber(ARGV[2]), tonumber(ARGV[3])
local roles = ARGV[4] == '1' and {'l'} or {'s', 'l'}
local rnd, cell = tonumber(ARGV[5]), ARGV[6]
local idLen = tonumber(ARGV[7])
local bounds = {}
for i = 8, #ARGV - 1, 2 do bounds[#bounds + 1] = {ARGV[i], ARGV[i + 1]} end
local tiers = #bounds
local orders = {s = KEYS[4], l = KEYS[5]}
local hashes = {s = KEYS[1], l = KEYS[2]}

local n = {s = redis.call('HLEN', KEYS[1]), l = redis.call('HLEN', KEYS[2])}
local dl = tonumber(redis.call('GET', KEYS[3]) or '0') or 0

-- less compares bytes (Lua's < on strings follows the server's locale).
local function less(a, b)
  if a == b then return false end
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- short[r] holds the members of a short role r in order, read from its
-- hash the first time they are needed; false for an ordered role.
local short = {}
local function shortOf(r)
  if short[r] == nil then
    short[r] = false
    if n[r] == 0 or redis.call('EXISTS', orders[r]) == 0 then
      local list = {}
      local all = n[r] > 0 and redis.call('HGETALL', hashes[r]) or {}
      for i = 1, #all, 2 do
        local v = all[i + 1]
        local cut = #v - idLen -- the value without the peer ID
        list[#list + 1] = string.sub(v, 5, cut) .. all[i] .. string.sub(v, cut + 1)
      end
      table.sort(list, less)
      short[r] = list
    end
  end
  return short[r]
end

local selfRole, selfInCell = nil, false
local sv = redis.call('HGET', KEYS[1], selfAddr)
if sv then
  selfRole = 's'
else
  sv = redis.call('HGET', KEYS[2], selfAddr)
  if sv then selfRole = 'l' end
end
if sv then
  local c = string.sub(sv, 5)
  if shortOf(selfRole) then c = string.sub(sv, 5, #sv - idLen) end
  selfInCell = c == cell
end
local out = {n.s, n.l, dl, selfRole or ''}
local nout = 4
if numWant <= 0 then return out end

-- Park-Miller: exact in Lua's doubles.
local function random(m)
  rnd = (rnd * 16807) % 2147483647
  return rnd % m
end

-- A member may be met twice (by the reserve's walk, then a tier's):
-- taken skips it. A member ends with the address+port and the peer ID,
-- which the answer holds; the announcer is skipped by its address.
local taken = {}
local peerLen = #selfAddr + idLen
-- walk takes up to want members of role r from the ranks [lo, hi) less
-- [holeLo, holeHi), consecutive from a random one round the run once, in
-- one ZRANGE per stretch of ranks (one more member than wanted, for the
-- announcer), and returns how many it still wants.
local function walk(r, lo, hi, holeLo, holeHi, want)
  if holeLo == holeHi then holeLo, holeHi = lo, lo end
  local size = (hi - lo) - (holeHi - holeLo)
  if size <= 0 or want <= 0 then return want end
  local z, list = orders[r], shortOf(r)
  local step, left = random(size), size
  while want > 0 and left > 0 do
    local j = holeHi + step % size
    local stop = hi
    if j >= hi then
      j, stop = lo + (j - hi), holeLo
    end
    local k = math.min(stop - j, left, want + 1)
    local ms
    if list then
      ms = {unpack(list, j + 1, math.min(j + k, #list))}
    else
      ms = redis.call('ZRANGE', z, j, j + k - 1)
    end
    for i = 1, #ms do
      if want <= 0 then break end
      local m = ms[i]
      local peer = string.sub(m, -peerLen)
      if string.sub(peer, 1, #selfAddr) ~= selfAddr and not taken[m] then
        taken[m] = true
        nout = nout + 1
        out[nout] = peer
        want = want - 1
      end
    end
    if #ms < k then break end
    step, left = step + k, left - k
  end
  return want
end
-- rank is the number of members of role r below s.
local function rank(r, s)
  local list = shortOf(r)
  if not list then
    return redis.call('ZLEXCOUNT', orders[r], '-', '(' .. s)
  end
  local c = 0
  for i = 1, #list do
    if not less(list[i], s) then break end
    c = c + 1
  end
  return c
end
-- holes[r] is the run of ranks walked last in role r: the own cell's
-- first (empty when the announcer is in no group at tier 0).
local placed0 = tiers > 0 and bounds[1][1] ~= ''
local avail, own, holes = 0, 0, {}
for _, r in ipairs(roles) do
  avail = avail + n[r]
  if selfRole == r then avail = avail - 1 end
  holes[r] = {0, 0}
  if placed0 then
    local lo, hi = rank(r, bounds[1][1]), rank(r, bounds[1][2])
    holes[r] = {lo, hi}
    own = own + hi - lo
    if selfRole == r and selfInCell then own = own - 1 end
  end
end
local total = math.min(numWant, avail)
reserve = math.min(reserve, avail - own)
local y = math.min(own, total - reserve)
local outside = total - y
if y > 0 then
  for _, r in ipairs(roles) do
    y = walk(r, holes[r][1], holes[r][2], 0, 0, y)
  end
end
if outside <= 0 then return out end

local want = outside
if tiers > 1 and outside > reserve then want = reserve end
local rest = outside - want
for _, r in ipairs(roles) do
  want = walk(r, 0, n[r], holes[r][1], holes[r][2], want)
end
rest = rest + want
for t = 1, tiers do
  if rest <= 0 then break end
  local b = bounds[t + 1]
  if t == tiers or b[1] ~= '' then
    for _, r in ipairs(roles) do
      local lo, hi = 0, n[r]
      if t < tiers then
        lo, hi = rank(r, b[1]), rank(r, b[2])
      end
      rest = walk(r, lo, hi, holes[r][1], holes[r][2], rest)
      holes[r] = {lo, hi}
    end
  end
end
return out
