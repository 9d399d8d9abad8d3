package memory

import (
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestSizes holds the sizes the memory figures rest on: a swarm fits the
// runtime's 64-byte size class (at 10 peers a swarm, 32 bytes more are 3
// bytes a peer), and shards are whole cache lines, so that no two shards'
// locks share one.
func TestSizes(t *testing.T) {
	if got := unsafe.Sizeof(swarm{}); got > 64 {
		t.Errorf("swarm is %d bytes, want <= 64", got)
	}
	if got := unsafe.Sizeof(shard{}); got%64 != 0 {
		t.Errorf("shard is %d bytes, want a multiple of 64", got)
	}
}

func TestSpares(t *testing.T) {
	arr := func(c int) []byte { return make([]byte, 0, c) }
	tests := []struct {
		name      string
		put       [][]byte
		need      int
		want      int
		wantCap   int // 0: no spare fits
		wantSlots int // arrays kept after the get
	}{
		{"empty", nil, 60, 64, 0, 0},
		{"exact fit", [][]byte{arr(64)}, 60, 64, 64, 0},
		{"within a size class of want", [][]byte{arr(320)}, 270, 300, 320, 0},
		{"too small for need", [][]byte{arr(64)}, 90, 120, 0, 1},
		{"too large for want", [][]byte{arr(512)}, 90, 120, 0, 1},
		{"larger than maxSpare not kept", [][]byte{arr(maxSpare + 1)}, 90, maxSpare * 2, 0, 0},
		{"nil not kept", [][]byte{nil}, 0, 64, 0, 0},
		{"picks the fitting one", [][]byte{arr(64), arr(128), arr(192)}, 150, 180, 192, 2},
		{
			"full: replaces the smallest",
			[][]byte{arr(64), arr(128), arr(192), arr(240), arr(320)},
			60, 64, 0, spareSlots,
		},
		{
			"full: keeps a smaller newcomer out",
			[][]byte{arr(128), arr(192), arr(240), arr(320), arr(64)},
			60, 64, 0, spareSlots,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sp spares
			for _, b := range tt.put {
				sp.put(b)
			}
			got := sp.get(tt.need, tt.want)
			if cap(got) != tt.wantCap {
				t.Errorf("get(%d, %d) gave capacity %d, want %d", tt.need, tt.want, cap(got), tt.wantCap)
			}
			kept := 0
			for _, b := range sp {
				if b != nil {
					kept++
				}
			}
			if kept != tt.wantSlots {
				t.Errorf("%d arrays kept after the get, want %d", kept, tt.wantSlots)
			}
		})
	}
	t.Run("nil spares", func(t *testing.T) {
		var sp *spares
		sp.put(make([]byte, 0, 64))
		if b := sp.get(60, 64); b != nil {
			t.Errorf("get from nil spares gave %d bytes", cap(b))
		}
	})
}

