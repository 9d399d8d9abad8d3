package redis

import (
	"context"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// The shard totals (P{T}n: seeders, leechers and swarms of each family)
// back the gauges and the operator API. The scripts change them with the
// peers, atomically. A native announce on a single Redis or Sentinel is no
// script (plainUpdate): its plain commands' replies say exactly what
// changed (HSET: a new field; HDEL: a field removed; the HLENs read just
// before: whether the family of the swarm was empty), and the tracker adds
// that to pendingTotals, which reach Redis with the next Stats (every
// prometheus_reporting_interval, in the same round trip as the read) and
// at Stop. Between two Stats a tracker's totals lag by its own changes;
// a tracker killed without Stop loses those of its last interval (the
// gauges stay off by them).

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
