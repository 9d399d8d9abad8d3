#!lua flags=no-writes
-- Answers an announce with locality on: the counts, the announcer's role
-- and the peers. It only reads, so it runs on a Redis that is out of
-- memory as well. The order of the answer is that of the memory driver
-- (see announceLocal there): the own cell, leaving room for the reserve;
-- the reserve, from anywhere outside the own cell; then, if the own cell
-- ran short, the nearest tiers out. Each part is seeders first for a
-- leecher, leechers only for a seeder.
--
-- KEYS: 1 seeders' hash, 2 leechers' hash, 3 downloads.
-- ARGV: 1 the family's key base (P{H}F), 2 the announcer's address+port,
-- 3 its cell, 4 "1" if the cell is a group at tier 0, 5 numwant, 6 the
-- reserve, 7 "1" for a seeder, 8 a random seed in [1, 2^31-2], 9... the
-- announcer's tier prefixes for tiers 1 and up ("-" where it is in no
-- group).
-- Returns {seeders, leechers, downloads, the announcer's role ("s", "l"
-- or ""), members (address+port, peer ID)...}.
local base, selfAddr, cell = ARGV[1], ARGV[2], ARGV[3]
local placed0 = ARGV[4] == '1'
local numWant, reserve = tonumber(ARGV[5]), tonumber(ARGV[6])
local roles = ARGV[7] == '1' and {'l'} or {'s', 'l'}
local rnd = tonumber(ARGV[8])
local prefixes = {}
for i = 9, #ARGV do prefixes[#prefixes + 1] = ARGV[i] end
local tiers = #prefixes + 1

local nS = redis.call('HLEN', KEYS[1])
local nL = redis.call('HLEN', KEYS[2])
local dl = tonumber(redis.call('GET', KEYS[3]) or '0') or 0
-- selfMember is the announcer's member in the cell sets, if it has one,
-- so that skipping it is one string comparison per member.
local selfRole, selfCell, selfMember = nil, nil, nil
local sv = redis.call('HGET', KEYS[1], selfAddr)
if sv then
  selfRole = 's'
else
  sv = redis.call('HGET', KEYS[2], selfAddr)
  if sv then selfRole = 'l' end
end
if sv then
  selfCell = string.sub(sv, 25)
  selfMember = selfAddr .. string.sub(sv, 1, 20)
end
local out = {nS, nL, dl, selfRole or ''}
local nout = 4
if numWant <= 0 then return out end

-- Park-Miller: exact in Lua's doubles.
local function random(n)
  rnd = (rnd * 16807) % 2147483647
  return rnd % n
end

-- A cell may be visited twice (by the reserve's walk, then a tier's), so
-- the members taken from each cell set are remembered: a second visit
-- draws that many more, and skips them.
local taken, takenIn = {}, {}
local function takeCell(r, c, want)
  local key = base .. r .. 'c:' .. c
  local before = takenIn[key] or 0
  local ms = redis.call('SRANDMEMBER', key, want + 1 + before)
  local n = 0
  for i = 1, #ms do
    if n >= want then break end
    local m = ms[i]
    if m ~= selfMember and not (before > 0 and taken[m]) then
      nout = nout + 1
      out[nout] = m
      taken[m] = true
      n = n + 1
    end
  end
  takenIn[key] = before + n
  return n
end

local avail, own = 0, 0
for _, r in ipairs(roles) do
  avail = avail + (r == 's' and nS or nL)
  if selfRole == r then avail = avail - 1 end
  if placed0 then
    own = own + redis.call('SCARD', base .. r .. 'c:' .. cell)
    if selfRole == r and selfCell == cell then own = own - 1 end
  end
end
local total = math.min(numWant, avail)
reserve = math.min(reserve, avail - own)
local y = math.min(own, total - reserve)
local outside = total - y
if placed0 then
  for _, r in ipairs(roles) do
    if y > 0 then y = y - takeCell(r, cell, y) end
  end
end
if outside <= 0 then return out end

-- rank is the number of cells of a role named below s.
local function rank(dir, s)
  return redis.call('ZLEXCOUNT', dir, '-', '(' .. s)
end
-- walk takes up to want peers of role r from the cells ranked [lo, hi)
-- less [holeLo, holeHi), from a random one round the run once. The cells
-- are named a batch at a time (each gives at least one peer, unless it
-- holds only the announcer or peers already taken), in one ZRANGE per
-- contiguous stretch of ranks.
local function walk(r, lo, hi, holeLo, holeHi, want)
  local size = (hi - lo) - (holeHi - holeLo)
  if size <= 0 then return want end
  local dir = base .. r .. 'd'
  local step = random(size)
  local left = size
  while want > 0 and left > 0 do
    local j = holeHi + step % size
    local stop = hi
    if j >= hi then
      j, stop = lo + (j - hi), holeLo
    end
    local k = math.min(stop - j, left, want)
    local cells = redis.call('ZRANGE', dir, j, j + k - 1)
    for i = 1, #cells do
      if want <= 0 then break end
      want = want - takeCell(r, cells[i], want)
    end
    if #cells < k then break end
    step, left = step + k, left - k
  end
  return want
end
-- holes[r] is the own cell's run in role r's directory.
local holes = {}
for _, r in ipairs(roles) do
  local dir = base .. r .. 'd'
  local lo = rank(dir, cell)
  local hi = lo
  if placed0 and redis.call('ZSCORE', dir, cell) then hi = lo + 1 end
  holes[r] = {lo, hi}
end

local want = outside
if tiers > 1 and outside > reserve then want = reserve end
local rest = outside - want
for _, r in ipairs(roles) do
  local dir = base .. r .. 'd'
  want = walk(r, 0, redis.call('ZCARD', dir), holes[r][1], holes[r][2], want)
end
rest = rest + want
for t = 1, tiers do
  if rest <= 0 then break end
  local p = prefixes[t]
  if t == tiers or p ~= '-' then
    for _, r in ipairs(roles) do
      local dir = base .. r .. 'd'
      local lo, hi = 0, redis.call('ZCARD', dir)
      if t < tiers then
        lo, hi = rank(dir, p), rank(dir, p .. '\255')
      end
      rest = walk(r, lo, hi, holes[r][1], holes[r][2], rest)
      holes[r] = {lo, hi}
    end
  end
end
return out
