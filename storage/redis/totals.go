package redis

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// The totals (Pn: seeders, leechers and swarms of each family) back the
// gauges and the operator API: one hash on every topology, a Cluster
// included, so that Stats reads one key (and the recount's cut) in one
// round trip, whatever the number of hash slots. A native announce is no
// script (plainUpdate): its plain commands' replies say exactly what
// changed (HSET: a new field; HDEL: a field removed; the HLENs read just
// before: whether the family of the swarm was empty), and collection's
// script (gc.lua) returns what it removed; the tracker adds both to
// pendingTotals, which reach Redis with the next Stats (every
// prometheus_reporting_interval, in the same round trip as the read) and
// at Stop. Between two Stats a tracker's totals lag by its own changes.
//
// The update scripts (locality, WebSocket peers, the storage interface's
// Put/Delete) change totals atomically with the swarm: outside Cluster
// Pn, on a Cluster the totals of the swarm's slot (P{T}n), a script
// reaching only keys of one slot. The first such script a tracker runs
// on a Cluster sets the marker Psn, and from then on every tracker's
// Stats adds the slots' totals to Pn (stats.lua, one script per master:
// 12-18 ms of each master per call); a Cluster whose swarms only
// announces and collection change never reads them.
//
// Two things make such totals drift, and nothing on the announce's path
// can stop them without costing Redis more per announce: a tracker killed
// without Stop loses the changes it had not sent, and the HLENs, read
// before the update's MULTI, can miss another tracker's update of the
// same swarm in between (two trackers filling or emptying one swarm at
// once: the swarm count off by one; TestRacingTrackersTotals). So the
// periodic collection recounts: the trackers whose turn it is to collect
// the servers (gc.go; one per master, a round) read the HLENs of each
// swarm as they walk it, add what they counted on each server to the
// round's tally (Pr<cut>), and the one that completes the tally (every
// server of the round counted) adds to Pn the difference between the
// tally and the totals when the round began. A change made while the
// servers are walked is counted by the walk or not, depending on whether
// the walk had passed its swarm yet, and its change to the totals
// arrives either way: the recount is exact when no swarm changes during
// the walks, and otherwise errs by at most the changes made meanwhile,
// which the next recount corrects in its turn (the error does not build
// up). A round whose walk of a server fails adds nothing; the next one
// recounts.
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

// pendingTotals are the changes to the totals (Pn) not yet sent, indexed
// as totalsFields.
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
			q.cmds[i] = redis.NewIntCmd(ctx, "hincrby", totals, *totalsFields[i], q.taken[i])
			queueOnce(ctx, pipe, q.cmds[i]) // not sent again: applied twice
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
	s.cut.at.Store(0)
}

// readCut reads the announced cut, as every Stats does.
func (s *PeerStore) readCut(ctx context.Context, c redis.Cmdable) {
	if ms, err := c.Get(ctx, s.cutKey()).Int64(); err == nil {
		s.learnCut(ms)
	}
}

// recount is what a collection counted in the swarms it walked on one
// server, indexed as totalsFields.
type recount [6]int64

// countSwarm adds to rc a swarm whose hashes (IPv4 seeders, leechers,
// IPv6 seeders, leechers) hold hl peers.
func (rc *recount) countSwarm(hl [4]int64) {
	for af := range 2 {
		if hl[2*af]+hl[2*af+1] > 0 {
			rc[3*af]++
		}
		rc[3*af+1] += hl[2*af]
		rc[3*af+2] += hl[2*af+1]
	}
}

// swarmCount is a swarm's HLENs queued for a recount.
type swarmCount struct {
	by    int
	hlens [4]*redis.IntCmd
}

