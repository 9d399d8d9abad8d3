package udp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage/memory"
)

func newTestHandler(t testing.TB, logic frontend.TrackerLogic, cfg Config) *handler {
	t.Helper()
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ids := NewConnIDGenerator([]byte("handler test key"), cfg.MaxClockSkew)
	return newHandler(context.Background(), logic, ids, frontend.NewMetrics("udp", cfg.EnableRequestTiming, actions...), &limitedLogger{}, cfg)
}

// TestHandleRefusals covers every way a datagram is refused, and the rule
// that an unauthenticated datagram never gets a reply larger than itself.
func TestHandleRefusals(t *testing.T) {
	h := newTestHandler(t, frontendtest.NewLogic(), Config{})
	good := h.ids.Generate(testSrc4.Addr())
	bad := good ^ 1
	valid := announceFields{infoHash: testIH, peerID: testPID, left: 1, numWant: -1, port: 6881}
	pad := func(b []byte, n int) []byte { return append(b, make([]byte, n)...) }
	withHeader := func(connID uint64, action, txID uint32) []byte {
		b := encodeScrape(connID, txID)
		b[8], b[9], b[10], b[11] = byte(action>>24), byte(action>>16), byte(action>>8), byte(action)
		return b
	}

	tests := []struct {
		name       string
		packet     []byte
		wantReply  bool
		wantMsg    bittorrent.ClientError // for error replies
		wantReason string                 // counted in errors_total
	}{
		{name: "empty", packet: nil, wantReason: reasonShortPacket},
		{name: "15 bytes", packet: make([]byte, 15), wantReason: reasonShortPacket},
		{name: "connect with wrong protocol ID, 16 bytes: dropped", packet: withHeader(0x1234, actionConnect, 1), wantReason: reasonAmplification},
		{name: "connect with wrong protocol ID, padded: answered", packet: pad(withHeader(0x1234, actionConnect, 1), 20), wantReply: true, wantMsg: bittorrent.ErrUnsupportedProtocol, wantReason: "unsupported_protocol"},
		{name: "announce with bad ID: answered (reply smaller)", packet: encodeAnnounce(bad, 1, valid), wantReply: true, wantMsg: bittorrent.ErrBadConnectionID, wantReason: "bad_connection_id"},
		{name: "announce with protocol ID as connection ID", packet: encodeAnnounce(protocolID, 1, valid), wantReply: true, wantMsg: bittorrent.ErrBadConnectionID, wantReason: "bad_connection_id"},
		{name: "scrape with bad ID and one hash: answered (reply as large)", packet: encodeScrape(bad, 1, testIH), wantReply: true, wantMsg: bittorrent.ErrBadConnectionID, wantReason: "bad_connection_id"},
		{name: "scrape with bad ID and three hashes: answered", packet: encodeScrape(bad, 1, testIH, testIH, testIH), wantReply: true, wantMsg: bittorrent.ErrBadConnectionID, wantReason: "bad_connection_id"},
		{name: "truncated announce with bad ID, 40 bytes: answered", packet: encodeAnnounce(bad, 1, valid)[:40], wantReply: true, wantMsg: bittorrent.ErrBadConnectionID, wantReason: "bad_connection_id"},
		{name: "truncated announce with bad ID, 30 bytes: dropped", packet: encodeAnnounce(bad, 1, valid)[:30], wantReason: reasonAmplification},
		{name: "unknown action with bad ID: dropped", packet: withHeader(bad, 7, 1), wantReason: reasonAmplification},
		{name: "unknown action with bad ID, padded: answered", packet: pad(withHeader(bad, 7, 1), 10), wantReply: true, wantMsg: bittorrent.ErrUnknownAction, wantReason: reasonUnknownAction},
		{name: "unknown action with good ID: answered", packet: withHeader(good, 7, 1), wantReply: true, wantMsg: bittorrent.ErrUnknownAction, wantReason: reasonUnknownAction},
		{name: "error action from a client", packet: withHeader(good, actionError, 1), wantReply: true, wantMsg: bittorrent.ErrUnknownAction, wantReason: reasonUnknownAction},
		{name: "truncated announce with good ID", packet: encodeAnnounce(good, 1, valid)[:60], wantReply: true, wantMsg: bittorrent.ErrMalformedRequest, wantReason: "malformed_request"},
		{name: "announce with port 0", packet: encodeAnnounce(good, 1, announceFields{port: 0}), wantReply: true, wantMsg: bittorrent.ErrInvalidPort, wantReason: "invalid_port"},
		{name: "announce with event 9", packet: encodeAnnounce(good, 1, announceFields{port: 1, event: 9}), wantReply: true, wantMsg: bittorrent.ErrInvalidEvent, wantReason: "invalid_event"},
		{name: "announce with a bad escape in URL data", packet: encodeAnnounce(good, 1, announceFields{port: 1, options: urlDataOptions("/announce?jwt=%zz", 255)}), wantReply: true, wantMsg: bittorrent.ErrInvalidEscape, wantReason: "invalid_escape"},
		{name: "scrape without hashes with good ID", packet: encodeScrape(good, 1), wantReply: true, wantMsg: bittorrent.ErrMalformedRequest, wantReason: "malformed_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := frontendtest.ErrorsCounted("udp", tt.wantReason)
			reply := h.handle(tt.packet, testSrc4, nil)
			if got := frontendtest.ErrorsCounted("udp", tt.wantReason) - before; got != 1 {
				t.Errorf("errors_total{reason=%q} grew by %v, want 1", tt.wantReason, got)
			}
			if !tt.wantReply {
				if reply != nil {
					t.Fatalf("got a %d-byte reply, want the datagram dropped", len(reply))
				}
				return
			}
			if reply == nil {
				t.Fatal("datagram dropped, want an error reply")
			}
			d := decode(t, reply, 0)
			if d.action != actionError || d.txID != 1 || d.message != string(tt.wantMsg) {
				t.Errorf("reply = %+v, want error %q for transaction 1", d, tt.wantMsg)
			}
		})
	}
}

