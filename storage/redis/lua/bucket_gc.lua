#!lua
-- Collects a bucket of the shared form (bucket.go): removes the peers
-- last seen before the cutoff, and counts what it held for the recount.
--
-- KEYS: 1 the bucket (info hash -> address, stored value, role).
-- ARGV: 1 cutoff (Unix seconds), 2 the key prefix, 3 the family (4 or
-- 6), 4 the length of an address of that family.
-- Returns {peers removed, seeders, leechers, swarms (these three as they
-- were before), then the changes to the family's totals: seeders,
-- leechers, swarms}, which the tracker sends with its own (totals.go).
--
-- The swarms' own hashes are named from the field (a single Redis: the
-- bucket form is off on a Cluster). A peer whose swarm's hashes hold its
-- address too (a plain announce wrote them and did not finish) is
-- dropped from the bucket: the hashes have the newer value.
local all = redis.call('HGETALL', KEYS[1])
local cutoff, fam, alen = tonumber(ARGV[1]), ARGV[3], tonumber(ARGV[4])
local removed, s, l, w = 0, 0, 0, 0
local ds, dl, dw = 0, 0, 0
local function hex(ch) return string.format('%02x', string.byte(ch)) end
for i = 1, #all, 2 do
  local ih, c = all[i], all[i + 1]
  local a, role = string.sub(c, 1, alen), string.sub(c, -1)
  local base = ARGV[2] .. '{' .. (string.gsub(ih, '.', hex)) .. '}' .. fam
  local S, L = base .. 's', base .. 'l'
  local own = redis.call('EXISTS', S, L)
  if own > 0 and (redis.call('HEXISTS', S, a) == 1 or redis.call('HEXISTS', L, a) == 1) then
    redis.call('HDEL', KEYS[1], ih)
  else
    if role == 's' then s = s + 1 else l = l + 1 end
    if own == 0 then w = w + 1 end
    if struct.unpack('>I4', c, #c - 4) < cutoff then
      redis.call('HDEL', KEYS[1], ih)
      if role == 's' then ds = ds - 1 else dl = dl - 1 end
      if own == 0 then dw = dw - 1 end
      removed = removed + 1
    end
  end
end
return {removed, s, l, w, ds, dl, dw}