// queueCount queues the HLENs of the four peer hashes of the swarm whose
// keys are k (native or WebSocket) into pipe; the walk met it by hash
// number by (scan.go).
func queueCount(ctx context.Context, pipe redis.Pipeliner, k *swarmKeys, by int) swarmCount {
	c := swarmCount{by: by}
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
func (c swarmCount) addTo(rc *recount) error {
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
	rc.countSwarm(hl)
	return nil
}

// recountStart begins a round's recount: it announces a cut, or joins the
// one another tracker announced for this round, waits for it, and then
// reads the totals, which it returns with the cut (Unix ms).
func (s *PeerStore) recountStart(ctx context.Context) (int64, [6]int64, error) {
	var at int64
	var base [6]int64
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
		return 0, base, err
	}
	s.learnCut(at)
	select {
	case <-s.done:
		return 0, base, s.fail("gc", errStopped)
	case <-time.After(time.Until(time.UnixMilli(at))):
	}
	err = s.call(ctx, "gc", func(ctx context.Context) (err error) {
		base, err = s.readTotals(ctx, false)
		return err
	})
	return at, base, err
}

// tallyKey names the tally of the recount whose cut is at (Unix ms).
func (s *PeerStore) tallyKey(at int64) string {
	return s.cfg.KeyPrefix + "r" + strconv.FormatInt(at, 10)
}

