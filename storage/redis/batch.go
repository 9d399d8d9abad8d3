package redis

import (
	"context"
	"runtime"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/storage"
)

// Group commit. Announces in progress at the same time share their round
// trips: at most batchLanes pipelines of announces are in flight, and an
// announce that finds them busy waits for the next one, which carries
// every announce that queued meanwhile (up to maxBatch). Alone, an
// announce goes at once, as before; under load, one write and one read
// system call on each side serve a whole batch instead of one announce,
// which is most of what an announce cost the tracker and Redis. Each
// announce's commands stay as they were (its script runs alone, and
// atomically), so nothing but the carriage is shared; a batch is sent once
// and never retried, like a single announce.
//
// Handing over: when a pipeline's replies are in, its sender wakes the
// announces it carried, and gives its lane to the first announce queued,
// together with the queue, so that no announce waits for more than the
// pipeline in flight before its own.

// batchLanes is how many pipelines of announces may be in flight at once.
// Redis runs one command at a time, so a few keep it busy while the
// tracker prepares the next batch; more would only make batches smaller.
const batchLanes = 1

// maxBatch bounds the announces of one pipeline.
const maxBatch = 256

type batcher struct {
	mu    sync.Mutex
	busy  int         // lanes in flight
	queue []*exchange // waiting for a lane
	// pipes are the pipelines of the lanes not in flight: a lane's
	// pipeline is reused from batch to batch, handed over with the lane;
	// conns the same for the wire path's connections (resp.go). closed:
	// the store stopped, and a lane's connection is closed when the lane
	// is given back.
	pipes  []redis.Pipeliner
	conns  []*wireConn
	closed bool
}

// close closes the connections of the lanes not in flight, and those of
// the others as they come back.
func (b *batcher) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, w := range b.conns {
		if w.c != nil {
			w.c.Close()
		}
	}
	b.conns = nil
}

// release gives x's lane back (pipeline or connection) to b; b.mu held.
func (b *batcher) release(x *exchange) {
	b.busy--
	if x.pipe != nil {
		b.pipes = append(b.pipes, x.pipe)
	}
	if w := x.conn; w != nil {
		// At most a connection per lane is kept (a probe's may be one
		// too many).
		if b.closed || len(b.conns) >= batchLanes {
			if w.c != nil {
				w.c.Close()
			}
		} else {
			b.conns = append(b.conns, w)
		}
	}
}

// roundTrip sends x's commands (x.cmds), in a pipeline with whatever other
// announces are waiting, and returns the error of its exchange: one of
// its commands' errors, or the pipeline's. x.probe sends x alone, at once:
// the breaker's probe must reach Redis whatever the queue holds.
func (s *PeerStore) roundTrip(ctx context.Context, x *exchange) error {
	// Outside Cluster one group commit (and one for the wire path); with
	// a Cluster one per master (x.node), on its own connections.
	b, c := &s.batch, redis.Cmdable(s.client)
	switch {
	case x.node != nil:
		b, c = s.nodeBatcher(x.node), x.node
	case x.wired:
		b = &s.wire
	}
	if x.probe {
		// On a connection of its own, kept for the lanes if it works.
		x.batch = append(x.batch[:0], x)
		if !x.wired {
			x.pipe = c.Pipeline()
		}
		s.sendBatch(ctx, x)
		if x.conn != nil && x.conn.c != nil {
			b.mu.Lock()
			b.busy++
			b.release(x)
			b.mu.Unlock()
		}
		return x.err
	}
	b.mu.Lock()
	if b.busy >= batchLanes {
		b.queue = append(b.queue, x)
		b.mu.Unlock()
		if lead := <-x.wake; !lead {
			return x.err // carried by another announce's pipeline
		}
	} else {
		b.busy++
		if x.wired {
			if n := len(b.conns); n > 0 {
				x.conn = b.conns[n-1]
				b.conns = b.conns[:n-1]
			}
		} else if n := len(b.pipes); n > 0 {
			x.pipe = b.pipes[n-1]
			b.pipes = b.pipes[:n-1]
		}
		b.mu.Unlock()
		if x.pipe == nil && !x.wired {
			x.pipe = c.Pipeline()
		}
		// Let the announces that are ready to run (those of the same UDP
		// batch, handed over together) queue first, and take them along:
		// otherwise the first of them would go alone and the others wait
		// for its round trip. Alone, this returns at once.
		runtime.Gosched()
		b.mu.Lock()
		n := min(len(b.queue), maxBatch-1)
		x.batch = append(append(x.batch[:0], x), b.queue[:n]...)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		b.mu.Unlock()
	}
	s.sendBatch(ctx, x)
	// The replies are in: wake the others, and pass the lane on.
	for _, o := range x.batch[1:] {
		o.wake <- false
	}
	b.mu.Lock()
	if len(b.queue) == 0 {
		b.release(x)
		b.mu.Unlock()
		return x.err
	}
	next := b.queue[0]
	next.pipe, next.conn = x.pipe, x.conn
	n := min(len(b.queue), maxBatch)
	next.batch = append(next.batch[:0], b.queue[:n]...)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.mu.Unlock()
	next.wake <- true
	return x.err
}