// TestSparesReusedAcrossSwarms checks what the spares are for: a swarm
// filled after another in the same shard grows through the arrays the
// first one left, allocating only its final one.
func TestSparesReusedAcrossSwarms(t *testing.T) {
	cfg := Config{}.WithDefaults()
	cfg.ShardCount = 1
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storagetestStop(t, s) })
	fill := func(ih bittorrent.InfoHash) {
		t.Helper()
		for i := range 10 {
			if err := s.PutLeecher(ih, storagetest.Peer4(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	fill(storagetest.InfoHash(1))
	next := 2
	allocs := testing.AllocsPerRun(1, func() {
		// A fresh info hash each run (AllocsPerRun runs once untimed):
		// each fill is of a new swarm.
		fill(storagetest.InfoHash(next))
		next++
	})
	// The swarm, its map entry's share and its final record array; not
	// the four arrays it grew through.
	if allocs > 3 {
		t.Errorf("filling a second 10-peer swarm took %.0f allocations, want <= 3", allocs)
	}
}

// TestIPv6FamilyDropped checks that a swarm whose IPv6 peers have all left
// gives the family's space back at the next collection, and reads that
// find no IPv6 family answer as for an empty one.
func TestIPv6FamilyDropped(t *testing.T) {
	s := newStore(t).(*PeerStore)
	t.Cleanup(func() { storagetestStop(t, s) })
	ih := storagetest.InfoHash(1)
	p4, p6 := storagetest.Peer4(1), storagetest.Peer6(2)
	for _, p := range []bittorrent.Peer{p4, p6} {
		if err := s.PutSeeder(ih, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeletePeer(ih, p6); err != nil {
		t.Fatal(err)
	}
	if err := s.CollectGarbage(time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	sh := s.shardFor(ih)
	sh.mu.RLock()
	v6 := s.swarmOf(ih).v6
	sh.mu.RUnlock()
	if v6 != nil {
		t.Error("IPv6 family kept after its last peer left and a collection ran")
	}
	if c, _ := s.ScrapeSwarm(ih, bittorrent.IPv6); c.Seeders+c.Leechers != 0 {
		t.Errorf("IPv6 scrape %+v, want no peers", c)
	}
	peers, c, role, err := s.AnnouncePeers(nil, ih, false, 10, storagetest.Peer6(3))
	if err != nil || len(peers) != 0 || c.Seeders+c.Leechers != 0 || role != 0 {
		t.Errorf("IPv6 announce: %d peers, counts %+v, role %v, err %v; want none", len(peers), c, role, err)
	}
	if c, _ := s.ScrapeSwarm(ih, bittorrent.IPv4); c.Seeders != 1 {
		t.Errorf("IPv4 scrape %+v, want the seeder kept", c)
	}
	// The shared empty family must still be empty: nothing wrote to it.
	if noPeers.n != 0 || noPeers.recs != nil || noPeers.idx != nil {
		t.Error("the shared empty IPv6 family was written to")
	}
	runtime.KeepAlive(s)
}

// TestIndexWidths grows a family past the size where its index needs
// 32-bit entries, and back: every peer is found through the index at
// each size, and the entries are as wide as the table needs.
func TestIndexWidths(t *testing.T) {
	s := newStore(t).(*PeerStore)
	t.Cleanup(func() { storagetestStop(t, s) })
	ih := storagetest.InfoHash(1)
	l := &s.layouts[bittorrent.IPv4]
	check := func(step string, lo, hi int, wide bool) {
		t.Helper()
		f := &s.swarmOf(ih).v4
		if f.idx == nil || (f.idx.wide != nil) != wide || (f.idx.narrow != nil) == wide {
			t.Fatalf("%s: index %v entries, 32-bit %v; want 32-bit %v", step, f.idx != nil && f.idx.size() > 0, f.idx != nil && f.idx.wide != nil, wide)
		}
		if int(f.n) != hi-lo {
			t.Fatalf("%s: %d peers, want %d", step, f.n, hi-lo)
		}
		for i := lo; i < hi; i++ {
			k, _, _ := peerKey(storagetest.Peer4(i))
			if j := f.find(l, k[:l.keyLen]); j < 0 || string(f.keyAt(l, j)) != string(k[:l.keyLen]) {
				t.Fatalf("%s: peer %d not found", step, i)
			}
		}
		k, _, _ := peerKey(storagetest.Peer4(hi))
		if f.find(l, k[:l.keyLen]) >= 0 {
			t.Fatalf("%s: peer %d found, never stored", step, hi)
		}
	}
	const n = 40_000 // a half-full index of 65,536 entries holds 32,768
	for i := range n {
		if err := s.PutLeecher(ih, storagetest.Peer4(i)); err != nil {
			t.Fatal(err)
		}
	}
	check("40,000 peers", 0, n, true)
	for i := range n - 1000 {
		if err := s.DeletePeer(ih, storagetest.Peer4(i)); err != nil {
			t.Fatal(err)
		}
	}
	check("1,000 left", n-1000, n, false)
}