func TestHandleRoundTrip(t *testing.T) {
	logic := frontendtest.NewLogic()
	h := newTestHandler(t, logic, Config{})

	d := decode(t, h.handle(encodeConnect(11), testSrc4, nil), 0)
	if d.action != actionConnect || d.txID != 11 || !h.ids.Validate(d.connID, testSrc4.Addr()) {
		t.Fatalf("connect reply %+v does not carry a valid ID", d)
	}
	connID := d.connID

	seeder := netip.MustParseAddrPort("192.0.2.1:7000")
	leecher := testSrc4
	h.handle(encodeAnnounce(connID, 1, announceFields{infoHash: testIH, left: 0, numWant: -1, port: seeder.Port(), event: 2}), seeder, nil)
	d = decode(t, h.handle(encodeAnnounce(connID, 12, announceFields{infoHash: testIH, left: 5, numWant: -1, port: 6881}), leecher, nil), 6)
	want := netip.MustParseAddrPort("192.0.2.1:7000")
	if d.txID != 12 || d.interval != uint32(frontendtest.Interval/time.Second) || d.seeders != 1 || len(d.peers) != 1 || d.peers[0] != want {
		t.Errorf("announce reply = %+v, want the seeder %v", d, want)
	}

	d = decode(t, h.handle(encodeScrape(connID, 13, testIH, bittorrent.InfoHash{9}), leecher, nil), 0)
	if want := [][3]uint32{{1, 0, 1}, {0, 0, 0}}; d.txID != 13 || len(d.files) != 2 || d.files[0] != want[0] || d.files[1] != want[1] {
		t.Errorf("scrape reply = %+v, want files %v", d, want)
	}
}

func TestHandleIPv4MappedSource(t *testing.T) {
	logic := frontendtest.NewLogic()
	h := newTestHandler(t, logic, Config{})
	mapped := netip.MustParseAddrPort("[::ffff:192.0.2.1]:5000")
	connID := decode(t, h.handle(encodeConnect(1), mapped, nil), 0).connID
	if !h.ids.Validate(connID, testSrc4.Addr()) {
		t.Errorf("ID issued to the mapped address does not validate for the IPv4 address")
	}
	h.handle(encodeAnnounce(connID, 2, announceFields{infoHash: testIH, numWant: -1, port: 6881}), mapped, nil)
	req := logic.Last().Announce
	if want := netip.MustParseAddrPort("192.0.2.1:6881"); req.Peer.AddrPort != want || req.Peer.AddressFamily() != bittorrent.IPv4 {
		t.Errorf("peer = %v, want the unmapped IPv4 %v", req.Peer.AddrPort, want)
	}
}

