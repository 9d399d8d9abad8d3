package redis

import (
	"cmp"
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
	s.pruneBatchers(ranges)
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
	var at int64
	var base [6]int64
	recounting := false
	if len(mine) > 0 && s.recountLead() < hold/2 {
		var err error
		if at, base, err = s.recountStart(context.Background()); err != nil {
			logGC(err, "recount skipped")
		} else {
			recounting = true
		}
	}
	removed := 0
	for _, r := range mine {
		var rc *recount
		if recounting {
			rc = new(recount)
		}
		n, err := s.walk(r, cutoff, rc)
		removed += n
		if err == nil && rc != nil {
			err = s.recountEnd(context.Background(), at, base, *rc, len(ranges))
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
func (s *PeerStore) walk(r slotRange, cutoff time.Time, rc *recount) (int, error) {
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
// Redis. The scripts return what they removed, which goes to the totals
// once the page is done (sendChanges). With rc, the swarms' HLENs
// go first in the pipeline, and rc counts what they held before the
// scripts collected them.
func (s *PeerStore) collectSwarms(page []foundSwarm, cut int64, local bool, rc *recount) (int, error) {
	removed := 0
	err := s.call(context.Background(), "gc", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.Cmd, 0, len(page))
		argss := make([][]interface{}, 0, len(page))
		scs := make([]*script, 0, len(page))
		var counts []swarmCount
		for _, f := range page {
			if af, ok := s.bucketFamily(f.bucket); ok {
				args := bucketGCScript.args(make([]interface{}, 0, 9), false)
				args = append(args, f.bucket, cut, s.cfg.KeyPrefix, familyTag[af], 6+12*int(af))
				argss, scs = append(argss, args), append(scs, bucketGCScript)
				cmd := redis.NewCmd(ctx, args...)
				queueOnce(ctx, pipe, cmd)
				cmds = append(cmds, cmd)
				continue
			}
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
			args := sc.args(make([]interface{}, 0, 14), false)
			args = append(args, k.roles[0][0], k.roles[0][1], k.roles[1][0], k.roles[1][1], k.shard.index)
			if sc == gcLocalScript {
				args = append(args, k.ordered[0][0], k.ordered[0][1], k.ordered[1][0], k.ordered[1][1])
			}
			args = append(args, cut, m, f.by, s.idLen())
			argss, scs = append(argss, args), append(scs, sc)
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
		var first error
		var changes [6]int64 // as totalsFields
		for i, cmd := range cmds {
			if isNoScript(cmd.Err()) {
				// A node that does not hold the script yet: EVAL.
				cmd = scs[i].run(ctx, s.client, argss[i])
			}
			r, err := cmd.Int64Slice()
			if err != nil {
				first = cmp.Or(first, err)
				continue
			}
			if scs[i] == bucketGCScript && len(r) == 7 {
				af, _ := s.bucketFamily(argss[i][3].(string))
				if rc != nil {
					rc.addBucket(af, r)
				}
				removed += int(r[0])
				changes[3*af] += r[6]
				changes[3*af+1] += r[4]
				changes[3*af+2] += r[5]
				continue
			}
			if len(r) == 8 {
				removed += int(r[0])
				for af := range 2 {
					changes[3*af] += r[3*af+4]
					changes[3*af+1] += r[3*af+2]
					changes[3*af+2] += r[3*af+3]
				}
			}
		}
		s.sendChanges(ctx, changes)
		return first
	})
	return removed, err
}

// sendChanges adds collection's changes to the totals at once, so that
// every tracker's next Stats sees the peers gone; those Redis refused
// (out of memory, a broken connection) go with the next Stats instead.
func (s *PeerStore) sendChanges(ctx context.Context, changes [6]int64) {
	var p pendingTotals
	for i, n := range changes {
		p[i].Store(n)
	}
	pipe := s.client.Pipeline()
	q := p.queue(ctx, pipe, s.oneShard.totals)
	if pipe.Len() > 0 {
		_, _ = pipe.Exec(ctx)
		p.settle(q)
	}
	for i := range p {
		if n := p[i].Load(); n != 0 {
			s.pending[i].Add(n)
		}
	}
}

// The fields of a shard's totals, by family.
var (
	seedersField  = [2]string{"s4", "s6"}
	leechersField = [2]string{"l4", "l6"}
	swarmsField   = [2]string{"w4", "w6"}
)
