package udp

import (
	"context"
	"sync"
	"sync/atomic"
)

// fanout answers the datagrams of one batch concurrently, for a logic
// whose requests wait for a round trip that requests in progress together
// share (frontend.RoundTripSharer: the Redis store's group commit). Read
// one after another, the announces of a batch would each wait for a round
// trip of their own, and the batch's replies for all of them; handed over
// together, they travel in one pipeline, and their replies leave in one
// sendmmsg. Each slot of the batch has a goroutine and a handler of its
// own, started once per socket: handing a datagram over allocates nothing.
type fanout struct {
	slots []fanSlot
	left  atomic.Int32  // datagrams of the batch not yet answered
	done  chan struct{} // the last one answered
	wg    sync.WaitGroup
}

// fanSlot is one datagram's place in the batch: its goroutine takes the
// datagram's index from start and leaves the reply (nil: dropped) in reply.
type fanSlot struct {
	h     *handler
	start chan int
	reply []byte
}

func newFanout(ctx context.Context, f *Frontend, b *batchIO, n int) *fanout {
	o := &fanout{slots: make([]fanSlot, n), done: make(chan struct{}, 1)}
	for i := range o.slots {
		s := &o.slots[i]
		s.h = newHandler(ctx, f.logic, f.ids, f.metrics, &f.log, f.cfg)
		s.start = make(chan int, 1)
		o.wg.Add(1)
		go o.serve(s, b)
	}
	return o
}

// serve answers the datagrams handed to slot s until the fanout stops.
func (o *fanout) serve(s *fanSlot, b *batchIO) {
	defer o.wg.Done()
	for i := range s.start {
		p, src, _ := b.packet(i)
		s.reply = s.h.handle(p, src, b.replyBuf(i))
		if o.left.Add(-1) == 0 {
			o.done <- struct{}{}
		}
	}
}

// run answers the datagrams of the batch whose indexes are in idx, each
// on its own slot, and returns once all are answered.
func (o *fanout) run(idx []int) {
	if len(idx) == 0 {
		return
	}
	o.left.Store(int32(len(idx)))
	for _, i := range idx {
		o.slots[i].start <- i
	}
	<-o.done
}

// stop ends the slots' goroutines; no batch may be in progress.
func (o *fanout) stop() {
	for i := range o.slots {
		close(o.slots[i].start)
	}
	o.wg.Wait()
}