func TestHandleURLData(t *testing.T) {
	tests := []struct {
		name                      string
		options                   []byte
		wantPath, wantQuery, wJWT string
	}{
		{name: "no options"},
		{name: "path only", options: urlDataOptions("/announce", 255), wantPath: "/announce"},
		{name: "jwt in one option", options: urlDataOptions("/announce?jwt=abc.def.ghi", 255), wantPath: "/announce", wantQuery: "jwt=abc.def.ghi", wJWT: "abc.def.ghi"},
		{name: "jwt across chunks", options: urlDataOptions("/announce?a=1&jwt=abc%2Edef", 3), wantPath: "/announce", wantQuery: "a=1&jwt=abc%2Edef", wJWT: "abc.def"},
		{name: "unknown option after URL data", options: append(urlDataOptions("/x?jwt=t", 255)[:10], 0x33, 1, 2), wantPath: "/x", wantQuery: "jwt=t", wJWT: "t"},
		{name: "truncated option", options: []byte{optionURLData, 200, '/'}},
	}
	logic := frontendtest.NewLogic()
	h := newTestHandler(t, logic, Config{})
	connID := h.ids.Generate(testSrc4.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := h.handle(encodeAnnounce(connID, 3, announceFields{infoHash: testIH, numWant: -1, port: 6881, options: tt.options}), testSrc4, nil)
			if d := decode(t, reply, 6); d.action != actionAnnounce {
				t.Fatalf("reply = %+v, want an announce", d)
			}
			last := logic.Last()
			path, query, jwt := last.Path, last.Query, last.JWT
			if path != tt.wantPath || query != tt.wantQuery || jwt != tt.wJWT {
				t.Errorf("params = %q, %q, jwt %q; want %q, %q, jwt %q", path, query, jwt, tt.wantPath, tt.wantQuery, tt.wJWT)
			}
		})
	}
}

func TestHandleNumWantDefaults(t *testing.T) {
	tests := []struct {
		name    string
		numWant int32
		want    uint32
	}{
		{"-1 is default_numwant", -1, 7},
		{"0xFFFFFFFF is default_numwant", int32(-1), 7},
		{"above max_numwant is capped", 500, 10},
		{"within bounds is kept", 3, 3},
	}
	logic := frontendtest.NewLogic()
	h := newTestHandler(t, logic, Config{MaxNumWant: 10, DefaultNumWant: 7})
	connID := h.ids.Generate(testSrc4.Addr())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.handle(encodeAnnounce(connID, 1, announceFields{numWant: tt.numWant, port: 1}), testSrc4, nil)
			if req := logic.Last().Announce; req.NumWant != tt.want {
				t.Errorf("NumWant = %d, want %d", req.NumWant, tt.want)
			}
		})
	}
}

func TestHandleLogicErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		wantMsg    string
		wantReason string
	}{
		{"client error is shown", bittorrent.ClientError("unapproved torrent"), "unapproved torrent", "refused"},
		{"internal error is hidden", errBackend, string(bittorrent.ErrInternal), "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logic := frontendtest.NewLogic()
			logic.Fail(tt.err)
			h := newTestHandler(t, logic, Config{})
			connID := h.ids.Generate(testSrc4.Addr())
			for _, packet := range [][]byte{
				encodeAnnounce(connID, 4, announceFields{port: 1}),
				encodeScrape(connID, 4, testIH),
			} {
				before := frontendtest.ErrorsCounted("udp", tt.wantReason)
				d := decode(t, h.handle(packet, testSrc4, nil), 0)
				if d.action != actionError || d.message != tt.wantMsg {
					t.Errorf("reply = %+v, want error %q", d, tt.wantMsg)
				}
				if frontendtest.ErrorsCounted("udp", tt.wantReason) != before+1 {
					t.Errorf("reason %q not counted", tt.wantReason)
				}
			}
			if n := logic.Afters(); n != 0 {
				t.Errorf("AfterAnnounce ran %d times after a failed HandleAnnounce", n)
			}
		})
	}
}

