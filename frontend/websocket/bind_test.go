package websocket

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
)

// gateHook holds the first announce that reaches it until release is
// closed, and counts the announces it sees: those the swarm would be
// changed by.
type gateHook struct {
	entered, release chan struct{}
	once             sync.Once
	seen             atomic.Int32
}

func (h *gateHook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	if req.Event == bittorrent.Stopped {
		return nil
	}
	h.seen.Add(1)
	first := false
	h.once.Do(func() { first = true })
	if first {
		close(h.entered)
		<-h.release
	}
	if pk, _ := req.Params.String("refuse"); pk != "" {
		return errBadPasskey
	}
	return nil
}

func (*gateHook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

// TestPeerIDBoundBeforeTheLogic: while the first connection's announce
// is still in the logic (a store that applies the announce as it answers,
// Redis, would have stored it by then), a second connection announcing
// the same peer ID in the swarm is refused without reaching the logic, so
// that the swarm never holds the refused peer. And an announce the logic
// refuses leaves the peer ID free.
func TestPeerIDBoundBeforeTheLogic(t *testing.T) {
	h := &gateHook{entered: make(chan struct{}), release: make(chan struct{})}
	tr := newTracker(t, Config{}, h)
	a, b := tr.dial(t, "/"), tr.dial(t, "/")
	a.send(announceMsg(ih1, peerID(1), 100))
	<-h.entered
	b.send(announceMsg(ih1, peerID(1), 100))
	r := b.read()
	close(h.release)
	if r["failure reason"] != string(errPeerIDTaken) {
		t.Fatalf("the second connection with the same peer_id got %v, want %q", r, errPeerIDTaken)
	}
	if r := a.read(); r["failure reason"] != nil {
		t.Fatalf("the first connection got %v, want its reply", r)
	}
	if n := h.seen.Load(); n != 1 {
		t.Errorf("the logic saw %d announces, want 1: the refused one reached it", n)
	}

	// An announce refused by a prehook does not bind its peer ID.
	refused := tr.dial(t, "/?refuse=1")
	refused.send(announceMsg(ih2, peerID(2), 100))
	if r := refused.read(); r["failure reason"] != string(errBadPasskey) {
		t.Fatalf("refused announce: %v", r)
	}
	b.send(announceMsg(ih2, peerID(2), 100))
	if r := b.read(); r["failure reason"] != nil {
		t.Errorf("the peer_id of an announce the logic refused is still bound: %v", r)
	}
}
