package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// RunLister checks the storage.Lister contract, one named subtest per
// clause. newStore builds a fresh store (which must be a storage.Lister)
// with locality configured as given (locality.Config{} for off);
// RunLister stops it.
func RunLister(t *testing.T, newStore func(t *testing.T, lc locality.Config) storage.PeerStore) {
	t.Helper()
	subnets := locality.Config{Enabled: true}.WithDefaults()
	tests := []struct {
		name string
		cfg  func(t *testing.T) locality.Config
		fn   func(t *testing.T, s storage.PeerStore, l storage.Lister)
	}{
		{"WalkVisitsEverySwarmOnce", fixed(locality.Config{}), testWalkAll},
		{"WalkKeep", fixed(locality.Config{}), testWalkKeep},
		{"WalkStopsOnError", fixed(locality.Config{}), testWalkError},
		{"WalkWhileSwarmsChange", fixed(locality.Config{}), testWalkConcurrent},
		{"WalkCountsBothKinds", fixed(locality.Config{}), testWalkKinds},
		{"GroupsWithoutLocality", fixed(locality.Config{}), testGroupsOff},
		{"GroupsBySubnet", fixed(subnets), testGroupsSubnet},
		{"GroupsByTopology", topologyConfig, testGroupsTopology},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, tc.cfg(t))
			t.Cleanup(func() { stop(t, s) })
			l, ok := s.(storage.Lister)
			if !ok {
				t.Fatalf("%T is not a storage.Lister", s)
			}
			tc.fn(t, s, l)
		})
	}
}

// walkAll collects a whole walk by info hash, failing on a repeat.
func walkAll(t *testing.T, l storage.Lister, keep func(bittorrent.InfoHash) bool) map[bittorrent.InfoHash]storage.Swarm {
	t.Helper()
	got := map[bittorrent.InfoHash]storage.Swarm{}
	err := l.Walk(context.Background(), keep, func(batch []storage.Swarm) error {
		for _, sw := range batch {
			if _, dup := got[sw.InfoHash]; dup {
				return fmt.Errorf("swarm %x visited twice", sw.InfoHash)
			}
			got[sw.InfoHash] = sw
		}
		return nil
	})
	must(t, "Walk", err)
	return got
}

func testWalkAll(t *testing.T, s storage.PeerStore, l storage.Lister) {
	want := map[bittorrent.InfoHash]storage.Swarm{}
	for i := 0; i < 300; i++ {
		ih := InfoHash(i)
		sw := storage.Swarm{InfoHash: ih}
		for j := 0; j < i%5; j++ {
			put(t, s, ih, j%2 == 0, Peer4(i*10+j))
			if j%2 == 0 {
				sw.Seeders[0]++
			} else {
				sw.Leechers[0]++
			}
		}
		if i%3 == 0 {
			put(t, s, ih, false, Peer6(i))
			sw.Leechers[1]++
		}
		if i%7 == 0 {
			must(t, "GraduateLeecher", s.GraduateLeecher(ih, Peer4(100000+i)))
			sw.Seeders[0]++
			sw.Downloads++
		}
		if sw.Peers() > 0 {
			want[ih] = sw
		}
	}
	got := walkAll(t, l, nil)
	if len(got) != len(want) {
		t.Fatalf("walk visited %d swarms, want %d", len(got), len(want))
	}
	for ih, w := range want {
		if got[ih] != w {
			t.Errorf("swarm %x: got %+v, want %+v", ih[:8], got[ih], w)
		}
	}
}

func testWalkKeep(t *testing.T, s storage.PeerStore, l storage.Lister) {
	for i := 0; i < 100; i++ {
		put(t, s, InfoHash(i), true, Peer4(i))
	}
	got := walkAll(t, l, func(ih bittorrent.InfoHash) bool { return ih[7]%4 == 1 })
	if len(got) != 25 {
		t.Fatalf("walk with keep visited %d swarms, want 25", len(got))
	}
	for ih := range got {
		if ih[7]%4 != 1 {
			t.Errorf("swarm %x visited, which keep refuses", ih[:8])
		}
	}
}

