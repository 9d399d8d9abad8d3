package redis

import (
	"context"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
)

// Collection walks the peer hashes of each server (each master of a
// Cluster) with SCAN (scan.go) and runs gc.lua on each swarm: one bounded
// script per swarm, so Redis serves other clients in between. Every
// gc_interval each tracker tries to take the turn of each master (a SET
// NX PX on that master), so one tracker collects each master per
// interval, and a Cluster's masters are collected in parallel by
// whichever trackers win them.

// sscanCount is how many swarms one SSCAN of an index asks for.
const sscanCount = 128

// periodicGC collects the slots of each node whose turn no other tracker
// sharing the Redis took this interval: the turn expires a little before
// the next tick, so exactly one tracker wins each round even if their
// tickers drift.
func (s *PeerStore) periodicGC() {
	start := time.Now()
	hold := max(s.cfg.GarbageCollectionInterval*9/10, time.Millisecond)
	cutoff := clock.Now().Add(-s.cfg.PeerLifetime)
	var ranges []slotRange
	err := s.call(context.Background(), "gc", func(ctx context.Context) (err error) {
		ranges, err = s.slotRanges(ctx)
		ranges = perMaster(ranges)
		return err
	})
	if err != nil {
		logGC(err, "skipped")
		return
	}
	var mine []slotRange
	for _, r := range ranges {
		var ok bool
		err := s.call(context.Background(), "gc", func(ctx context.Context) (err error) {
			ok, err = s.client.SetNX(ctx, s.gcKey(r.first), "1", hold).Result()
			return err
		})
		if err != nil {
			logGC(err, "skipped")
			continue
		}
		if ok {
			mine = append(mine, r) // else another tracker collects these slots this round
		}
	}
	// The recount of the round's servers begins at one cut (totals.go).
	var bases []map[string][6]int64
	if len(mine) > 0 && s.recountLead() < hold/2 {
		var err error
		if bases, err = s.recountStart(context.Background(), mine); err != nil {
			logGC(err, "recount skipped")
			bases = nil
		}
	}
	removed := 0
	for i, r := range mine {
		var rc recount
		if bases != nil {
			rc = recount{}
		}
		n, err := s.walk(r, cutoff, rc)
		removed += n
		if err == nil && rc != nil {
			err = s.recountEnd(context.Background(), bases[i], rc)
		}
		if err != nil {
			logGC(err, "failed")
		}
	}
	storage.ObserveGC(time.Since(start).Seconds(), removed)
}

// logGC logs a failed collection, unless the store is stopping.
func logGC(err error, what string) {
	if !errors.Is(err, errStopped) {
		logrus.WithError(err).Warn("storage/redis: garbage collection " + what)
	}
}

// gcKey is the turn of the node that serves slot.
func (s *PeerStore) gcKey(slot int) string {
	if s.slotTag == nil {
		return s.cfg.KeyPrefix + "gc"
	}
	return s.cfg.KeyPrefix + "{" + s.slotTag[slot] + "}gc"
}

// CollectGarbage removes the peers last seen before cutoff from every
// swarm, one script per swarm.
func (s *PeerStore) CollectGarbage(cutoff time.Time) error {
	start := time.Now()
	var ranges []slotRange
	err := s.call(context.Background(), "gc", func(ctx context.Context) (err error) {
		ranges, err = s.slotRanges(ctx)
		ranges = perMaster(ranges)
		return err
	})
	removed := 0
	for _, r := range ranges {
		var n int
		n, err = s.collect(r, cutoff)
		removed += n
		if err != nil {
			break
		}
	}
	storage.ObserveGC(time.Since(start).Seconds(), removed)
	return err
}

// collect collects the swarms of the server that serves the slots of r
// (the whole store outside Cluster, one master with a Cluster), found by
// SCAN of its peer hashes (scan.go), and returns how many peers it
// removed.
func (s *PeerStore) collect(r slotRange, cutoff time.Time) (int, error) {
	return s.walk(r, cutoff, nil)
}

// walk is collect; with rc, it also counts the swarms it walks into rc
// (totals.go).
func (s *PeerStore) walk(r slotRange, cutoff time.Time, rc recount) (int, error) {
	var c scanner
	err := s.call(context.Background(), "gc", func(ctx context.Context) (err error) {
		c, err = s.scanClient(ctx, r.first)
		return err
	})
	if err != nil {
		return 0, err
	}
	cut, local, removed := cutoff.Unix(), s.classifier.Load() != nil, 0
	err = s.scanSwarms(context.Background(), c, "gc", func(page []foundSwarm) error {
		select {
		case <-s.done:
			return errStopped
		default:
		}
		n, err := s.collectSwarms(page, cut, local, rc)
		removed += n
		return err
	})
	if errors.Is(err, errStopped) {
		err = s.fail("gc", err)
	}
	return removed, err
}