func TestHandleRecoversFromPanic(t *testing.T) {
	logic := frontendtest.NewLogic()
	h := newTestHandler(t, logic, Config{})
	connID := h.ids.Generate(testSrc4.Addr())
	before := frontendtest.ErrorsCounted("udp", reasonPanic)
	if reply := h.handle(encodeAnnounce(connID, 1, announceFields{infoHash: frontendtest.PanicHash, port: 1}), testSrc4, nil); reply != nil {
		t.Errorf("a panicking request got a reply")
	}
	if frontendtest.ErrorsCounted("udp", reasonPanic) != before+1 {
		t.Errorf("panic not counted")
	}
	// The handler is still usable.
	if d := decode(t, h.handle(encodeAnnounce(connID, 2, announceFields{infoHash: testIH, port: 1}), testSrc4, nil), 6); d.action != actionAnnounce {
		t.Errorf("after a panic, reply = %+v", d)
	}
}

func BenchmarkHandle(b *testing.B) {
	logic := frontendtest.NewLogic()
	h := newTestHandler(b, logic, Config{})
	connID := h.ids.Generate(testSrc4.Addr())
	// A swarm of 50 other peers, so that the announce reply carries 50.
	for i := 0; i < 50; i++ {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 6881)
		h.handle(encodeAnnounce(h.ids.Generate(src.Addr()), 1, announceFields{infoHash: testIH, left: 0, numWant: -1, port: 6881}), src, nil)
	}
	benches := []struct {
		name   string
		packet []byte
	}{
		{"connect", encodeConnect(1)},
		{"announce", encodeAnnounce(connID, 1, announceFields{infoHash: testIH, left: 1, numWant: -1, port: 6881})},
		{"scrape", encodeScrape(connID, 1, testIH, testIH, testIH)},
		{"bad connection ID", encodeAnnounce(connID^1, 1, announceFields{infoHash: testIH, port: 6881})},
	}
	for _, bc := range benches {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, 2048)
			b.ReportAllocs()
			for b.Loop() {
				if buf = h.handle(bc.packet, testSrc4, buf[:0]); buf == nil {
					b.Fatal("dropped")
				}
			}
		})
	}
}

// TestHandleWithStoreDoesNotAllocate holds the daemon's UDP announce and
// scrape, through the logic and the memory store (whose announce answers in
// compact form), at 0 allocations once the swarm exists.
func TestHandleWithStoreDoesNotAllocate(t *testing.T) {
	s, err := memory.New(memory.Config{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	logic := middleware.NewLogic(middleware.Config{}.WithDefaults(), s, nil, nil)
	t.Cleanup(func() { _ = logic.Stop(context.Background()) })
	h := newTestHandler(t, logic, Config{})
	for i := range 60 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 6881)
		h.handle(encodeAnnounce(h.ids.Generate(src.Addr()), 1, announceFields{infoHash: testIH, left: testLeft(i), numWant: -1, port: 6881}), src, nil)
	}
	connID := h.ids.Generate(testSrc4.Addr())
	for _, tc := range []struct {
		name   string
		packet []byte
		size   int
	}{
		{"announce", encodeAnnounce(connID, 1, announceFields{infoHash: testIH, left: 1, numWant: -1, port: 6881}), 20 + 6*50},
		{"scrape", encodeScrape(connID, 1, testIH, testIH, testIH), 8 + 12*3},
	} {
		buf := make([]byte, 0, 2048)
		if got := len(h.handle(tc.packet, testSrc4, buf[:0])); got != tc.size {
			t.Fatalf("%s: reply of %d bytes, want %d", tc.name, got, tc.size)
		}
		if n := testing.AllocsPerRun(200, func() { h.handle(tc.packet, testSrc4, buf[:0]) }); n != 0 {
			t.Errorf("%s: %v allocations a datagram, want 0", tc.name, n)
		}
	}
}

// testLeft makes every third peer of a test swarm a seeder.
func testLeft(i int) int64 {
	if i%3 == 0 {
		return 0
	}
	return 1000
}