// nodeBatcher returns the group commit of a Cluster's master.
func (s *PeerStore) nodeBatcher(node *redis.Client) *batcher {
	if b, ok := s.nodeBatches.Load(node); ok {
		return b.(*batcher)
	}
	b, _ := s.nodeBatches.LoadOrStore(node, new(batcher))
	return b.(*batcher)
}

// pruneBatchers closes and forgets the group commits of the nodes that
// are no longer masters (ranges: the masters' slots, as a collection
// round read them): a master demoted by a failover, or replaced under a
// new address, would keep its lane's connection and buffers for as long
// as the store runs. An announce that still holds one finishes on it;
// its connection is closed when it gives the lane back.
func (s *PeerStore) pruneBatchers(ranges []slotRange) {
	masters := make(map[string]bool, len(ranges))
	for _, r := range ranges {
		masters[r.addr] = true
	}
	s.nodeBatches.Range(func(node, b any) bool {
		if !masters[node.(*redis.Client).Options().Addr] {
			s.nodeBatches.Delete(node)
			b.(*batcher).close()
		}
		return true
	})
}

// sendBatch sends the commands of the announces of x.batch in one
// pipeline, and sets each one's err. While Redis is marked down (by a
// pipeline that failed before, or another request), the announces that
// queued fail at once, as new requests do, instead of waiting for a
// timeout of their own.
func (s *PeerStore) sendBatch(ctx context.Context, x *exchange) {
	if !x.probe && s.downUntil.Load() != 0 {
		err := *s.downErr.Load()
		for _, o := range x.batch {
			o.err = err
		}
		return
	}
	s.roundTrips.Add(1)
	var err error
	if x.wired {
		// Each announce reads its own replies, error replies included.
		err = s.sendWire(ctx, x)
		for _, o := range x.batch {
			o.err = err
		}
	} else {
		all := x.all[:0]
		for _, o := range x.batch {
			all = append(all, o.cmds...)
		}
		x.all = all
		_ = x.pipe.BatchProcess(ctx, all...)
		_, err = x.pipe.Exec(ctx)
		clear(all)
		for _, o := range x.batch {
			o.err = nil
			for _, c := range o.cmds {
				if e := c.Err(); e != nil {
					o.err = e
					break
				}
			}
		}
	}
	if err != nil && !x.probe {
		// Before the lane is handed over, so that the announces queued
		// behind this pipeline fail at once (above) instead of each
		// waiting for a timeout.
		if reason, down := errorReason(err); down {
			if _, ok := s.client.(*redis.ClusterClient); !ok || reason == reasonTimeout {
				s.markDown(err)
			}
		}
	}
}

var _ storage.RoundTripSharer = (*PeerStore)(nil)

// SharesRoundTrips reports that announces in progress together share
// their round trips (the group commit above), so that the UDP frontend
// hands it the announces of a batch concurrently.
func (s *PeerStore) SharesRoundTrips() bool { return true }
