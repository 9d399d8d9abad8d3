#!lua
-- An announce (or a bare update) of one address family of a swarm that
-- may be in the shared form (bucket.go): a swarm of one peer is a field
-- of a bucket hash shared by many swarms, not hashes of its own.
--
-- KEYS: 1 the bucket (info hash -> address, value, role), 2 the swarm's
-- seeders, 3 its leechers (address -> value), 4 its downloads, and 5 the
-- totals of its shard when the script is to change them itself (an
-- update alone: an announce returns the changes, which the tracker adds).
-- ARGV: 1 the info hash (20 raw bytes), 2 the address, 3 the value (the
-- peer ID if kept, then last seen as 4 bytes big-endian), 4 the update:
-- s seeder, l leecher, g graduate (seeder, counts a download), d delete,
-- n none (make the swarm's form right, as after a plain announce that
-- met a peer in the bucket), 5 how many peers to read of each role (0:
-- none), 6 v to read them with their values, 7 1 for a seeder (who reads
-- leechers alone).
--
-- A bucket value is the address, the stored value, then the role (s or
-- l): the address is 6 or 18 bytes, the family's (one bucket a family).
-- Forms: the bucket holds the swarm's only peer and its hashes are empty,
-- or the bucket holds nothing of it. A plain announce (plain.go) may
-- leave both for a moment (it wrote the hashes while a peer was in the
-- bucket); this script first makes that right: the bucket's peer moves
-- into its role's hash, unless that address is there already.
--
-- Returns {role before (0 absent, 1 seeder, 2 leecher), seeders before,
-- leechers before, downloads, seeder change, leecher change, swarm
-- change (1 appears, -1 empties), peers after, then the peer reads in the
-- plain path's order (seeders unless a seeder, leechers): each an array
-- of addresses, with their values when asked}.
local B, S, L, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local ih, a, v, u = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local alen = #a
local dl = redis.call('GET', D) or 0
local cur = redis.call('HGET', B, ih)
local ns, nl = redis.call('HLEN', S), redis.call('HLEN', L)
local function split(c)
  return string.sub(c, 1, alen), string.sub(c, alen + 1, -2), string.sub(c, -1)
end
if cur and ns + nl > 0 then
  local oa, ov, orole = split(cur)
  if redis.call('HEXISTS', S, oa) == 0 and redis.call('HEXISTS', L, oa) == 0 then
    if orole == 's' then
      redis.call('HSET', S, oa, ov)
      ns = ns + 1
    else
      redis.call('HSET', L, oa, ov)
      nl = nl + 1
    end
  end
  redis.call('HDEL', B, ih)
  cur = false
end
-- Before the update, in a form that is right.
local cs, cl, was = ns, nl, 0
local oa, ov, orole
if cur then
  oa, ov, orole = split(cur)
  if orole == 's' then cs = cs + 1 else cl = cl + 1 end
  if oa == a then was = orole == 's' and 1 or 2 end
end
local role = (u == 'l') and 'l' or 's'
-- After the update: ns, nl the peers of the hashes, now the bucket value.
local now = cur
local function count(r, d)
  if r == 's' then ns = ns + d else nl = nl + d end
end
if u == 'n' then
  -- nothing more
elseif cur then
  if oa == a then
    if u == 'd' then
      redis.call('HDEL', B, ih)
      now = false
    else
      now = a .. v .. role
      redis.call('HSET', B, ih, now)
    end
  elseif u ~= 'd' then
    -- A second peer: both into the swarm's hashes.
    redis.call('HSET', orole == 's' and S or L, oa, ov)
    redis.call('HDEL', B, ih)
    redis.call('HSET', role == 's' and S or L, a, v)
    count(orole, 1)
    count(role, 1)
    now = false
  end
elseif u == 'd' then
  if redis.call('HDEL', S, a) == 1 then
    was, ns = 1, ns - 1
  elseif redis.call('HDEL', L, a) == 1 then
    was, nl = 2, nl - 1
  end
elseif ns + nl == 0 then
  now = a .. v .. role
  redis.call('HSET', B, ih, now)
else
  local own, other, r2 = S, L, 'l'
  if role == 'l' then own, other, r2 = L, S, 's' end
  if redis.call('HSET', own, a, v) == 0 then
    was = role == 's' and 1 or 2
  else
    count(role, 1)
    if redis.call('HDEL', other, a) == 1 then
      was = role == 's' and 2 or 1
      count(r2, -1)
    end
  end
end
if u == 'g' then
  redis.call('INCR', D)
end
-- A swarm left with one peer in its hashes goes back to the bucket.
if ns + nl == 1 then
  local key, r = S, 's'
  if nl == 1 then key, r = L, 'l' end
  local f = redis.call('HGETALL', key)
  redis.call('DEL', key)
  now = f[1] .. f[2] .. r
  redis.call('HSET', B, ih, now)
  ns, nl = 0, 0
end
local as, al = ns, nl
local reads = {}
local want = tonumber(ARGV[5])
if now then
  oa, ov, orole = split(now)
  if orole == 's' then as = as + 1 else al = al + 1 end
end
for r = 1, 2 do
  if r == 2 or ARGV[7] ~= '1' then
    local got = {}
    if want > 0 then
      if now then
        if (orole == 's') == (r == 1) then
          got[1] = oa
          if ARGV[6] == 'v' then got[2] = ov end
        end
      elseif ARGV[6] == 'v' then
        got = redis.call('HRANDFIELD', r == 1 and S or L, want, 'WITHVALUES')
      else
        got = redis.call('HRANDFIELD', r == 1 and S or L, want)
      end
    end
    reads[#reads + 1] = got
  end
end
local dw = 0
if cs + cl == 0 and as + al > 0 then dw = 1 end
if cs + cl > 0 and as + al == 0 then dw = -1 end
if KEYS[5] then
  local fam = alen == 6 and '4' or '6'
  if as ~= cs then redis.call('HINCRBY', KEYS[5], 's' .. fam, as - cs) end
  if al ~= cl then redis.call('HINCRBY', KEYS[5], 'l' .. fam, al - cl) end
  if dw ~= 0 then redis.call('HINCRBY', KEYS[5], 'w' .. fam, dw) end
end
return {was, cs, cl, tonumber(dl), as - cs, al - cl, dw, as + al, reads[1] or {}, reads[2] or {}}
