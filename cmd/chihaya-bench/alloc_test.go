package main

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// The generator must not allocate per request, or its own garbage
// collection would cap the rate it can drive. These tests hold the hot
// path at zero; the benchmarks below show its cost.

func newBenchUDPWorker(tb testing.TB) *udpWorker {
	tb.Helper()
	wl := testWorkload(tb, WorkloadConfig{Seed: 1, Zipf: 1, SeederShare: 0.7, NumWant: 50})
	cfg := testConfig(modeUDPAnnounce, netip.MustParseAddrPort("127.0.0.1:6969"))
	w := &udpWorker{cfg: cfg, wl: wl, pk: wl.NewPicker(0), slots: make([]udpSlot, 8), free: make([]int, 0, 8), slotBits: 3}
	for i := range 8 {
		w.free = append(w.free, i)
	}
	return w
}

func TestHotPathsDoNotAllocate(t *testing.T) {
	wl := testWorkload(t, WorkloadConfig{Seed: 1, Zipf: 1, SeederShare: 0.7, NumWant: 50})
	pk := wl.NewPicker(0)
	buf := make([]byte, 0, 2048)
	var a Announce
	var h Histogram
	w := newBenchUDPWorker(t)
	reply := make([]byte, 20+6*50)
	binary.BigEndian.PutUint32(reply, udpActionAnnounce)

	tests := []struct {
		name string
		fn   func()
	}{
		{"pick an announce", func() { pk.Next(&a) }},
		{"write a UDP announce", func() { pk.Next(&a); buf = appendUDPAnnounce(buf[:0], 1, 2, wl, &a) }},
		{"write a UDP scrape of 10", func() { buf = appendUDPScrape(buf[:0], 1, 2, pk, 10) }},
		{"write an HTTP announce", func() { pk.Next(&a); buf = appendHTTPAnnounceQuery(buf[:0], "/announce", wl, &a) }},
		{"record a latency", func() { h.Record(123 * time.Microsecond) }},
		{"match a UDP reply", func() {
			i, tx := w.take(slotAnnounce)
			_ = i
			binary.BigEndian.PutUint32(reply[4:], tx)
			w.handle(reply, time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tt.fn); n != 0 {
				t.Errorf("%v allocations per request, want 0", n)
			}
		})
	}
	if w.st.responses == 0 || w.st.errs[errStale]+w.st.errs[errBadReply] != 0 {
		t.Errorf("replies were not matched: %+v", w.st.errs)
	}
}

func BenchmarkPickAnnounce(b *testing.B) {
	pk := testWorkload(b, WorkloadConfig{Seed: 1, Zipf: 1, SeederShare: 0.7, NumWant: 50}).NewPicker(0)
	var a Announce
	b.ReportAllocs()
	for b.Loop() {
		pk.Next(&a)
	}
}

func BenchmarkWriteUDPAnnounce(b *testing.B) {
	wl := testWorkload(b, WorkloadConfig{Seed: 1, Zipf: 1, SeederShare: 0.7, NumWant: 50})
	pk := wl.NewPicker(0)
	buf := make([]byte, 0, 128)
	var a Announce
	b.ReportAllocs()
	for b.Loop() {
		pk.Next(&a)
		buf = appendUDPAnnounce(buf[:0], 1, 2, wl, &a)
	}
}

func BenchmarkWriteHTTPAnnounce(b *testing.B) {
	wl := testWorkload(b, WorkloadConfig{Seed: 1, Zipf: 1, SeederShare: 0.7, NumWant: 50})
	pk := wl.NewPicker(0)
	buf := make([]byte, 0, 512)
	var a Announce
	b.ReportAllocs()
	for b.Loop() {
		pk.Next(&a)
		buf = appendHTTPAnnounceQuery(buf[:0], "/announce", wl, &a)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	b.ReportAllocs()
	d := time.Duration(0)
	for b.Loop() {
		d += 997
		h.Record(d % (10 * time.Millisecond))
	}
}
