package memory

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// newLayoutStore is a store with locality by subnet and the given flatMax:
// 0 keeps every swarm in cells, maxFlatMax keeps swarms of up to 64 peers
// a family flat.
func newLayoutStore(tb testing.TB, lc locality.Config, flatMax int, opts ...func(*Config)) *PeerStore {
	tb.Helper()
	cfg := Config{}.WithDefaults()
	cfg.Locality = lc
	for _, o := range opts {
		o(&cfg)
	}
	s, err := newPeerStore(cfg, flatMax)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// TestLocalityLayouts runs the locality rules, and the whole contract,
// with swarms kept in cells only and with swarms kept flat up to 64 peers
// (the default store, flat up to 32, runs them in memory_test.go).
func TestLocalityLayouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flatMax int
	}{{"Cells", 0}, {"Flat", maxFlatMax}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("Contract", func(t *testing.T) {
				storagetest.Run(t, func(t *testing.T) storage.PeerStore {
					return newWithoutIDs(t, newLayoutStore(t, locality.Config{Enabled: true}.WithDefaults(), tc.flatMax))
				})
			})
			t.Run("Rules", func(t *testing.T) {
				storagetest.RunLocality(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
					return newLayoutStore(t, lc, tc.flatMax)
				})
			})
		})
	}
}

// TestLocalitySwarmMoves grows a swarm past flatMax, so that it moves into
// cells, then shrinks it until collection moves it back, and checks after
// every step that every stored peer, and only those, comes back, with its
// peer ID and as the seeder or leecher it is, in both address families.
func TestLocalitySwarmMoves(t *testing.T) {
	// With peer IDs kept, which show that records move whole.
	s := newLayoutStore(t, locality.Config{Enabled: true}.WithDefaults(), defaultFlatMax, keepIDs)
	t.Cleanup(func() { storagetestStop(t, s) })
	ih := storagetest.InfoHash(7)

	type stored struct {
		id     bittorrent.PeerID
		seeder bool
	}
	want := map[netip.AddrPort]stored{}
	peer := func(i int, v6 bool) bittorrent.Peer {
		// Half the peers share 10.0.0.0/24 (or one /64), the others are
		// each alone in their subnet.
		a := netip.AddrFrom4([4]byte{10, byte(i % 2 * i), 0, byte(i)})
		if v6 {
			a = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 7: byte(i % 2 * i), 15: byte(i)})
		}
		var id bittorrent.PeerID
		copy(id[:], fmt.Sprintf("-XX0001-%012d", i))
		return bittorrent.Peer{ID: id, AddrPort: netip.AddrPortFrom(a, uint16(6000+i))}
	}
	check := func(step string, wantCells bool) {
		t.Helper()
		sh := s.shardFor(ih)
		sh.mu.RLock()
		cells := s.swarmOf(ih).loc != nil
		sh.mu.RUnlock()
		if cells != wantCells {
			t.Fatalf("%s: swarm in cells: %v, want %v", step, cells, wantCells)
		}
		for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
			// From a subnet of its own, so that the answer is one part,
			// seeders first.
			outsider := bittorrent.Peer{AddrPort: netip.MustParseAddrPort("192.0.2.1:6881")}
			if af == bittorrent.IPv6 {
				outsider.AddrPort = netip.MustParseAddrPort("[2001:db8:ffff::1]:6881")
			}
			got, counts, _, err := s.AnnouncePeers(nil, ih, false, 1000, outsider)
			if err != nil {
				t.Fatal(err)
			}
			var n, seeders uint32
			for ap, p := range want {
				if ap.Addr().Is4() == (af == bittorrent.IPv4) {
					n++
					if p.seeder {
						seeders++
					}
				}
			}
			if counts.Seeders != seeders || counts.Seeders+counts.Leechers != n || len(got) != int(n) {
				t.Fatalf("%s, %v: %d peers, counts %+v; want %d peers, %d of them seeders", step, af, len(got), counts, n, seeders)
			}
			for i, p := range got {
				w, ok := want[p.AddrPort]
				if !ok || w.id != p.ID {
					t.Fatalf("%s, %v: got %v (%q), not stored so", step, af, p.AddrPort, p.ID[:])
				}
				// A leecher gets every seeder before any leecher.
				if w.seeder != (uint32(i) < seeders) {
					t.Fatalf("%s, %v: peer %d (%v, seeder %v) out of place among %d seeders", step, af, i, p.AddrPort, w.seeder, seeders)
				}
			}
		}
	}

	// Up to flatMax a family: flat. One more IPv4 peer: cells.
	for i := range defaultFlatMax {
		for _, v6 := range []bool{false, true} {
			p := peer(i, v6)
			put := s.PutLeecher
			if i%3 == 0 {
				put = s.PutSeeder
			}
			if err := put(ih, p); err != nil {
				t.Fatal(err)
			}
			want[p.AddrPort] = stored{p.ID, i%3 == 0}
		}
	}
	check("flatMax peers a family", false)
	p := peer(defaultFlatMax, false)
	if err := s.GraduateLeecher(ih, p); err != nil {
		t.Fatal(err)
	}
	want[p.AddrPort] = stored{p.ID, true}
	check("one peer more", true)

	// Updates in cells: a seeder becomes a leecher, a leecher completes.
	for _, i := range []int{3, 4} {
		p := peer(i, false)
		put := s.PutLeecher
		if i == 4 {
			put = s.GraduateLeecher
		}
		if err := put(ih, p); err != nil {
			t.Fatal(err)
		}
		want[p.AddrPort] = stored{p.ID, i == 4}
	}
	check("roles changed in cells", true)

	// Down to 17 IPv4 peers (more than half of flatMax): cells stay.
	for i := 0; i < 16; i++ {
		p := peer(i, false)
		if err := s.DeletePeer(ih, p); err != nil {
			t.Fatal(err)
		}
		delete(want, p.AddrPort)
	}
	if err := s.CollectGarbage(time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("17 IPv4 peers after collection", true)

	// 16 IPv4 and 16 IPv6: the next collection makes it flat again.
	for _, q := range []bittorrent.Peer{peer(16, false)} {
		if err := s.DeletePeer(ih, q); err != nil {
			t.Fatal(err)
		}
		delete(want, q.AddrPort)
	}
	for i := 0; i < 16; i++ {
		q := peer(i, true)
		if err := s.DeletePeer(ih, q); err != nil {
			t.Fatal(err)
		}
		delete(want, q.AddrPort)
	}
	check("16 peers a family before collection", true)
	if err := s.CollectGarbage(time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("16 peers a family after collection", false)
	c, _ := s.ScrapeSwarm(ih, bittorrent.IPv4)
	if c.Downloads != 2 {
		t.Errorf("downloads %d after the moves, want 2", c.Downloads)
	}
	if st, _ := s.Stats(); st.Swarms != [2]uint64{1, 1} || st.Seeders[0]+st.Leechers[0] != 16 || st.Seeders[1]+st.Leechers[1] != 16 {
		t.Errorf("stats %+v, want one swarm of 16 peers in each family", st)
	}
}

// TestFlatMatchesCells announces into random swarms kept flat and kept in
// cells, and checks that both answers have the same shape: as many peers,
// the same counts and role, and position by position the same kind of
// peer (own group or not, seeder or not). Which peers they are is random.
func TestFlatMatchesCells(t *testing.T) {
	lc := locality.Config{Enabled: true, MinOutsideShare: 0.2}.WithDefaults()
	flat := newLayoutStore(t, lc, maxFlatMax)
	cells := newLayoutStore(t, lc, 0)
	t.Cleanup(func() { storagetestStop(t, flat); storagetestStop(t, cells) })
	rng := rand.New(rand.NewPCG(11, 12))
	for trial := range 300 {
		ih := storagetest.InfoHash(trial)
		n := 1 + rng.IntN(maxFlatMax)
		seeders := map[netip.AddrPort]bool{}
		var stored []bittorrent.Peer
		for i := range n {
			p := bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(4)), byte(i)}), 6881)}
			p.ID[0] = byte(i)
			seed := rng.IntN(3) == 0
			for _, s := range []*PeerStore{flat, cells} {
				put := s.PutLeecher
				if seed {
					put = s.PutSeeder
				}
				if err := put(ih, p); err != nil {
					t.Fatal(err)
				}
			}
			seeders[p.AddrPort] = seed
			stored = append(stored, p)
		}
		me := stored[rng.IntN(n)]
		if rng.IntN(2) == 0 { // an announcer not in the swarm
			me = bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(rng.IntN(5)), 255}), 6881)}
		}
		seeder, numWant := rng.IntN(2) == 0, rng.IntN(80)
		shape := func(s *PeerStore) string {
			peers, counts, role, err := s.AnnouncePeers(nil, ih, seeder, numWant, me)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[netip.AddrPort]bool{}
			out := fmt.Sprintf("%+v role %d:", counts, role)
			for _, p := range peers {
				if p.AddrPort == me.AddrPort || seen[p.AddrPort] {
					t.Fatalf("trial %d: %v given twice, or to itself", trial, p.AddrPort)
				}
				seen[p.AddrPort] = true
				kind := []byte("ol")
				if p.AddrPort.Addr().As4()[2] != me.AddrPort.Addr().As4()[2] {
					kind[0] = 'x'
				}
				if seeders[p.AddrPort] {
					kind[1] = 's'
				}
				out += " " + string(kind)
			}
			return out
		}
		if f, c := shape(flat), shape(cells); f != c {
			t.Fatalf("trial %d (%d peers, announcer %v seeder %v, numwant %d):\nflat:  %s\ncells: %s", trial, n, me.AddrPort, seeder, numWant, f, c)
		}
		if flat.swarmOf(ih).loc != nil {
			t.Fatalf("trial %d: a swarm of %d peers is in cells with flatMax %d", trial, n, maxFlatMax)
		}
	}
}