// recountEnd adds what the walk of one server counted to the tally of the
// round whose cut is at, of servers servers, and, if that completes it,
// adds to the totals the difference between the tally and base, the
// totals read at the cut. Each server's count goes in with the count of
// servers done, in one transaction: the tracker whose count is the last
// one in sees the whole tally, and it alone changes the totals.
func (s *PeerStore) recountEnd(ctx context.Context, at int64, base [6]int64, counted recount, servers int) error {
	key := s.tallyKey(at)
	return s.call(ctx, "gc", func(ctx context.Context) error {
		// Neither the tally's transaction nor the totals' HINCRBYs are
		// sent again (once.go): a count added twice, or a correction
		// applied twice, would be wrong until the next round.
		tx := s.client.TxPipeline()
		for i, n := range counted {
			if n != 0 {
				queueOnce(ctx, tx, redis.NewIntCmd(ctx, "hincrby", key, totalsNames[i], n))
			}
		}
		done := redis.NewIntCmd(ctx, "hincrby", key, "done", 1)
		queueOnce(ctx, tx, done)
		tally := tx.HMGet(ctx, key, totalsNames[:]...)
		tx.Expire(ctx, key, max(s.cfg.GarbageCollectionInterval, time.Second))
		if _, err := tx.Exec(ctx); err != nil {
			return err
		}
		if done.Val() != int64(servers) {
			return nil // another server's count is still to come
		}
		sum := totalsOf(tally.Val())
		pipe := s.client.Pipeline()
		for i := range sum {
			if d := sum[i] - base[i]; d != 0 {
				queueOnce(ctx, pipe, redis.NewIntCmd(ctx, "hincrby", s.oneShard.totals, totalsNames[i], d))
			}
		}
		pipe.Del(ctx, key)
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

// slotTotalsMarker is the key (after key_prefix) whose existence tells
// every tracker sharing a Cluster that update scripts changed the slots'
// totals (P{T}n), which Stats must then add.
const slotTotalsMarker = "sn"

// slotTotalsState is what a store knows of the slots' totals: seen once
// the marker exists (or this store is about to change them), marked once
// this store set the marker.
type slotTotalsState struct {
	seen, marked atomic.Bool
}

// noteSlotTotals is called before an update script that changes the
// totals: on a Cluster it changes its slot's, so the first one sets the
// marker (one round trip, once per store) before it runs.
func (s *PeerStore) noteSlotTotals() {
	if s.slotShards == nil || s.slotTotals.marked.Load() {
		return
	}
	s.slotTotals.seen.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RedisWriteTimeout+s.cfg.RedisReadTimeout)
	defer cancel()
	if s.client.Set(ctx, s.cfg.KeyPrefix+slotTotalsMarker, "1", 0).Err() == nil {
		s.slotTotals.marked.Store(true) // else again before the next script
	}
}

// Stats returns the totals of every swarm under key_prefix, which all
// trackers sharing it report alike: Pn, after the pending changes (sent
// in the same round trip), plus on a Cluster whose update scripts changed
// them, the slots' totals (slotTotals).
func (s *PeerStore) Stats() (storage.Stats, error) {
	var t [6]int64
	err := s.call(context.Background(), "stats", func(ctx context.Context) (err error) {
		t, err = s.readTotals(ctx, true)
		return err
	})
	var st storage.Stats
	if err != nil {
		return st, err
	}
	for af := range 2 {
		st.Swarms[af] = uint64(max(t[3*af], 0))
		st.Seeders[af] = uint64(max(t[3*af+1], 0))
		st.Leechers[af] = uint64(max(t[3*af+2], 0))
	}
	return st, nil
}

// readTotals reads the totals, indexed as totalsFields (a sum of parts,
// each of which may be below zero); with flush, after the HINCRBYs of the
// pending changes, and with a read of the cut, in the same round trip.
func (s *PeerStore) readTotals(ctx context.Context, flush bool) ([6]int64, error) {
	var t [6]int64
	pipe := s.client.Pipeline()
	var q queued
	var cut *redis.StringCmd
	if flush {
		if !s.holdForCut() {
			q = s.pending.queue(ctx, pipe, s.oneShard.totals)
		}
		cut = pipe.Get(ctx, s.cutKey())
	}
	var marker *redis.IntCmd
	if s.slotShards != nil && !s.slotTotals.seen.Load() {
		marker = pipe.Exists(ctx, s.cfg.KeyPrefix+slotTotalsMarker)
	}
	read := pipe.HMGet(ctx, s.oneShard.totals, totalsNames[:]...)
	_, _ = pipe.Exec(ctx)
	// Failed HINCRBYs (out of memory) keep their changes for the next
	// Stats and do not fail this read.
	s.pending.settle(q)
	if cut != nil {
		if ms, err := cut.Int64(); err == nil {
			s.learnCut(ms)
		}
	}
	if err := read.Err(); err != nil {
		return t, err
	}
	if marker != nil {
		if err := marker.Err(); err != nil {
			return t, err
		}
		if marker.Val() > 0 {
			s.slotTotals.seen.Store(true)
		}
	}
	t = totalsOf(read.Val())
	if s.slotShards == nil || !s.slotTotals.seen.Load() {
		return t, nil
	}
	return t, s.addSlotTotals(ctx, &t)
}

// addSlotTotals adds the totals of every slot to t: stats.lua, one
// script per range of slots, on the range's master (reading the 16,384
// slots' totals one command each cost Redis about 30 ms and the tracker
// about 250,000 allocations). While slots move (a reshard, a stale slot
// map) that script is refused, and the slots' totals are read one by one,
// following the redirections.
func (s *PeerStore) addSlotTotals(ctx context.Context, t *[6]int64) error {
	var sum [6]int64
	if ok, err := s.sumPerNode(ctx, &sum); err != nil || ok {
		for i := range sum {
			t[i] += sum[i]
		}
		return err
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(s.slotShards))
	for i := range s.slotShards {
		cmds[i] = pipe.HMGet(ctx, s.slotShards[i].totals, totalsNames[:]...)
	}
	_, _ = pipe.Exec(ctx)
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	for _, c := range cmds {
		v := totalsOf(c.Val())
		for i := range v {
			t[i] += v[i]
		}
	}
	return nil
}

// sumPerNode sums the totals of every slot into t with stats.lua, one
// script per range of slots, on the range's master. It reports false
// (and no error) when a node refused the script for where the slots are,
// so that the caller reads them one by one instead.
func (s *PeerStore) sumPerNode(ctx context.Context, t *[6]int64) (bool, error) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return false, nil
	}
	ranges, err := s.slotRanges(ctx)
	if err != nil {
		return false, err
	}
	covered := 0
	for _, r := range ranges {
		covered += r.last - r.first + 1
	}
	if covered != len(s.slotShards) {
		return false, nil // slots without a master: let the reads say so
	}
	var args []interface{}
	for _, r := range ranges {
		master, err := cc.MasterForKey(ctx, s.slotShards[r.first].totals)
		if err != nil {
			return false, err
		}
		args = append(args[:0], "evalsha", &statsScript.sha, 0)
		for sl := r.first; sl <= r.last; sl++ {
			args = append(args, &s.slotShards[sl].totals)
		}
		v, err := statsScript.run(ctx, master, args).Int64Slice()
		switch {
		case isReplyError(err):
			return false, nil // slots moving: read them one by one
		case err != nil:
			return false, err
		case len(v) != 6:
			return false, errBadReply
		}
		for i := range v {
			t[i] += v[i]
		}
	}
	return true, nil
}
