package storagetest

import (
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// testMatchesModel runs a random sequence of operations and compares the
// store with a plain map as it goes. Swarms grow and shrink in phases, so
// that their sizes cross whatever thresholds a driver switches layouts at,
// and some peers share an address behind different ports (as behind a NAT).
func testMatchesModel(t *testing.T, s storage.PeerStore) {
	type key struct {
		ih   int
		addr netip.AddrPort
	}
	model := map[key]bool{} // true: seeder
	downloads := map[int]uint32{}
	rng := rand.New(rand.NewPCG(1, 2))
	const swarms, population, steps, phase = 2, 400, 24000, 3000
	pick := func() (int, bittorrent.Peer) {
		n := rng.IntN(population)
		p := Peer4(n)
		switch n % 5 {
		case 0:
			p = Peer6(n)
		case 1:
			p = Peer4(n % 3)
			p.AddrPort = netip.AddrPortFrom(p.AddrPort.Addr(), uint16(7000+n))
		}
		return rng.IntN(swarms), p
	}
	check := func(step int) {
		t.Helper()
		for ih := range swarms {
			for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
				var want storage.Counts
				want.Downloads = downloads[ih]
				var all []string
				for k, seeder := range model {
					if k.ih != ih || (k.addr.Addr().Is4() != (af == bittorrent.IPv4)) {
						continue
					}
					all = append(all, k.addr.String())
					if seeder {
						want.Seeders++
					} else {
						want.Leechers++
					}
				}
				sort.Strings(all)
				outsider := Peer4(1 << 20)
				if af == bittorrent.IPv6 {
					outsider = Peer6(1 << 20)
				}
				peers, c, _ := announce(t, s, InfoHash(ih), false, population, outsider)
				if c != want {
					t.Fatalf("step %d, swarm %d %s: counts %+v, want %+v", step, ih, af, c, want)
				}
				if got := addrs(peers); !sameSet(got, all) {
					t.Fatalf("step %d, swarm %d %s: peers %v, want %v", step, ih, af, got, all)
				}
			}
		}
	}
	for step := range steps {
		ih, p := pick()
		k := key{ih, p.AddrPort}
		op := rng.IntN(10)
		if (step/phase)%2 == 1 && rng.IntN(10) < 6 {
			op = 9 // a shrinking phase
		}
		switch {
		case op < 4:
			must(t, "PutLeecher", s.PutLeecher(InfoHash(ih), p))
			model[k] = false
		case op < 7:
			must(t, "PutSeeder", s.PutSeeder(InfoHash(ih), p))
			model[k] = true
		case op < 8:
			must(t, "GraduateLeecher", s.GraduateLeecher(InfoHash(ih), p))
			model[k] = true
			downloads[ih]++
		default:
			must(t, "DeletePeer", s.DeletePeer(InfoHash(ih), p))
			delete(model, k)
		}
		if step%101 == 0 || step == steps-1 {
			check(step)
		}
	}
}

func testConcurrent(t *testing.T, s storage.PeerStore) {
	const workers, opsPerWorker, swarms = 16, 400, 8
	// A worker stops at its first error; t.Errorf is safe from any
	// goroutine, and the totals are only checked when none failed.
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			dst := make([]bittorrent.Peer, 0, 50)
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range opsPerWorker {
				ih := InfoHash(rng.IntN(swarms))
				// Each worker owns its peers, so the end state is known.
				n := w*opsPerWorker + i%40
				p := Peer4(n)
				if n%3 == 0 {
					p = Peer6(n)
				}
				var err error
				switch rng.IntN(6) {
				case 0:
					err = s.PutSeeder(ih, p)
				case 1:
					err = s.PutLeecher(ih, p)
				case 2:
					err = s.GraduateLeecher(ih, p)
				case 3:
					err = s.DeletePeer(ih, p)
				case 4:
					_, err = s.ScrapeSwarm(ih, p.AddressFamily())
				default:
					_, _, _, err = s.AnnouncePeers(dst[:0], ih, rng.IntN(2) == 0, 50, p)
				}
				if err == nil && i%100 == 0 {
					_, err = s.Stats()
				}
				if err == nil && i%150 == 0 {
					err = s.CollectGarbage(time.Now().Add(-time.Hour))
				}
				if err == nil && i == opsPerWorker/2 && w%4 == 0 {
					err = s.CollectGarbage(time.Now().Add(time.Hour))
				}
				if err != nil {
					t.Errorf("worker %d, operation %d: %v", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkTotals(t, s, swarms)
}

// checkTotals checks that the store's totals agree with its swarms 0 to
// swarms-1, the only ones used.
func checkTotals(t *testing.T, s storage.PeerStore, swarms int) {
	t.Helper()
	var want storage.Stats
	for ih := range swarms {
		for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
			c := scrape(t, s, InfoHash(ih), af)
			want.Seeders[af] += uint64(c.Seeders)
			want.Leechers[af] += uint64(c.Leechers)
			if c.Seeders+c.Leechers > 0 {
				want.Swarms[af]++
			}
		}
	}
	got, err := s.Stats()
	must(t, "Stats", err)
	if got != want {
		t.Errorf("stats %+v, but the swarms add up to %+v", got, want)
	}
}

// testConcurrentCollection collects a large swarm while its peers come and
// go, which is when a driver that releases its locks part-way through
// collection must get its bookkeeping right.
func testConcurrentCollection(t *testing.T, s storage.PeerStore) {
	const peers, workers, ops = 6000, 4, 1500
	ih := InfoHash(0)
	for i := range peers {
		put(t, s, ih, i%3 == 0, Peer4(i))
		if i%4 == 0 {
			put(t, s, InfoHash(1+i%5), false, Peer6(i))
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := s.CollectGarbage(time.Now().Add(time.Hour)); err != nil {
			t.Errorf("CollectGarbage: %v", err)
		}
	})
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for range ops {
				p := Peer4(rng.IntN(peers + 100))
				var err error
				switch rng.IntN(3) {
				case 0:
					err = s.PutSeeder(ih, p)
				case 1:
					err = s.PutLeecher(ih, p)
				default:
					err = s.DeletePeer(ih, p)
				}
				if err != nil {
					t.Errorf("worker %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkTotals(t, s, 6)
	// Whatever survived is still a consistent swarm.
	peersGot, c, _ := announce(t, s, ih, false, 2*peers, Peer4(1<<20))
	if n := uint32(len(peersGot)); n != c.Seeders+c.Leechers {
		t.Errorf("announce gave %d peers, counts say %+v", n, c)
	}
	if got := addrs(peersGot); len(got) > 1 {
		for i := 1; i < len(got); i++ {
			if got[i] == got[i-1] {
				t.Fatalf("peer %s stored twice", got[i])
			}
		}
	}
}

// Parallel runs f(0) to f(n-1) on n goroutines at once and, when they are
// all done, fails tb with the first error any of them returned.
func Parallel(tb testing.TB, n int, f func(i int) error) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		tb.Fatal(err)
	}
}
