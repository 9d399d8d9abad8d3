package udp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// TestSipHashVectors checks siphash24 against the reference vectors of the
// SipHash paper (key 00..0f, message 00..n-1).
func TestSipHashVectors(t *testing.T) {
	var key [16]byte
	for i := range key {
		key[i] = byte(i)
	}
	k0 := binary.LittleEndian.Uint64(key[:8])
	k1 := binary.LittleEndian.Uint64(key[8:])
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	tests := []struct {
		name string
		n    int
		want uint64
	}{
		{"empty", 0, 0x726fdb47dd0e0e31},
		{"one word", 8, 0x93f5f5799a932462},
		{"paper example, 15 bytes", 15, 0xa129ca6149be45e5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := siphash24(k0, k1, msg[:tt.n]); got != tt.want {
				t.Errorf("siphash24(%d bytes) = %#x, want %#x", tt.n, got, tt.want)
			}
		})
	}
}

// fakeClock is an injectable Unix time in seconds.
type fakeClock struct{ now int64 }

func (c *fakeClock) unix() int64 { return c.now }

func newTestGenerator(t *testing.T, key string, skew time.Duration, c *fakeClock) *ConnIDGenerator {
	t.Helper()
	g := NewConnIDGenerator([]byte(key), skew)
	g.now = c.unix
	return g
}

func TestConnectionID(t *testing.T) {
	client := netip.MustParseAddr("192.0.2.1")
	const skew = 10 * time.Second
	// Issued near a wrap of the 16-bit timestamp, so that the modular age
	// is exercised too.
	const issued = int64(1<<32 + 65530)

	tests := []struct {
		name     string
		elapsed  time.Duration // from issue to validation
		from     netip.Addr
		key      string // of the validating generator
		tamper   uint64 // xored into the ID
		wantGood bool
	}{
		{name: "at once", from: client, key: "k", wantGood: true},
		{name: "after one minute", elapsed: time.Minute, from: client, key: "k", wantGood: true},
		{name: "after two minutes plus skew", elapsed: 2*time.Minute + skew, from: client, key: "k", wantGood: true},
		{name: "one second past two minutes plus skew", elapsed: 2*time.Minute + skew + time.Second, from: client, key: "k"},
		{name: "18 hours later, when the 16-bit time comes round", elapsed: 65536 * time.Second, from: client, key: "k"},
		{name: "an hour later", elapsed: time.Hour, from: client, key: "k"},
		{name: "validator clock behind by the skew", elapsed: -skew, from: client, key: "k", wantGood: true},
		{name: "validator clock behind by more than the skew", elapsed: -skew - time.Second, from: client, key: "k"},
		{name: "from another IPv4 address", from: netip.MustParseAddr("192.0.2.2"), key: "k"},
		{name: "from an IPv6 address", from: netip.MustParseAddr("2001:db8::1"), key: "k"},
		{name: "from the IPv4-mapped form of the same address", from: netip.MustParseAddr("::ffff:192.0.2.1"), key: "k", wantGood: true},
		{name: "other key", from: client, key: "other"},
		{name: "MAC bit flipped", from: client, key: "k", tamper: 1},
		{name: "timestamp changed", from: client, key: "k", tamper: 1 << 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{now: issued}
			id := newTestGenerator(t, "k", skew, clk).Generate(client) ^ tt.tamper
			clk.now = issued + int64(tt.elapsed/time.Second)
			v := newTestGenerator(t, tt.key, skew, clk)
			if got := v.Validate(id, tt.from); got != tt.wantGood {
				t.Errorf("Validate = %v, want %v", got, tt.wantGood)
			}
		})
	}
}

func TestConnectionIDDiffersByAddressAndTime(t *testing.T) {
	clk := &fakeClock{now: 1000}
	g := newTestGenerator(t, "k", 0, clk)
	a := g.Generate(netip.MustParseAddr("192.0.2.1"))
	b := g.Generate(netip.MustParseAddr("192.0.2.2"))
	clk.now++
	c := g.Generate(netip.MustParseAddr("192.0.2.1"))
	if a == b || a == c || b == c {
		t.Errorf("IDs repeat across addresses or times: %#x %#x %#x", a, b, c)
	}
	if a == protocolID {
		t.Errorf("ID equals the protocol ID")
	}
}

func BenchmarkConnectionID(b *testing.B) {
	g := NewConnIDGenerator([]byte("benchmark key"), 10*time.Second)
	addr := netip.MustParseAddr("2001:db8::1")
	b.ReportAllocs()
	for b.Loop() {
		if !g.Validate(g.Generate(addr), addr) {
			b.Fatal("generated ID does not validate")
		}
	}
}

// BenchmarkConnectionIDMAC compares the MAC chosen (SipHash-2-4) with
// HMAC-SHA256 over the same 24-byte message, reusing the HMAC state as a
// per-goroutine implementation would.
func BenchmarkConnectionIDMAC(b *testing.B) {
	var msg [24]byte
	b.Run("siphash24", func(b *testing.B) {
		b.ReportAllocs()
		var sink uint64
		for b.Loop() {
			msg[0]++
			sink += siphash24(1, 2, msg[:])
		}
		_ = sink
	})
	b.Run("hmac-sha256", func(b *testing.B) {
		m := hmac.New(sha256.New, []byte("benchmark key"))
		var sum [sha256.Size]byte
		b.ReportAllocs()
		for b.Loop() {
			msg[0]++
			m.Reset()
			m.Write(msg[:])
			m.Sum(sum[:0])
		}
	})
}