func testWalkError(t *testing.T, s storage.PeerStore, l storage.Lister) {
	for i := 0; i < 100; i++ {
		put(t, s, InfoHash(i), true, Peer4(i))
	}
	stopWalk := errors.New("enough")
	calls := 0
	err := l.Walk(context.Background(), nil, func([]storage.Swarm) error { calls++; return stopWalk })
	if !errors.Is(err, stopWalk) || calls != 1 {
		t.Fatalf("Walk returned %v after %d calls; want fn's error after 1", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Walk(ctx, nil, func([]storage.Swarm) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk with a cancelled context returned %v, want context.Canceled", err)
	}
}

// testWalkConcurrent walks while other swarms come and go: each swarm
// that is there throughout is visited exactly once.
func testWalkConcurrent(t *testing.T, s storage.PeerStore, l storage.Lister) {
	const stable = 500
	for i := 0; i < stable; i++ {
		put(t, s, InfoHash(i), i%2 == 0, Peer4(i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ctx.Err() == nil && n < 20000; n++ {
			ih := InfoHash(stable + n%1000)
			if n%2 == 0 {
				_ = s.PutLeecher(ih, Peer4(n))
			} else {
				_ = s.DeletePeer(ih, Peer4(n-1))
			}
		}
	}()
	for round := 0; round < 5; round++ {
		got := walkAll(t, l, nil)
		for i := 0; i < stable; i++ {
			if _, ok := got[InfoHash(i)]; !ok {
				t.Fatalf("round %d: swarm %d, there throughout, was not visited", round, i)
			}
		}
	}
	cancel()
	wg.Wait()
}

func testGroupsOff(t *testing.T, s storage.PeerStore, l storage.Lister) {
	put(t, s, InfoHash(1), true, Peer4(1))
	g, err := l.Groups(InfoHash(1))
	must(t, "Groups", err)
	if g != nil {
		t.Fatalf("Groups with locality off: %+v, want nil", g)
	}
}

func checkGroups(t *testing.T, l storage.Lister, ih bittorrent.InfoHash, want []storage.Group) {
	t.Helper()
	got, err := l.Groups(ih)
	must(t, "Groups", err)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Groups:\n got %+v\nwant %+v", got, want)
	}
}

func testGroupsSubnet(t *testing.T, s storage.PeerStore, l storage.Lister) {
	ih := InfoHash(1)
	// A small swarm, then one with more peers in a family than a store
	// may keep unclassified.
	put(t, s, ih, true, group(1, 1, 1, 2)...)
	put(t, s, ih, false, group(1, 2, 1, 3)...)
	put(t, s, ih, false, peerAt("2001:db8:1:2::5"))
	checkGroups(t, l, ih, []storage.Group{
		{Name: "10.1.1.0/24", Family: bittorrent.IPv4, Seeders: 2},
		{Name: "10.1.2.0/24", Family: bittorrent.IPv4, Leechers: 3},
		{Name: "2001:db8:1:2::/64", Family: bittorrent.IPv6, Leechers: 1},
	})
	put(t, s, ih, false, group(2, 1, 1, 100)...)
	checkGroups(t, l, ih, []storage.Group{
		{Name: "10.1.1.0/24", Family: bittorrent.IPv4, Seeders: 2},
		{Name: "10.1.2.0/24", Family: bittorrent.IPv4, Leechers: 3},
		{Name: "10.2.1.0/24", Family: bittorrent.IPv4, Leechers: 100},
		{Name: "2001:db8:1:2::/64", Family: bittorrent.IPv6, Leechers: 1},
	})
	checkGroups(t, l, InfoHash(2), nil)
}

func testGroupsTopology(t *testing.T, s storage.PeerStore, l storage.Lister) {
	ih := InfoHash(1)
	put(t, s, ih, true, group(1, 1, 1, 2)...)
	put(t, s, ih, false, group(1, 2, 1, 3)...)
	put(t, s, ih, false, group(2, 9, 1, 1)...) // zone b, no rack
	put(t, s, ih, false, peerAt("10.9.9.9"))   // neither
	checkGroups(t, l, ih, []storage.Group{
		{Name: "(none)/(none)", Family: bittorrent.IPv4, Leechers: 1},
		{Name: "a/a1", Family: bittorrent.IPv4, Seeders: 2},
		{Name: "a/a2", Family: bittorrent.IPv4, Leechers: 3},
		{Name: "b/(none)", Family: bittorrent.IPv4, Leechers: 1},
	})
}

// testWalkKinds: WebSocket peers count in their swarm, and a swarm of
// WebSocket peers only is visited too (stores that keep the kinds apart).
func testWalkKinds(t *testing.T, s storage.PeerStore, l storage.Lister) {
	if _, ok := s.(storage.KindKeeper); !ok {
		t.Skip("the store does not keep WebSocket peers apart")
	}
	ws := func(p bittorrent.Peer) bittorrent.Peer { p.Kind = bittorrent.WebSocketPeer; return p }
	put(t, s, InfoHash(1), true, Peer4(1))
	put(t, s, InfoHash(1), false, ws(Peer4(2)))
	put(t, s, InfoHash(2), true, ws(Peer4(3)))
	got := walkAll(t, l, nil)
	want := map[bittorrent.InfoHash]storage.Swarm{
		InfoHash(1): {InfoHash: InfoHash(1), Seeders: [2]uint32{1, 0}, Leechers: [2]uint32{1, 0}},
		InfoHash(2): {InfoHash: InfoHash(2), Seeders: [2]uint32{1, 0}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("walk: %+v, want %+v", got, want)
	}
}

// BenchmarkWalk measures a walk of a store of swarms swarms of one seeder
// each (filled once, before the timer starts): what the operator's walks
// and the full scrape cost.
func BenchmarkWalk(b *testing.B, s storage.PeerStore, swarms int) {
	l, ok := s.(storage.Lister)
	if !ok {
		b.Fatalf("%T is not a storage.Lister", s)
	}
	// Filled by several goroutines: a store over the network takes a
	// round trip a swarm.
	const fillers = 32
	Parallel(b, fillers, func(w int) error {
		for i := w; i < swarms; i += fillers {
			if err := s.PutSeeder(InfoHash(i), Peer4(i%(1<<24))); err != nil {
				return err
			}
		}
		return nil
	})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if err := l.Walk(context.Background(), nil, func(batch []storage.Swarm) error { n += len(batch); return nil }); err != nil {
			b.Fatal(err)
		}
		if n != swarms {
			b.Fatalf("walked %d swarms, want %d", n, swarms)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(swarms), "ns/swarm")
}
