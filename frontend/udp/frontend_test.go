package udp

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/cleanup"
)

// ioTimeout bounds each wait for a datagram, so that a lost or unanswered
// datagram fails a test instead of hanging it. It is no timing assertion:
// any answer within it passes.
const ioTimeout = 5 * time.Second

func startFrontend(t *testing.T, logic frontend.TrackerLogic, cfg Config) *Frontend {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	f, err := NewFrontend(logic, cfg)
	if err != nil {
		t.Fatalf("NewFrontend: %v", err)
	}
	cleanup.Stop(t, f.Stop)
	return f
}

// client is a UDP tracker client bound to its own local port.
type client struct {
	t    *testing.T
	conn *net.UDPConn
	srv  *net.UDPAddr
	buf  []byte
}

func dialClient(t *testing.T, network string, srv *net.UDPAddr) *client {
	t.Helper()
	c, err := net.DialUDP(network, nil, srv)
	if err != nil {
		t.Fatalf("dial %s %v: %v", network, srv, err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, conn: c, srv: srv, buf: make([]byte, 65536)}
}

func (c *client) send(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// roundTrip sends b and returns the reply with the same transaction ID.
func (c *client) roundTrip(b []byte) []byte {
	c.t.Helper()
	c.send(b)
	return c.recv(b[12:16])
}

// recv returns the next reply with transaction ID txID, or with any when
// txID is nil.
func (c *client) recv(txID []byte) []byte {
	c.t.Helper()
	for {
		if err := c.conn.SetReadDeadline(time.Now().Add(ioTimeout)); err != nil {
			c.t.Fatal(err)
		}
		n, err := c.conn.Read(c.buf)
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if n >= 8 && (txID == nil || string(c.buf[4:8]) == string(txID)) {
			return append([]byte(nil), c.buf[:n]...)
		}
	}
}

// tryRoundTrip is roundTrip for datagrams that may be lost: it reports
// false when no reply came within wait.
func (c *client) tryRoundTrip(b []byte, wait time.Duration) ([]byte, bool) {
	c.t.Helper()
	c.send(b)
	deadline := time.Now().Add(wait)
	for {
		if err := c.conn.SetReadDeadline(deadline); err != nil {
			c.t.Fatal(err)
		}
		n, err := c.conn.Read(c.buf)
		if err != nil {
			return nil, false
		}
		if n >= 8 && string(c.buf[4:8]) == string(b[12:16]) {
			return append([]byte(nil), c.buf[:n]...), true
		}
	}
}

func (c *client) connect(txID uint32) uint64 {
	c.t.Helper()
	d := decode(c.t, c.roundTrip(encodeConnect(txID)), 0)
	if d.action != actionConnect || d.txID != txID {
		c.t.Fatalf("connect reply = %+v", d)
	}
	return d.connID
}

func (c *client) localAddr() netip.AddrPort {
	return c.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func serverAddr(t *testing.T, f *Frontend, host string) *net.UDPAddr {
	t.Helper()
	port := f.Addr().(*net.UDPAddr).Port
	return &net.UDPAddr{IP: net.ParseIP(host), Port: port}
}

// TestSuite runs the scenarios every frontend passes, over UDP, against
// frontendtest's fake logic.
func TestSuite(t *testing.T) {
	frontendtest.Run(t, func(t *testing.T, af bittorrent.AddressFamily) frontendtest.Dialer {
		f := startFrontend(t, frontendtest.NewLogic(), Config{Addr: frontendtest.Loopback(af) + ":0"})
		return func(t *testing.T) frontendtest.Client { return frontendtest.UDP(t, f.Addr().String()) }
	})
}

func TestListenerRoundTrip(t *testing.T) {
	tests := []struct {
		name       string
		listen     string
		clientNet  string
		clientHost string
		wantFamily bittorrent.AddressFamily
		peerLen    int
		cfg        Config
	}{
		{name: "IPv4", listen: "127.0.0.1:0", clientNet: "udp4", clientHost: "127.0.0.1", wantFamily: bittorrent.IPv4, peerLen: 6},
		{name: "IPv6", listen: "[::1]:0", clientNet: "udp6", clientHost: "::1", wantFamily: bittorrent.IPv6, peerLen: 18},
		{name: "dual-stack socket, IPv4 client", listen: "[::]:0", clientNet: "udp4", clientHost: "127.0.0.1", wantFamily: bittorrent.IPv4, peerLen: 6},
		{name: "dual-stack socket, IPv6 client", listen: "[::]:0", clientNet: "udp6", clientHost: "::1", wantFamily: bittorrent.IPv6, peerLen: 18},
		{name: "IPv4, one socket, unbatched", listen: "127.0.0.1:0", clientNet: "udp4", clientHost: "127.0.0.1", wantFamily: bittorrent.IPv4, peerLen: 6, cfg: Config{Sockets: 1, BatchSize: 1}},
		{name: "dual-stack, unbatched, IPv4 client", listen: ":0", clientNet: "udp4", clientHost: "127.0.0.1", wantFamily: bittorrent.IPv4, peerLen: 6, cfg: Config{Sockets: 1, BatchSize: 1}},
		{name: "IPv6, four sockets, batch of 4", listen: "[::1]:0", clientNet: "udp6", clientHost: "::1", wantFamily: bittorrent.IPv6, peerLen: 18, cfg: Config{Sockets: 4, BatchSize: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logic := frontendtest.NewLogic()
			cfg := tt.cfg
			cfg.Addr = tt.listen
			f := startFrontend(t, logic, cfg)
			srv := serverAddr(t, f, tt.clientHost)

			seeder := dialClient(t, tt.clientNet, srv)
			leecher := dialClient(t, tt.clientNet, srv)

			// The seeder announces started; the leecher is then given it.
			sid := seeder.connect(1)
			seederPort := seeder.localAddr().Port()
			d := decode(t, seeder.roundTrip(encodeAnnounce(sid, 2, announceFields{infoHash: testIH, peerID: testPID, left: 0, event: 2, numWant: -1, port: seederPort})), tt.peerLen)
			if d.action != actionAnnounce || d.seeders != 1 || len(d.peers) != 0 {
				t.Fatalf("seeder's announce reply = %+v", d)
			}
			req := logic.Last().Announce
			if req.Peer.AddressFamily() != tt.wantFamily || req.Peer.AddrPort.Addr().Is4In6() {
				t.Errorf("seeder recorded as %v (%v), want an %v peer", req.Peer.AddrPort, req.Peer.AddressFamily(), tt.wantFamily)
			}
			if req.Peer.AddrPort.Addr() != seeder.localAddr().Addr().Unmap() || req.Event != bittorrent.Started {
				t.Errorf("seeder recorded as %v event %v", req.Peer.AddrPort, req.Event)
			}

			lid := leecher.connect(3)
			d = decode(t, leecher.roundTrip(encodeAnnounce(lid, 4, announceFields{infoHash: testIH, left: 100, numWant: -1, port: 6881})), tt.peerLen)
			wantPeer := netip.AddrPortFrom(seeder.localAddr().Addr().Unmap(), seederPort)
			if d.seeders != 1 || d.leechers != 1 || len(d.peers) != 1 || d.peers[0] != wantPeer || d.interval != uint32(frontendtest.Interval/time.Second) {
				t.Errorf("leecher's announce reply = %+v, want one peer %v", d, wantPeer)
			}

			d = decode(t, leecher.roundTrip(encodeScrape(lid, 5, testIH, bittorrent.InfoHash{0xee})), 0)
			if len(d.files) != 2 || d.files[0] != [3]uint32{1, 0, 1} || d.files[1] != [3]uint32{} {
				t.Errorf("scrape reply = %+v", d)
			}

			// An ID that was not issued is refused over the wire too.
			d = decode(t, leecher.roundTrip(encodeAnnounce(lid^0xff, 6, announceFields{infoHash: testIH, port: 1})), 0)
			if d.action != actionError || d.message != string(bittorrent.ErrBadConnectionID) {
				t.Errorf("announce with a forged ID: reply = %+v", d)
			}
		})
	}
}

func TestListenerSharesPortAcrossSockets(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "[::]:0"} {
		t.Run(listen, func(t *testing.T) {
			f := startFrontend(t, frontendtest.NewLogic(), Config{Addr: listen, Sockets: 4})
			if len(f.conns) != 4 {
				t.Fatalf("%d sockets, want 4", len(f.conns))
			}
			want := f.Addr().(*net.UDPAddr).Port
			if want == 0 {
				t.Fatal("Addr reports port 0")
			}
			for i, c := range f.conns {
				if got := c.LocalAddr().(*net.UDPAddr).Port; got != want {
					t.Errorf("socket %d bound to port %d, want %d", i, got, want)
				}
			}
		})
	}
}

func TestListenerAmplificationRule(t *testing.T) {
	f := startFrontend(t, frontendtest.NewLogic(), Config{Addr: "127.0.0.1:0", Sockets: 1})
	c := dialClient(t, "udp4", serverAddr(t, f, "127.0.0.1"))

	// An announce cut to 30 bytes, with a bad ID, would get a 36-byte
	// error: it is dropped. A connect sent right after is answered, and
	// being the first reply read proves the announce got none.
	before := frontendtest.ErrorsCounted("udp", reasonAmplification)
	c.send(encodeAnnounce(12345, 77, announceFields{infoHash: testIH, port: 6881})[:30])
	d := decode(t, c.roundTrip(encodeConnect(78)), 0)
	if d.txID != 78 {
		t.Errorf("first reply is for transaction %d, want the connect's 78", d.txID)
	}
	if frontendtest.ErrorsCounted("udp", reasonAmplification) != before+1 {
		t.Errorf("the dropped announce was not counted")
	}
}

// TestListenerSurvivesGarbage sends a burst of 5,000 garbage datagrams of
// every kind, then checks that the listener still answers.
func TestListenerSurvivesGarbage(t *testing.T) {
	logic := frontendtest.NewLogic()
	f := startFrontend(t, logic, Config{Addr: "127.0.0.1:0", Sockets: 2, BatchSize: 16})
	c := dialClient(t, "udp4", serverAddr(t, f, "127.0.0.1"))
	connID := c.connect(1)

	total := func() float64 {
		var sum float64
		for _, r := range []string{reasonShortPacket, reasonAmplification, reasonUnknownAction, "bad_connection_id", "malformed_request", "unsupported_protocol", "invalid_event", "invalid_port", "invalid_left", "invalid_downloaded", "invalid_uploaded", "invalid_escape", reasonPanic} {
			sum += frontendtest.ErrorsCounted("udp", r)
		}
		return sum
	}
	before := total()

	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		var p []byte
		switch i % 5 {
		case 0: // random bytes of random length
			p = make([]byte, rng.IntN(200))
			for j := range p {
				p[j] = byte(rng.UintN(256))
			}
		case 1: // a valid-looking announce with random fields
			p = encodeAnnounce(connID, uint32(i), announceFields{event: rng.Uint32(), numWant: int32(rng.Uint32()), port: uint16(rng.UintN(3)), left: int64(rng.Uint64())})
			p = append(p, byte(rng.UintN(4)), byte(rng.UintN(256)))
		case 2: // a truncated announce
			p = encodeAnnounce(connID, uint32(i), announceFields{port: 1})[:rng.IntN(98)]
		case 3: // unknown action, random ID
			p = encodeScrape(rng.Uint64(), uint32(i))
			p[11] = byte(3 + rng.UintN(250))
		case 4: // scrape with a forged ID
			p = encodeScrape(rng.Uint64(), uint32(i), testIH, testIH)
		}
		c.send(p)
	}

	// The burst may have filled the server's socket buffer, so the kernel
	// may drop the first connect: retry a few times. A listener that
	// stalled would answer none of them.
	fresh := dialClient(t, "udp4", serverAddr(t, f, "127.0.0.1"))
	var d decoded
	for attempt := 0; ; attempt++ {
		reply, ok := fresh.tryRoundTrip(encodeConnect(424242), time.Second)
		if ok {
			d = decode(t, reply, 0)
			break
		}
		if attempt == 9 {
			t.Fatal("no answer to a connect after the burst")
		}
	}
	if d.action != actionConnect {
		t.Fatalf("after the burst, connect reply = %+v", d)
	}
	d = decode(t, fresh.roundTrip(encodeAnnounce(d.connID, 424243, announceFields{infoHash: testIH, numWant: -1, port: 6881})), 6)
	if d.action != actionAnnounce {
		t.Errorf("after the burst, announce reply = %+v", d)
	}
	if total() <= before {
		t.Errorf("the garbage was not counted")
	}
}

func TestStopReleasesThePort(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:0", Sockets: 3}.WithDefaults()
	f, err := NewFrontend(frontendtest.NewLogic(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr := f.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := f.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := f.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	// Without SO_REUSEPORT, binding succeeds only if every socket is closed.
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("port still held after Stop: %v", err)
	}
	c.Close()
}

func TestNewFrontendAddressInUse(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	cfg := Config{Addr: taken.LocalAddr().String(), Sockets: 1}.WithDefaults()
	if f, err := NewFrontend(frontendtest.NewLogic(), cfg); err == nil {
		f.Stop(context.Background())
		t.Fatal("NewFrontend on a taken port succeeded")
	}
}

// BenchmarkListener measures requests through the whole socket path over
// loopback, unbatched and batched, with up to 32 datagrams in flight so
// that batches can form. One op is one request and its reply; the
// allocations are the server's (the client allocates nothing), and must
// stay at zero: reading, parsing, answering and writing a datagram
// allocates nothing, not even its source address.
func BenchmarkListener(b *testing.B) {
	const window = 32
	for _, bc := range []struct {
		name   string
		batch  int
		action uint32
		// shared: a logic whose requests share round trips, which the
		// batch's datagrams are handed to concurrently (fanout.go).
		shared bool
	}{
		{"connect/batch=1", 1, actionConnect, false},
		{"connect/batch=32", 32, actionConnect, false},
		{"announce/batch=1", 1, actionAnnounce, false},
		{"announce/batch=32", 32, actionAnnounce, false},
		{"announce/batch=32/shared", 32, actionAnnounce, true},
		{"scrape/batch=32", 32, actionScrape, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cfg := Config{Addr: "127.0.0.1:0", Sockets: 1, BatchSize: bc.batch}.WithDefaults()
			var logic frontend.TrackerLogic = frontendtest.NewLogic()
			if bc.shared {
				logic = newSharingLogic(true, 0)
			}
			f, err := NewFrontend(logic, cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { f.Stop(context.Background()) })
			c, err := net.DialUDP("udp4", nil, f.Addr().(*net.UDPAddr))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			connID := f.ids.Generate(c.LocalAddr().(*net.UDPAddr).AddrPort().Addr())
			var req []byte
			switch bc.action {
			case actionConnect:
				req = encodeConnect(1)
			case actionAnnounce:
				req = encodeAnnounce(connID, 1, announceFields{infoHash: testIH, left: 1, numWant: -1, port: 6881})
			case actionScrape:
				req = encodeScrape(connID, 1, testIH, testIH, testIH, testIH, testIH, testIH, testIH, testIH, testIH, testIH)
			}
			buf := make([]byte, 2048)
			if err := c.SetReadDeadline(time.Now().Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
			inFlight := 0
			drain := func() {
				for ; inFlight > 0; inFlight-- {
					n, err := c.Read(buf)
					if err != nil {
						b.Fatal(err)
					}
					if n < 8 || binary.BigEndian.Uint32(buf) != bc.action {
						b.Fatalf("reply %x is not a reply to action %d", buf[:n], bc.action)
					}
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if inFlight++; inFlight == window {
					drain()
				}
			}
			drain()
		})
	}
}
