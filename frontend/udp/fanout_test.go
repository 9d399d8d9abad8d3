package udp

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// sharingLogic is frontendtest's logic as a store with a group commit
// would make it: its requests share round trips (frontend.RoundTripSharer).
// While gather is set, an announce waits, a bounded time, for others to be
// in progress with it, and the most seen at once is recorded.
type sharingLogic struct {
	*frontendtest.Logic
	shares bool
	gather int

	mu                 sync.Mutex
	cond               *sync.Cond
	inProgress, maxNow int
}

var _ frontend.RoundTripSharer = (*sharingLogic)(nil)

func newSharingLogic(shares bool, gather int) *sharingLogic {
	l := &sharingLogic{Logic: frontendtest.NewLogic(), shares: shares, gather: gather}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *sharingLogic) SharesRoundTrips() bool { return l.shares }

func (l *sharingLogic) HandleAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	if l.gather > 1 {
		l.mu.Lock()
		l.inProgress++
		l.maxNow = max(l.maxNow, l.inProgress)
		l.cond.Broadcast()
		// Not a timing assertion: the wait only bounds how long an
		// announce handled alone holds its socket.
		deadline := time.Now().Add(200 * time.Millisecond)
		stop := time.AfterFunc(200*time.Millisecond, l.cond.Broadcast)
		for l.inProgress < l.gather && time.Now().Before(deadline) {
			l.cond.Wait()
		}
		stop.Stop()
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.inProgress--
			l.mu.Unlock()
		}()
	}
	return l.Logic.HandleAnnounce(ctx, req, resp)
}

func (l *sharingLogic) most() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.maxNow
}

// TestSuiteSharingRoundTrips runs the frontend scenarios against a logic
// whose requests share round trips, which the frontend answers a batch's
// datagrams concurrently for.
func TestSuiteSharingRoundTrips(t *testing.T) {
	frontendtest.Run(t, func(t *testing.T, af bittorrent.AddressFamily) frontendtest.Dialer {
		f := startFrontend(t, newSharingLogic(true, 0), Config{Addr: frontendtest.Loopback(af) + ":0"})
		return func(t *testing.T) frontendtest.Client { return frontendtest.UDP(t, f.Addr().String()) }
	})
}

// TestBatchAnnouncesTogether sends a burst of announces to one socket:
// with a logic whose requests share round trips, the announces read in one
// batch are in progress together (so that a store can carry them in one
// round trip); with any other logic they are answered one after another.
// Either way every announce gets its own reply.
func TestBatchAnnouncesTogether(t *testing.T) {
	const burst = 16
	for _, tt := range []struct {
		name   string
		shares bool
	}{
		{"sharing logic", true},
		{"other logic", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			logic := newSharingLogic(tt.shares, burst)
			f := startFrontend(t, logic, Config{Addr: "127.0.0.1:0", Sockets: 1, BatchSize: 32})
			c := dialClient(t, "udp4", serverAddr(t, f, "127.0.0.1"))
			connID := c.connect(1)
			for i := range burst {
				c.send(encodeAnnounce(connID, uint32(100+i), announceFields{infoHash: testIH, left: 1, numWant: -1, port: uint16(7000 + i)}))
			}
			seen := map[uint32]bool{}
			for range burst {
				d := decode(t, c.recv(nil), 6)
				if d.action != actionAnnounce || d.txID < 100 || d.txID >= 100+burst || seen[d.txID] {
					t.Fatalf("reply %+v: not one of the announces' replies, or twice", d)
				}
				seen[d.txID] = true
			}
			most := logic.most()
			if tt.shares && most < 2 {
				t.Errorf("at most %d announce(s) in progress at once; want those of a batch together", most)
			}
			if !tt.shares && most != 1 {
				t.Errorf("%d announces in progress at once on one socket; want one after another", most)
			}
		})
	}
}
