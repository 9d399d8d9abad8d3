#!lua flags=no-writes,allow-cross-slot-keys
-- Sums the totals of the shards named by ARGV (hashes of sF, lF, wF): on
-- a Cluster the slots' totals that update scripts change (totals.go), of
-- a range of slots of one node, in one command instead of one per slot.
-- A slot's totals may be below zero (a peer a script stored, collection
-- removed: its change went to the totals of all): they are summed as
-- they are. Redis refuses keys of several slots declared
-- in KEYS, so they come as arguments, and the flag lets the script read
-- them; a key of a slot that is not (or no longer wholly) on this node is
-- an error, never a wrong sum.
--
-- Returns {w4, s4, l4, w6, s6, l6}.
local t = {0, 0, 0, 0, 0, 0}
for i = 1, #ARGV do
  local v = redis.call('HMGET', ARGV[i], 'w4', 's4', 'l4', 'w6', 's6', 'l6')
  for j = 1, 6 do
    local n = tonumber(v[j])
    if n then t[j] = t[j] + n end
  end
end
return t
