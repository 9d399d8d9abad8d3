package redis

import (
	"cmp"
	"context"
	"math/bits"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// The shard totals (P{T}n: seeders, leechers and swarms of each family)
// back the gauges and the operator API. The scripts change them with the
// peers, atomically. A native announce is no script (plainUpdate): its
// plain commands' replies say exactly what changed (HSET: a new field;
// HDEL: a field removed; the HLENs read just before: whether the family
// of the swarm was empty), and the tracker adds that to pendingTotals,
// which reach Redis with the next Stats (every
// prometheus_reporting_interval; outside Cluster in the same round trip
// as the read) and at Stop: one shard outside Cluster; with a Cluster
// each slot's changes (slotPending) to that slot's totals, on its master.
// Between two Stats a tracker's totals lag by its own changes; a tracker
// killed without Stop loses those of its last interval (the gauges stay
// off by them).

// pendingTotals are the changes to the one shard's totals not yet sent,
// indexed as totalsFields.
type pendingTotals [6]atomic.Int64

// totalsFields name the fields of pendingTotals, in its order.
var totalsFields = [6]*string{&swarmsField[0], &seedersField[0], &leechersField[0], &swarmsField[1], &seedersField[1], &leechersField[1]}

// add records one announce's changes to family af: seeders ds, leechers
// dl, swarms dw.
func (p *pendingTotals) add(af bittorrent.AddressFamily, ds, dl, dw int64) {
	i := 3 * int(af)
	if dw != 0 {
		p[i].Add(dw)
	}
	if ds != 0 {
		p[i+1].Add(ds)
	}
	if dl != 0 {
		p[i+2].Add(dl)
	}
}

// queued are the pending changes queue took, and their HINCRBYs.
type queued struct {
	taken [6]int64
	cmds  [6]*redis.IntCmd
}

// queue takes the pending changes and queues their HINCRBYs on totals
// into pipe.
func (p *pendingTotals) queue(ctx context.Context, pipe redis.Pipeliner, totals string) (q queued) {
	for i := range p {
		if q.taken[i] = p[i].Swap(0); q.taken[i] != 0 {
			q.cmds[i] = pipe.HIncrBy(ctx, totals, *totalsFields[i], q.taken[i])
		}
	}
	return q
}

// settle gives back the changes of q whose HINCRBY failed (Redis out of
// memory refuses them; so does a broken connection), once q's pipeline
// ran. One whose reply was lost (a timeout) may have been applied all
// the same; giving it back then counts it twice, which errs as much as
// losing it would, the other way.
func (p *pendingTotals) settle(q queued) {
	for i, c := range q.cmds {
		if c != nil && c.Err() != nil {
			p[i].Add(q.taken[i])
		}
	}
}

// flushTotals sends the pending changes in a round trip of their own: at
// Stop, once the loops are stopped (so not through the breaker, which
// then refuses).
func (s *PeerStore) flushTotals(ctx context.Context) error {
	if s.slotPending != nil {
		return s.flushSlots(ctx)
	}
	pipe := s.client.Pipeline()
	q := s.pending.queue(ctx, pipe, s.oneShard.totals)
	if pipe.Len() == 0 {
		return nil
	}
	_, err := pipe.Exec(ctx)
	s.pending.settle(q)
	return err
}

// plainDeltas returns the changes to the totals of an update applied by
// plain commands: was is the family's native peers before (both roles),
// added 1 if the HSET stored a new field (a put), and removed the fields
// the HDELs removed from the seeders (rs) and the leechers (rl).
func plainDeltas(was int64, u storage.Update, added, rs, rl int64) (ds, dl, dw int64) {
	ds, dl = -rs, -rl
	if u != storage.UpdateDelete {
		if u.Seeder() {
			ds += added
		} else {
			dl += added
		}
	}
	now := was + ds + dl
	switch {
	case was == 0 && now > 0:
		dw = 1
	case was > 0 && now <= 0:
		dw = -1
	}
	return ds, dl, dw
}

// slotPending are a Cluster's pending changes, by hash slot: each slot's
// totals (P{T}n) are on the master of the slot, and collection (gc.lua)
// takes its removals from the same slot's totals, so that no slot's
// totals go below zero. dirty marks the slots with changes (a bit per
// slot), so that a flush reads those alone.
type slotPending struct {
	dirty [16384 / 64]atomic.Uint64
	slots [16384]pendingTotals
}

// add records one announce's changes to the totals of slot sl.
func (p *slotPending) add(sl int, af bittorrent.AddressFamily, ds, dl, dw int64) {
	if ds == 0 && dl == 0 && dw == 0 {
		return
	}
	p.slots[sl].add(af, ds, dl, dw)
	// After the changes: a flush that takes the bit takes them too, or
	// leaves the bit set for the next one.
	p.dirty[sl/64].Or(1 << (sl % 64))
}

// addPending records the changes to the totals of an update of the swarm
// whose keys are k.
func (s *PeerStore) addPending(k *swarmKeys, af bittorrent.AddressFamily, ds, dl, dw int64) {
	if s.slotPending != nil {
		s.slotPending.add(k.shard.slot, af, ds, dl, dw)
		return
	}
	s.pending.add(af, ds, dl, dw)
}

// flushSlots sends a Cluster's pending changes: each slot's HINCRBYs to
// the master of the slot, one pipeline per master, through that master's
// own client, which neither follows a redirection nor retries. A change
// refused there (the slot moved since the map was read; out of memory; a
// broken connection) is kept for the next flush, as settle does.
func (s *PeerStore) flushSlots(ctx context.Context) error {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok || s.slotPending == nil {
		return nil
	}
	type slotQueued struct {
		sl int
		q  queued
	}
	pipes := map[*redis.Client]redis.Pipeliner{}
	var all []slotQueued
	var first error
	p := s.slotPending
	for w := range p.dirty {
		set := p.dirty[w].Swap(0)
		for set != 0 {
			sl := w*64 + bits.TrailingZeros64(set)
			set &= set - 1
			master, err := cc.MasterForKey(ctx, s.slotShards[sl].totals)
			if err != nil {
				p.dirty[sl/64].Or(1 << (sl % 64))
				first = cmp.Or(first, err)
				continue
			}
			pipe := pipes[master]
			if pipe == nil {
				pipe = master.Pipeline()
				pipes[master] = pipe
			}
			all = append(all, slotQueued{sl, p.slots[sl].queue(ctx, pipe, s.slotShards[sl].totals)})
		}
	}
	for _, pipe := range pipes {
		if _, err := pipe.Exec(ctx); err != nil {
			first = cmp.Or(first, err)
		}
	}
	for _, a := range all {
		for i, c := range a.q.cmds {
			if c != nil && c.Err() != nil {
				p.slots[a.sl][i].Add(a.q.taken[i])
				p.dirty[a.sl/64].Or(1 << (a.sl % 64))
			}
		}
	}
	return first
}
