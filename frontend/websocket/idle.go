package websocket

import "time"

// Parking: a connection with nothing to read waits in the frontend's
// poller (park_linux.go) instead of holding a goroutine; these are the
// poller-independent halves of that hand-over, and the sweep that enforces
// idle_timeout on parked connections.

// parkAfter: a connection whose message came within parkAfter of its
// previous one is busy (a browser exchanging offers and answers), and its
// reader waits up to parkAfter for the next before it parks, since parking
// and waking cost two system calls and a goroutine start a message. Any
// other connection (one announcing every couple of minutes, one that just
// connected) parks as soon as it has nothing left to read.
const parkAfter = time.Second

// park hands the connection to the poller, if there is one: true if the
// caller's goroutine is to end. Once the state is parked, the connection
// belongs to whoever swaps it back; the socket is armed after, so that a
// wake between the two is not lost (it starts a reader, which waits).
func (c *conn) park() bool {
	p := c.f.poller
	if p == nil || c.fd < 0 {
		return false
	}
	c.state.Store(parked)
	if c.killed.Load() || p.arm(c) != nil {
		// Closed under us (kill): read on, to the error, unless someone
		// has already taken the connection over.
		return !c.state.CompareAndSwap(parked, running)
	}
	return true
}

// wake starts a reader for a parked connection.
func (c *conn) wake() {
	if c.state.CompareAndSwap(parked, running) {
		go c.serveFn()
	}
}

// sweepIdle wakes, now and then, the parked connections that have been
// idle for idle_timeout: their reader finds its deadline passed and
// closes them, as a reader waiting in its goroutine does by itself.
func (f *Frontend) sweepIdle() {
	defer f.served.Done()
	t := time.NewTicker(max(f.cfg.IdleTimeout/8, 10*time.Millisecond))
	defer t.Stop()
	var idle []*conn
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		before := time.Now().Add(-f.cfg.IdleTimeout).UnixNano()
		f.mu.RLock()
		for _, c := range f.conns {
			if c.state.Load() == parked && c.lastRead.Load() <= before {
				idle = append(idle, c)
			}
		}
		f.mu.RUnlock()
		for i, c := range idle {
			c.wake()
			idle[i] = nil
		}
		idle = idle[:0]
	}
}

// kill closes the socket from outside the reader, which then sees the
// error and cleans up; a parked connection is woken for it.
func (c *conn) kill() {
	c.killed.Store(true)
	_ = c.nc.Close()
	c.wake()
}
