package redis

import (
	"fmt"
	"math/rand/v2"

	"github.com/gomodule/redigo/redis"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// Locality in Redis. With locality on, each family of a swarm also keeps
// its peers by cell (the announcer's subnet, or rack-in-zone with a
// topology; see storage/locality), per role:
//
//	P H:F:sc:<cell>  set of the seeders of a cell: members as in P H:F:s
//	P H:F:lc:<cell>  the same for leechers
//	P H:F:sd         sorted set of the cells that have seeders, all scored
//	                 0, so ordered by name: the cells of one group at any
//	                 tier are a contiguous run (cell names join the
//	                 groups' names, farthest tier first, each ended by NUL)
//	P H:F:ld         the same for leechers
//
// and the peer index's value becomes role + peer ID + cell, so that an
// update or collection finds the cell a peer was stored under. An announce
// is one read-only script (selectScript) that takes the own cell's peers,
// then walks runs of cells from a random one: O(numwant) cells and peers,
// plus O(log cells) per run to find it. Every tracker sharing a Redis must
// run with the same locality settings; a change of them (on or off) needs
// a new key_prefix, since peers stored one way are not found the other.

// putLocalScript is putScript that also keeps the cell sets.
//
// KEYS as putScript. ARGV as putScript, then 8 the family's key base
// (P H:F:), 9 the peer's cell.
var putLocalScript = redis.NewScript(6, `#!lua flags=no-cluster
local addr, role, fam, base, cell = ARGV[1], ARGV[4], ARGV[5], ARGV[8], ARGV[9]
local member = addr .. ARGV[2]
local old = redis.call('HGET', KEYS[3], addr)
local inCell = false
if old then
  local was = string.sub(old, 1, 1)
  local wasMember = addr .. string.sub(old, 2, 21)
  local wasCell = string.sub(old, 22)
  if was ~= role or wasMember ~= member then
    redis.call('ZREM', was == 's' and KEYS[1] or KEYS[2], wasMember)
  end
  if was ~= role or wasMember ~= member or wasCell ~= cell then
    local ck = base .. was .. 'c:' .. wasCell
    redis.call('SREM', ck, wasMember)
    if redis.call('SCARD', ck) == 0 then
      redis.call('ZREM', base .. was .. 'd', wasCell)
    end
  else
    inCell = true
  end
  if was ~= role then
    redis.call('HINCRBY', KEYS[6], (was == 's' and 'seeders:' or 'leechers:') .. fam, -1)
    redis.call('HINCRBY', KEYS[6], (role == 's' and 'seeders:' or 'leechers:') .. fam, 1)
  end
else
  if redis.call('EXISTS', KEYS[3]) == 0 then
    redis.call('HINCRBY', KEYS[6], 'swarms:' .. fam, 1)
  end
  redis.call('HINCRBY', KEYS[6], (role == 's' and 'seeders:' or 'leechers:') .. fam, 1)
end
redis.call('ZADD', role == 's' and KEYS[1] or KEYS[2], ARGV[3], member)
if not inCell then
  redis.call('SADD', base .. role .. 'c:' .. cell, member)
  redis.call('ZADD', base .. role .. 'd', 0, cell)
  redis.call('HSET', KEYS[3], addr, role .. ARGV[2] .. cell)
end
if ARGV[6] == '1' then
  redis.call('INCR', KEYS[4])
end
redis.call('ZADD', KEYS[5], 'NX', ARGV[3], ARGV[7])
return 0
`)

// deleteLocalScript is deleteScript that also keeps the cell sets.
//
// KEYS: 1 seeders, 2 leechers, 3 peer index, 4 stats.
// ARGV: 1 address+port, 2 family, 3 the family's key base.
var deleteLocalScript = redis.NewScript(4, `#!lua flags=no-cluster
local addr, fam, base = ARGV[1], ARGV[2], ARGV[3]
local old = redis.call('HGET', KEYS[3], addr)
if not old then
  return 0
end
local was = string.sub(old, 1, 1)
local wasMember = addr .. string.sub(old, 2, 21)
redis.call('ZREM', was == 's' and KEYS[1] or KEYS[2], wasMember)
redis.call('HDEL', KEYS[3], addr)
redis.call('HINCRBY', KEYS[4], (was == 's' and 'seeders:' or 'leechers:') .. fam, -1)
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('HINCRBY', KEYS[4], 'swarms:' .. fam, -1)
end
if #old > 21 then
  local cell = string.sub(old, 22)
  local ck = base .. was .. 'c:' .. cell
  redis.call('SREM', ck, wasMember)
  if redis.call('SCARD', ck) == 0 then
    redis.call('ZREM', base .. was .. 'd', cell)
  end
end
return 1
`)

// selectScript answers an announce with locality on, in one round trip:
// the counts, the announcer's entry and the peers. It only reads, so it
// runs on a Redis that is out of memory as well. The order of the answer
// is that of the memory driver (see announceLocal there): the own cell,
// leaving room for the reserve; the reserve, from anywhere outside the own
// cell; then, if the own cell ran short, the nearest tiers out. Each part
// is seeders first for a leecher, leechers only for a seeder.
//
// KEYS: 1 seeders, 2 leechers, 3 peer index, 4 downloads.
// ARGV: 1 the family's key base, 2 the announcer's address+port, 3 its
// cell, 4 "1" if the cell is a group at tier 0, 5 numwant, 6 the reserve,
// 7 "1" for a seeder, 8 a random seed in [1, 2^31-2], 9… the announcer's
// tier prefixes for tiers 1 and up ("-" where it is in no group).
// Returns {seeders, leechers, downloads, the announcer's index entry or
// "", members…}.
var selectScript = redis.NewScript(4, `#!lua flags=no-writes,no-cluster
local base, selfAddr, cell = ARGV[1], ARGV[2], ARGV[3]
local placed0 = ARGV[4] == '1'
local numWant, reserve = tonumber(ARGV[5]), tonumber(ARGV[6])
local roles = ARGV[7] == '1' and {'l'} or {'s', 'l'}
local rnd = tonumber(ARGV[8])
local prefixes = {}
for i = 9, #ARGV do prefixes[#prefixes + 1] = ARGV[i] end
local tiers = #prefixes + 1

local nS = redis.call('ZCARD', KEYS[1])
local nL = redis.call('ZCARD', KEYS[2])
local dl = tonumber(redis.call('GET', KEYS[4]) or '0') or 0
local sv = redis.call('HGET', KEYS[3], selfAddr)
-- selfMember is the announcer's member in the sets, if it has one, so
-- that skipping it is one string comparison per member.
local selfRole, selfCell, selfMember = nil, nil, nil
if sv then
  selfRole, selfCell = string.sub(sv, 1, 1), string.sub(sv, 22)
  selfMember = selfAddr .. string.sub(sv, 2, 21)
else
  sv = ''
end
local out = {nS, nL, dl, sv}
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
`)

// The daemon calls Reload on SIGUSR1 and SIGHUP when a store has it.
var _ storage.Reloader = (*PeerStore)(nil)

// Reload reads the locality topology file again; peers move to their new
// cells as they next announce. Without locality, or with prefix grouping,
// it does nothing. A file that does not load leaves the running topology
// in place.
func (s *PeerStore) Reload() error {
	lc := s.cfg.Locality
	if !lc.Enabled || lc.TopologyFile == "" {
		return nil
	}
	cls, err := locality.Load(lc)
	if err != nil {
		return fmt.Errorf("storage/redis: reload: %w", err)
	}
	s.cls.Store(cls)
	return nil
}

func (s *PeerStore) putLocal(op string, cls *locality.Classifier, k swarmKeys, m []byte, p bittorrent.Peer, af bittorrent.AddressFamily, role, count string, do func(string, func(redis.Conn) (interface{}, error)) (interface{}, error)) error {
	cell := cls.Cell(cls.Key(p.AddrPort.Addr()))
	_, err := do(op, func(c redis.Conn) (interface{}, error) {
		return putLocalScript.Do(c, k.seeders, k.leechers, k.ids, k.downloads, s.indexKey, s.statsKey,
			m, p.ID[:], clock.Unix(), role, familyTag[af], count, k.hexIH, k.fam, cell)
	})
	return err
}

// announceLocal is AnnouncePeers with locality on: one read-only script.
func (s *PeerStore) announceLocal(dst []bittorrent.Peer, cls *locality.Classifier, k swarmKeys, m []byte, announcer bittorrent.Peer, seeder bool, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	ck := cls.Key(announcer.AddrPort.Addr())
	args := make([]interface{}, 0, 12+cls.Tiers())
	args = append(args, k.seeders, k.leechers, k.ids, k.downloads,
		k.fam, m, cls.Cell(ck), flag(cls.Placed(ck, 0)), numWant, cls.Reserve(numWant), flag(seeder),
		1+rand.Int64N(2147483646))
	for t := 1; t < cls.Tiers(); t++ {
		if cls.Placed(ck, t) {
			args = append(args, cls.TierPrefix(ck, t))
		} else {
			args = append(args, "-")
		}
	}
	reply, err := s.do("announce", func(c redis.Conn) (interface{}, error) {
		return redis.Values(selectScript.Do(c, args...))
	})
	if err != nil {
		return dst, storage.Counts{}, storage.Absent, err
	}
	v := reply.([]interface{})
	if len(v) < 4 {
		return dst, storage.Counts{}, storage.Absent, fmt.Errorf("storage/redis: announce: unexpected reply of %d values", len(v))
	}
	counts := storage.Counts{Seeders: asUint32(v[0]), Leechers: asUint32(v[1]), Downloads: asUint32(v[2])}
	role := storage.Absent
	if self := asBytes(v[3]); len(self) > 0 {
		role = storage.Leecher
		if self[0] == 's' {
			role = storage.Seeder
		}
	}
	want := numWant
	return appendPeers(dst, v[4:], m, &want), counts, role, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
