package redis

import "github.com/gomodule/redigo/redis"

// The Lua scripts. Each runs atomically in Redis, so a swarm and the
// totals in the stats hash always change together, whichever tracker
// instance sends the update, and counts cannot drift. They are sent with
// EVALSHA and fall back to EVAL when Redis does not know them (after a
// restart or a failover to a replica that never saw them).
//
// The shebang lines need Redis 7.0: they make Redis refuse a writing script
// up front when it is out of memory, instead of failing it half done, and
// let the read-only scripts run even then.
//
// Keys of one swarm (P is key_prefix, H the info hash in hex, F "4" or "6",
// A a peer's address and port: 4 or 16 address bytes, then the port
// big-endian):
//
//	P H:F:s  sorted set of seeders: member A+peer ID, score last seen (Unix s)
//	P H:F:l  sorted set of leechers, the same
//	P H:F:i  hash A → role ("s" or "l") + peer ID: finds a peer by address
//	P H:d    string, completed downloads
//	Pswarms  sorted set, member H, score a lower bound of the swarm's oldest last-seen
//	Pstats   hash, the totals: seeders:F, leechers:F, swarms:F
//	Pgc      string, held by the instance whose turn it is to collect
//
// The peer ID is part of the sorted sets' members so that the peers drawn
// for an announce come with their IDs in the same reply; the hash holds
// exactly one entry per member of the two sets, so it exists exactly when
// the family has peers.

// putScript stores a peer as a seeder or leecher, replacing its peer ID
// and refreshing its stamp.
//
// KEYS: 1 seeders, 2 leechers, 3 peer index, 4 downloads, 5 swarm index,
// 6 stats.
// ARGV: 1 address+port, 2 peer ID, 3 stamp, 4 role ("s" or "l"),
// 5 family ("4" or "6"), 6 "1" to count a download, 7 info hash (hex).
var putScript = redis.NewScript(6, `#!lua flags=no-cluster
local addr, role, fam = ARGV[1], ARGV[4], ARGV[5]
local member = addr .. ARGV[2]
local old = redis.call('HGET', KEYS[3], addr)
if old then
  local was = string.sub(old, 1, 1)
  local wasMember = addr .. string.sub(old, 2)
  if was ~= role or wasMember ~= member then
    redis.call('ZREM', was == 's' and KEYS[1] or KEYS[2], wasMember)
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
redis.call('HSET', KEYS[3], addr, role .. ARGV[2])
if ARGV[6] == '1' then
  redis.call('INCR', KEYS[4])
end
redis.call('ZADD', KEYS[5], 'NX', ARGV[3], ARGV[7])
return 0
`)

// deleteScript removes a peer. The swarm stays in the swarm index:
// collection drops it there once it finds the swarm empty.
//
// KEYS: 1 seeders, 2 leechers, 3 peer index, 4 stats.
// ARGV: 1 address+port, 2 family.
var deleteScript = redis.NewScript(4, `#!lua flags=no-cluster
local addr, fam = ARGV[1], ARGV[2]
local old = redis.call('HGET', KEYS[3], addr)
if not old then
  return 0
end
local was = string.sub(old, 1, 1)
redis.call('ZREM', was == 's' and KEYS[1] or KEYS[2], addr .. string.sub(old, 2))
redis.call('HDEL', KEYS[3], addr)
redis.call('HINCRBY', KEYS[4], (was == 's' and 'seeders:' or 'leechers:') .. fam, -1)
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('HINCRBY', KEYS[4], 'swarms:' .. fam, -1)
end
return 1
`)

// gcScript collects one bounded batch: the swarms of the index whose score
// (a lower bound of their oldest stamp) is before the cutoff, at most
// ARGV[3] of them and at most ARGV[4] peers removed, so that one call holds
// Redis for about a millisecond whatever the store's size. Each visited
// swarm is then re-scored with its true oldest stamp, or leaves the index
// when it has no peers left, so every call makes progress and fresh swarms
// are never visited. The per-swarm keys are derived from the index
// members, which is why the driver cannot run on Redis Cluster.
//
// KEYS: 1 swarm index, 2 stats. ARGV: 1 cutoff (stamps below it are
// stale), 2 key prefix, 3 swarm budget, 4 peer budget.
// Returns {swarms visited, peers removed}.
var gcScript = redis.NewScript(2, `#!lua flags=no-cluster
local cutoff = tonumber(ARGV[1])
local budget = tonumber(ARGV[4])
local swarms = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
local removed = 0
for _, h in ipairs(swarms) do
  if budget <= 0 then break end
  local oldest = nil
  for _, f in ipairs({'4', '6'}) do
    local base = ARGV[2] .. h .. ':' .. f .. ':'
    local s, l, ids = base .. 's', base .. 'l', base .. 'i'
    local alen = f == '4' and 6 or 18
    local had = redis.call('EXISTS', ids)
    for _, role in ipairs({{s, 'seeders:' .. f, 's'}, {l, 'leechers:' .. f, 'l'}}) do
      local key = role[1]
      if budget > 0 then
        local stale = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. cutoff, 'LIMIT', 0, budget)
        if #stale > 0 then
          local addrs = {}
          for i, m in ipairs(stale) do
            addrs[i] = string.sub(m, 1, alen)
          end
          -- With locality on, the index entry names the peer's cell.
          local entries = redis.call('HMGET', ids, unpack(addrs))
          local cells = {}
          for i, e in ipairs(entries) do
            if e and #e > 21 then
              local cell = string.sub(e, 22)
              redis.call('SREM', base .. role[3] .. 'c:' .. cell, stale[i])
              cells[cell] = true
            end
          end
          for cell in pairs(cells) do
            if redis.call('EXISTS', base .. role[3] .. 'c:' .. cell) == 0 then
              redis.call('ZREM', base .. role[3] .. 'd', cell)
            end
          end
          redis.call('ZREM', key, unpack(stale))
          redis.call('HDEL', ids, unpack(addrs))
          redis.call('HINCRBY', KEYS[2], role[2], -#stale)
          removed = removed + #stale
          budget = budget - #stale
        end
      end
      local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
      if #first == 2 then
        local t = tonumber(first[2])
        if oldest == nil or t < oldest then oldest = t end
      end
    end
    if had > 0 and redis.call('EXISTS', ids) == 0 then
      redis.call('HINCRBY', KEYS[2], 'swarms:' .. f, -1)
    end
  end
  if oldest == nil then
    redis.call('ZREM', KEYS[1], h)
  else
    redis.call('ZADD', KEYS[1], oldest, h)
  end
end
return {#swarms, removed}
`)
