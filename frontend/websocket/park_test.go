package websocket

import (
	"context"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
)

// holdConn gathers what the client writes while held, and sends it in
// one write on release: messages that arrive together.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	hold bool
	buf  []byte
}

func (h *holdConn) Write(b []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hold {
		h.buf = append(h.buf, b...)
		return len(b), nil
	}
	return h.Conn.Write(b)
}

func (h *holdConn) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.hold = false
	_, err := h.Conn.Write(h.buf)
	return err
}

// TestMessagesArrivingTogether: short messages that arrive in one segment
// (two scrapes of one torrent each, a few dozen bytes) are each answered,
// the second too, though the first read took it from the socket along
// with the first.
func TestMessagesArrivingTogether(t *testing.T) {
	tr := newTracker(t, Config{})
	var hc *holdConn
	d := gws.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		hc = &holdConn{Conn: c}
		return hc, nil
	}}
	ws, _, err := d.Dial(tr.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &client{t: t, ws: ws}
	for round := range 3 {
		hc.mu.Lock()
		hc.hold, hc.buf = true, hc.buf[:0]
		hc.mu.Unlock()
		for _, ih := range []string{"aaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbb"} {
			c.send(map[string]any{"action": "scrape", "info_hash": ih})
		}
		if err := hc.release(); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, b, err := ws.ReadMessage(); err != nil {
				t.Fatalf("round %d: reply %d of 2 to messages sent together: %v", round, i+1, err)
			} else if len(b) == 0 {
				t.Fatalf("round %d: empty reply", round)
			}
		}
		// Once the connection is idle again (parked where it can be).
		time.Sleep(20 * time.Millisecond)
	}
}

// TestIdleConnectionsHoldNoGoroutine: on Linux, a connection that has
// nothing to read parks in the poller instead of keeping a goroutine
// (half of an idle connection's memory), and still gets its messages:
// offers relayed to it, and its own announces.
func TestIdleConnectionsHoldNoGoroutine(t *testing.T) {
	tr := newTracker(t, Config{})
	if tr.f.poller == nil {
		if runtime.GOOS == "linux" {
			t.Fatal("no poller on Linux")
		}
		t.Skip("connections park only on Linux")
	}
	ih := id20("idle-swarm----------")
	const n = 50
	before := runtime.NumGoroutine()
	clients := make([]*client, n)
	for i := range clients {
		clients[i] = tr.dial(t, "/")
		clients[i].send(announceMsg(ih, id20("idle-peer-"+itoa(1000000000+i)), 0))
		clients[i].read()
	}
	// The client side has a goroutine per connection only while reading
	// (none now): what remains above before is the tracker's, which parks
	// a connection once it has been quiet for parkAfter.
	grown := 0
	for end := time.Now().Add(parkAfter + 5*time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if grown = runtime.NumGoroutine() - before; grown < n/5 {
			break
		}
	}
	if grown >= n/5 {
		t.Errorf("%d idle connections added %d goroutines, want fewer than %d", n, grown, n/5)
	}
	// A leecher's offer reaches one of the parked seeders, which answers.
	l := tr.dial(t, "/")
	leecher, offer := id20("idle-leecher--------"), id20("idle-offer----------")
	l.send(announceMsg(ih, leecher, 100, offer))
	l.read()
	got := make(chan int, n)
	for i, c := range clients {
		go func() {
			_ = c.ws.SetReadDeadline(time.Now().Add(3 * time.Second))
			if _, b, err := c.ws.ReadMessage(); err == nil && len(b) > 0 {
				got <- i
			}
		}()
	}
	select {
	case i := <-got:
		clients[i].send(map[string]any{"action": "announce", "info_hash": bsa(ih), "peer_id": bs([]byte("idle-peer-" + itoa(1000000000+i))),
			"to_peer_id": bsa(leecher), "offer_id": bsa(offer), "answer": map[string]any{"type": "answer", "sdp": "x"}})
		if m := l.read(); m["answer"] == nil {
			t.Fatalf("the leecher got %v, want the answer", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no parked connection received the offer")
	}
}