// TestConcurrentCollectionsWithMoves: collections may run at once (the
// contract allows it). One releases the shard's lock every gcBatch
// records; meanwhile the other may finish a swarm and move it back to
// the flat layout. Neither may then crash, and every peer is collected.
func TestConcurrentCollectionsWithMoves(t *testing.T) {
	cfg := Config{}.WithDefaults()
	cfg.ShardCount = 1 // every swarm behind one lock: the most interleaving
	cfg.Locality = locality.Config{Enabled: true}.WithDefaults()
	s, err := newPeerStore(cfg, defaultFlatMax)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { storagetestStop(t, s) })
	const swarms = 3000
	peer := func(i int) bittorrent.Peer {
		return bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 1}), 6881)}
	}
	for round := range 3 {
		// Each swarm past flatMax, so in cells (a cell per peer), and
		// with downloads, so that it stays once its peers are collected:
		// moved back to the flat layout, empty.
		for sw := range swarms {
			for i := range defaultFlatMax + 1 {
				if err := s.GraduateLeecher(storagetest.InfoHash(sw), peer(i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		// A collection that crashes takes the test binary with it, with
		// its stack: recovering would leave the shard locked.
		var wg sync.WaitGroup
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = s.CollectGarbage(time.Now().Add(time.Hour)) // every peer is stale
			}()
		}
		wg.Wait()
		if st, _ := s.Stats(); st.Seeders != [2]uint64{} || st.Swarms != [2]uint64{} {
			t.Fatalf("round %d: %+v after collecting every peer, want none", round, st)
		}
	}
}