// collectSwarms runs gc.lua on each of the swarms of page (one page of
// an index, or of a walk by SCAN), pipelined: one round trip per page
// (per node of a Cluster), each script still its own bounded step in
// Redis. With rc, the swarms' HLENs go first in the pipeline, and rc
// counts what they held before the scripts collected them (the scripts
// take what they remove off the totals themselves).
func (s *PeerStore) collectSwarms(page []foundSwarm, cut int64, local bool, rc recount) (int, error) {
	removed := 0
	err := s.call(context.Background(), "gc", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.Cmd, 0, len(page))
		argss := make([][]interface{}, 0, len(page))
		var counts []swarmCount
		for _, f := range page {
			m := f.member
			ih, web, ok := swarmMember(m)
			if !ok {
				continue // not written by this driver
			}
			k := s.keys(ih)
			if web {
				k = s.webKeys(ih)
			}
			if rc != nil {
				counts = append(counts, queueCount(ctx, pipe, &k, f.by))
			}
			sc := gcScript
			if local && !web {
				sc = gcLocalScript
			}
			args := sc.args(make([]interface{}, 0, 15), false)
			args = append(args, k.roles[0][0], k.roles[0][1], k.roles[1][0], k.roles[1][1], k.shard.index, k.shard.totals)
			if sc == gcLocalScript {
				args = append(args, k.ordered[0][0], k.ordered[0][1], k.ordered[1][0], k.ordered[1][1])
			}
			args = append(args, cut, m, f.by, s.idLen())
			argss = append(argss, args)
			cmd := redis.NewCmd(ctx, args...)
			queueOnce(ctx, pipe, cmd) // its counts and removals are not sent again
			cmds = append(cmds, cmd)
		}
		_, _ = pipe.Exec(ctx)
		for _, c := range counts {
			if err := c.addTo(rc); err != nil {
				return err
			}
		}
		for i, cmd := range cmds {
			if isNoScript(cmd.Err()) {
				// A node that does not hold the script yet: EVAL.
				cmd = gcScript.run(ctx, s.client, argss[i])
			}
			r, err := cmd.Int64Slice()
			if err != nil {
				return err
			}
			if len(r) == 2 {
				removed += int(r[0])
			}
		}
		return nil
	})
	return removed, err
}

// The fields of a shard's totals, by family.
var (
	seedersField  = [2]string{"s4", "s6"}
	leechersField = [2]string{"l4", "l6"}
	swarmsField   = [2]string{"w4", "w6"}
)

// Stats returns the totals of every swarm under key_prefix, which all
// trackers sharing it report alike: the sum of the shards' totals (one
// read outside Cluster). With a Cluster, stats.lua sums the totals of each
// master's slots on that master, one command per master: reading the
// 16,384 slots' totals one command each cost Redis about 30 ms and the
// tracker about 250,000 allocations per reporting interval. While slots
// move (a reshard, a stale slot map) that script is refused, and the
// slots' totals are read one by one, following the redirections.
func (s *PeerStore) Stats() (storage.Stats, error) {
	var st storage.Stats
	err := s.call(context.Background(), "stats", func(ctx context.Context) error {
		st = storage.Stats{}
		if s.slotShards != nil {
			// The plain announces' pending changes first (each slot's
			// to its master), so that the sum includes them. One that
			// fails is kept for the next Stats and does not fail this
			// read, as outside Cluster. The recount's cut first
			// (totals.go).
			s.readCut(ctx, s.client)
			_ = s.flushSlots(ctx)
			if ok, err := s.sumPerNode(ctx, &st); ok || err != nil {
				return err
			}
			st = storage.Stats{}
			return s.sumShards(ctx, &st, s.slotShards[:], false)
		}
		return s.sumShards(ctx, &st, []shard{s.oneShard}, true)
	})
	return st, err
}

// sumPerNode adds the totals of every slot to st with stats.lua, one
// script per range of slots, on the range's master. It reports false (and
// no error) when a node refused the script for where the slots are, so
// that the caller reads them one by one instead.
func (s *PeerStore) sumPerNode(ctx context.Context, st *storage.Stats) (bool, error) {
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
		for af := 0; af < 2; af++ {
			st.Swarms[af] += uint64(v[3*af])
			st.Seeders[af] += uint64(v[3*af+1])
			st.Leechers[af] += uint64(v[3*af+2])
		}
	}
	return true, nil
}

// sumShards adds the totals of shards to st, one pipelined HMGET each;
// with flush, after the HINCRBYs of the pending changes of the plain
// announces (totals.go), in the same round trip.
func (s *PeerStore) sumShards(ctx context.Context, st *storage.Stats, shards []shard, flush bool) error {
	pipe := s.client.Pipeline()
	var q queued
	var cut *redis.StringCmd
	if flush {
		if !s.holdForCut() {
			q = s.pending.queue(ctx, pipe, s.oneShard.totals)
		}
		cut = pipe.Get(ctx, s.cutKey())
	}
	cmds := make([]*redis.SliceCmd, len(shards))
	for i, sh := range shards {
		cmds[i] = pipe.HMGet(ctx, sh.totals, swarmsField[0], seedersField[0], leechersField[0],
			swarmsField[1], seedersField[1], leechersField[1])
	}
	_, _ = pipe.Exec(ctx)
	// Failed HINCRBYs (out of memory) keep their changes for the next
	// Stats and do not fail this read.
	s.pending.settle(q)
	if cut != nil {
		if ms, err := cut.Int64(); err == nil {
			s.learnCut(ms)
		}
	}
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	for _, c := range cmds {
		v := c.Val()
		for af := 0; af < 2 && len(v) == 6; af++ {
			st.Swarms[af] += uint64(max(asInt(v[3*af]), 0))
			st.Seeders[af] += uint64(max(asInt(v[3*af+1]), 0))
			st.Leechers[af] += uint64(max(asInt(v[3*af+2]), 0))
		}
	}
	return nil
}
