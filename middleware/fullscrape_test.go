package middleware

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
)

func newFullScrapeLogic(t testing.TB, swarms int) (*Logic, storage.PeerStore) {
	t.Helper()
	store, err := memory.New(memory.Config{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	l := NewLogic(Config{}.WithDefaults(), store, nil, nil)
	t.Cleanup(func() {
		_ = l.Stop(context.Background())
		_ = store.Stop(context.Background())
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < swarms; i++ {
		var ih bittorrent.InfoHash
		for j := range ih {
			ih[j] = byte(rng.Uint32())
		}
		p4 := bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 6881)}
		if err := store.PutSeeder(ih, p4); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 {
			p6 := bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.MustParseAddr("2001:db8::1"), 6881)}
			if err := store.GraduateLeecher(ih, p6); err != nil {
				t.Fatal(err)
			}
		}
	}
	return l, store
}

func TestFullScrape(t *testing.T) {
	// Enough swarms for several passes, with passes made small.
	defer func(was uint64) { fullScrapePassSwarms = was }(fullScrapePassSwarms)
	fullScrapePassSwarms = 1000
	const n = 3456
	l, _ := newFullScrapeLogic(t, n)
	var prev bittorrent.InfoHash
	got, seeders := 0, 0
	err := l.FullScrape(context.Background(), func(batch []bittorrent.Scrape) error {
		for _, s := range batch {
			if got > 0 && bytes.Compare(s.InfoHash[:], prev[:]) <= 0 {
				t.Fatalf("info hash %x after %x: not ascending", s.InfoHash, prev)
			}
			prev = s.InfoHash
			got++
			seeders += int(s.Complete)
			if s.Incomplete != 0 || s.Downloaded > 1 || s.Complete != 1+s.Downloaded {
				t.Fatalf("swarm %x: %+v, want 1 or 2 seeders (one IPv6, graduated)", s.InfoHash, s)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got != n || seeders != n+(n+2)/3 {
		t.Fatalf("%d swarms with %d seeders, want %d with %d", got, seeders, n, n+(n+2)/3)
	}
}

func TestFullScrapeErrors(t *testing.T) {
	l, _ := newFullScrapeLogic(t, 10)
	stop := errors.New("client left")
	if err := l.FullScrape(context.Background(), func([]bittorrent.Scrape) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("FullScrape returned %v, want fn's error", err)
	}
	unlisted := NewLogic(Config{}.WithDefaults(), struct{ storage.PeerStore }{l.store}, nil, nil)
	defer unlisted.Stop(context.Background())
	if err := unlisted.FullScrape(context.Background(), func([]bittorrent.Scrape) error { return nil }); !errors.Is(err, frontend.ErrFullScrapeUnsupported) {
		t.Errorf("FullScrape on a store that cannot list: %v", err)
	}
}

// BenchmarkFullScrape measures the walk and sort of a full scrape of a
// million swarms in the memory store (the writing is the HTTP frontend's
// BenchmarkFullScrapeWrite).
func BenchmarkFullScrape(b *testing.B) {
	l, _ := newFullScrapeLogic(b, 1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		if err := l.FullScrape(context.Background(), func(batch []bittorrent.Scrape) error { n += len(batch); return nil }); err != nil {
			b.Fatal(err)
		}
		if n != 1_000_000 {
			b.Fatalf("%d swarms", n)
		}
	}
}
