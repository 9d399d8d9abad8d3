package redis

import (
	"cmp"
	"context"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

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
// Between two Stats a tracker's totals lag by its own changes.
//
// Two things make such totals drift, and nothing on the announce's path
// can stop them without costing Redis more per announce: a tracker killed
// without Stop loses the changes it had not sent, and the HLENs, read
// before the update's MULTI, can miss another tracker's update of the
// same swarm in between (two trackers filling or emptying one swarm at
// once: the swarm count off by one; TestRacingTrackersTotals). So the
// periodic collection recounts: the tracker whose turn it is to collect a
// server (gc.go) reads the HLENs of each swarm as it walks it, and at the
// end of the walk adds to each shard's totals the difference between what
// it counted there and what they said when it began. A change made while
// it walks is counted by the walk or not, depending on whether the walk
// had passed its swarm yet, and its change to the totals arrives either
// way: the recount is exact when no swarm changes during its walk, and
// otherwise errs by at most the changes made meanwhile, which the next
// recount corrects in its turn (the error does not build up).
//
// The changes the live trackers hold unsent when a recount reads the
// totals were made before, so its walk counts them: they must not reach
// the totals as well, and those made after must. So a recount begins at
// a cut announced ahead (the key Pcut, Unix ms, recountLead before it):
// every tracker reads it with its Stats, and at the cut drops what it
// holds unsent (dropCut), sending nothing in the last cutMargin before
// it; the recount reads the totals at the cut. The changes made after
// the cut are sent as usual. Trackers sharing a Redis are assumed to
// report about as often as each other (the lead is the recounting
// tracker's two reporting intervals), and their clocks to agree within
// cutMargin (NTP).

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
	if s.holdForCut() {
		return nil // counted by the recount at the cut
	}
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
	if !ok || s.slotPending == nil || s.holdForCut() {
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

// cutMargin is how long before a recount's cut a tracker stops sending
// its pending changes (they would reach Redis after the recount read the
// totals, and be counted twice), and the clocks' agreement assumed.
const cutMargin = 100 * time.Millisecond

// totalsCut is the recount cut a store knows of: at is its time (Unix
// ns; 0: none), when the store drops its unsent changes.
type totalsCut struct {
	mu sync.Mutex
	at atomic.Int64
}

// cutKey names the announced cut.
func (s *PeerStore) cutKey() string { return s.cfg.KeyPrefix + "cut" }

// recountLead is how long before its cut a recount is announced: long
// enough for every tracker to read it (at its next Stats) before it
// passes, if they report as often as this one does.
func (s *PeerStore) recountLead() time.Duration {
	return 2*s.cfg.PrometheusReportingInterval + cutMargin
}

// holdForCut reports whether the store must not send its pending changes
// now: a cut is near or past and they are not dropped yet.
func (s *PeerStore) holdForCut() bool {
	at := s.cut.at.Load()
	return at != 0 && time.Now().UnixNano() >= at-int64(cutMargin)
}

// learnCut takes on the cut read from Redis (Unix ms; 0: none): if it is
// still to come and new, the store drops its unsent changes then.
func (s *PeerStore) learnCut(ms int64) {
	at := ms * int64(time.Millisecond)
	if at <= time.Now().UnixNano() {
		return
	}
	s.cut.mu.Lock()
	defer s.cut.mu.Unlock()
	if s.cut.at.Load() == at {
		return
	}
	s.cut.at.Store(at)
	time.AfterFunc(time.Until(time.Unix(0, at)), func() { s.dropCut(at) })
}

// dropCut drops the store's unsent changes at the cut at: the recount
// that reads the totals then counts them in the swarms.
func (s *PeerStore) dropCut(at int64) {
	s.cut.mu.Lock()
	defer s.cut.mu.Unlock()
	if s.cut.at.Load() != at {
		return
	}
	for i := range s.pending {
		s.pending[i].Store(0)
	}
	if p := s.slotPending; p != nil {
		for w := range p.dirty {
			set := p.dirty[w].Swap(0)
			for set != 0 {
				sl := w*64 + bits.TrailingZeros64(set)
				set &= set - 1
				for i := range p.slots[sl] {
					p.slots[sl][i].Store(0)
				}
			}
		}
	}
	s.cut.at.Store(0)
}

// readCut reads the announced cut, as every Stats does.
func (s *PeerStore) readCut(ctx context.Context, c redis.Cmdable) {
	if ms, err := c.Get(ctx, s.cutKey()).Int64(); err == nil {
		s.learnCut(ms)
	}
}

// recount is what a collection counted in the swarms it walked, by
// shard (its totals' key), indexed as totalsFields.
type recount map[string]*[6]int64

// countSwarm adds to rc a swarm of the shard whose totals are totals,
// whose hashes (IPv4 seeders, leechers, IPv6 seeders, leechers) hold hl
// peers.
func (rc recount) countSwarm(totals string, hl [4]int64) {
	c := rc[totals]
	if c == nil {
		c = new([6]int64)
		rc[totals] = c
	}
	for af := range 2 {
		if hl[2*af]+hl[2*af+1] > 0 {
			c[3*af]++
		}
		c[3*af+1] += hl[2*af]
		c[3*af+2] += hl[2*af+1]
	}
}

// swarmCount is a swarm's HLENs queued for a recount.
type swarmCount struct {
	totals string
	by     int
	hlens  [4]*redis.IntCmd
}

// queueCount queues the HLENs of the four peer hashes of the swarm whose
// keys are k (native or WebSocket) into pipe; the walk met it by hash
// number by (scan.go).
func queueCount(ctx context.Context, pipe redis.Pipeliner, k *swarmKeys, by int) swarmCount {
	c := swarmCount{totals: k.shard.totals, by: by}
	for af := range 2 {
		for r := range 2 {
			c.hlens[2*af+r] = pipe.HLen(ctx, k.roles[af][r])
		}
	}
	return c
}

// addTo adds the swarm to rc, once its HLENs are read. The walk meets a
// swarm by each of its hashes: as gc.lua does, only the visit by the
// first of them that exists counts it.
func (c swarmCount) addTo(rc recount) error {
	var hl [4]int64
	for i, h := range c.hlens {
		if err := h.Err(); err != nil {
			return err
		}
		hl[i] = h.Val()
	}
	for i := 0; i < c.by-1; i++ {
		if hl[i] > 0 {
			return nil // counted when the walk meets that hash
		}
	}
	rc.countSwarm(c.totals, hl)
	return nil
}

// recountStart begins the recount of the servers that serve the slots
// of mine (one range per server): it announces a cut, or joins the one
// another tracker announced for this round, waits for it, and then reads
// the totals of each server's shards (the one shard outside Cluster; each
// of a master's slots with a Cluster), which it returns by server.
func (s *PeerStore) recountStart(ctx context.Context, mine []slotRange) ([]map[string][6]int64, error) {
	var at int64
	err := s.call(ctx, "gc", func(ctx context.Context) error {
		// The cut expires once past, so that the next round's is new;
		// one past but not expired yet is replaced.
		ms := time.Now().Add(s.recountLead()).UnixMilli()
		pipe := s.client.Pipeline()
		pipe.SetNX(ctx, s.cutKey(), ms, s.recountLead()+cutMargin)
		cut := pipe.Get(ctx, s.cutKey())
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		if at, _ = cut.Int64(); at < time.Now().Add(cutMargin).UnixMilli() {
			at = ms
			return s.client.Set(ctx, s.cutKey(), ms, s.recountLead()+cutMargin).Err()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.learnCut(at)
	select {
	case <-s.done:
		return nil, s.fail("gc", errStopped)
	case <-time.After(time.Until(time.UnixMilli(at))):
	}
	shards := make([][]shard, len(mine))
	if s.slotShards == nil {
		shards[0] = []shard{s.oneShard}
	} else {
		err := s.call(ctx, "gc", func(ctx context.Context) error {
			ranges, err := s.slotRanges(ctx)
			for i, r := range mine {
				for _, o := range ranges {
					if o.addr == r.addr {
						shards[i] = append(shards[i], s.slotShards[o.first:o.last+1]...)
					}
				}
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	bases := make([]map[string][6]int64, len(mine))
	err = s.call(ctx, "gc", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		cmds := make([][]*redis.SliceCmd, len(mine))
		for i := range mine {
			for _, sh := range shards[i] {
				cmds[i] = append(cmds[i], pipe.HMGet(ctx, sh.totals, totalsNames[:]...))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i := range mine {
			bases[i] = make(map[string][6]int64, len(shards[i]))
			for j, c := range cmds[i] {
				if err := c.Err(); err != nil {
					return err
				}
				bases[i][shards[i][j].totals] = totalsOf(c.Val())
			}
		}
		return nil
	})
	return bases, err
}

// recountEnd adds to each shard of base the difference between what the
// walk counted there (rc) and its totals when the walk began (base).
func (s *PeerStore) recountEnd(ctx context.Context, base map[string][6]int64, rc recount) error {
	return s.call(ctx, "gc", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		for totals, b := range base {
			var counted [6]int64
			if c := rc[totals]; c != nil {
				counted = *c
			}
			for i := range b {
				if d := counted[i] - b[i]; d != 0 {
					queueOnce(ctx, pipe, redis.NewIntCmd(ctx, "hincrby", totals, totalsNames[i], d))
				}
			}
		}
		if pipe.Len() == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// totalsNames are totalsFields as strings.
var totalsNames = [6]string{"w4", "s4", "l4", "w6", "s6", "l6"}

// totalsOf reads an HMGET of totalsNames.
func totalsOf(v []interface{}) (t [6]int64) {
	for i := range t {
		if i < len(v) {
			t[i] = asInt(v[i])
		}
	}
	return t
}
