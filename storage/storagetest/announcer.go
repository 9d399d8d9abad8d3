package storagetest

import (
	"math/rand/v2"
	"net/netip"
	"sort"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// RunAnnouncer checks a store's storage.Announcer (and, when it has one,
// its storage.CompactAnnouncer) against a model of the swarms: a random
// run of announces over two swarms of both families, each answered and
// applied in one call, must give the counts and the role from before its
// update, only peers the model holds (never the announcer, never a seeder
// to a seeder, as many as numWant and the swarm allow), and leave the
// swarms as the model says (checked with AnnouncePeers, as testMatchesModel
// does). newStore must return a store that implements storage.Announcer.
func RunAnnouncer(t *testing.T, newStore func(t *testing.T) storage.PeerStore) {
	s := newStore(t)
	t.Cleanup(func() { stop(t, s) })
	a, ok := s.(storage.Announcer)
	if !ok {
		t.Fatalf("%T is not a storage.Announcer", s)
	}
	ca, _ := s.(storage.CompactAnnouncer)

	type key struct {
		ih   int
		addr netip.AddrPort
	}
	model := map[key]bool{} // true: seeder
	downloads := map[int]uint32{}
	rng := rand.New(rand.NewPCG(3, 4))
	const swarms, population, steps = 2, 120, 6000
	var compact []byte
	for step := range steps {
		n := rng.IntN(population)
		p := Peer4(n)
		if n%4 == 0 {
			p = Peer6(n)
		}
		ih := rng.IntN(swarms)
		u := storage.Update(rng.IntN(4))
		numWant := rng.IntN(40)

		// What the model says before the update.
		var want storage.Counts
		want.Downloads = downloads[ih]
		avail := 0
		for k, seeder := range model {
			if k.ih != ih || k.addr.Addr().Is4() != p.AddrPort.Addr().Is4() {
				continue
			}
			if seeder {
				want.Seeders++
			} else {
				want.Leechers++
			}
			if k.addr != p.AddrPort && (!seeder || !u.Seeder()) {
				avail++
			}
		}
		wantRole := storage.Absent
		if seeder, ok := model[key{ih, p.AddrPort}]; ok {
			wantRole = storage.Leecher
			if seeder {
				wantRole = storage.Seeder
			}
		}

		var peers []bittorrent.Peer
		var c storage.Counts
		var role storage.Role
		var err error
		if ca != nil && step%2 == 0 {
			peers, compact, c, role, err = ca.AnnounceCompact(nil, compact[:0], InfoHash(ih), u, numWant, p)
			size := 6
			if p.AddrPort.Addr().Is6() {
				size = 18
			}
			if len(compact)%size != 0 {
				t.Fatalf("step %d: %d bytes of compact peers, not a multiple of %d", step, len(compact), size)
			}
			for i := 0; i < len(compact); i += size {
				addr, _ := netip.AddrFromSlice(compact[i : i+size-2])
				port := uint16(compact[i+size-2])<<8 | uint16(compact[i+size-1])
				peers = append(peers, bittorrent.Peer{AddrPort: netip.AddrPortFrom(addr, port)})
			}
		} else {
			peers, c, role, err = a.Announce(nil, InfoHash(ih), u, numWant, p)
		}
		must(t, "Announce", err)
		if c != want || role != wantRole {
			t.Fatalf("step %d: update %d of %v in swarm %d: counts %+v, role %d, want %+v, %d", step, u, p.AddrPort, ih, c, role, want, wantRole)
		}
		if len(peers) != min(numWant, avail) {
			t.Fatalf("step %d: %d peers for numwant %d with %d to give", step, len(peers), numWant, avail)
		}
		seen := map[netip.AddrPort]bool{}
		for _, q := range peers {
			seeder, ok := model[key{ih, q.AddrPort}]
			switch {
			case !ok:
				t.Fatalf("step %d: peer %v is not in swarm %d", step, q.AddrPort, ih)
			case q.AddrPort == p.AddrPort:
				t.Fatalf("step %d: the announcer %v got itself", step, p.AddrPort)
			case seeder && u.Seeder():
				t.Fatalf("step %d: a seeder got seeder %v", step, q.AddrPort)
			case seen[q.AddrPort]:
				t.Fatalf("step %d: peer %v given twice", step, q.AddrPort)
			}
			seen[q.AddrPort] = true
		}

		k := key{ih, p.AddrPort}
		switch u {
		case storage.UpdateDelete:
			delete(model, k)
		case storage.UpdateGraduate:
			model[k] = true
			downloads[ih]++
		default:
			model[k] = u.Seeder()
		}
		if step%97 != 0 && step != steps-1 {
			continue
		}
		for ih := range swarms {
			for _, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
				var all []string
				for k := range model {
					if k.ih == ih && k.addr.Addr().Is4() == (af == bittorrent.IPv4) {
						all = append(all, k.addr.String())
					}
				}
				outsider := Peer4(1 << 20)
				if af == bittorrent.IPv6 {
					outsider = Peer6(1 << 20)
				}
				peers, _, _ := announce(t, s, InfoHash(ih), false, population, outsider)
				sort.Strings(all)
				if got := addrs(peers); !sameSet(got, all) {
					t.Fatalf("step %d, swarm %d %s: peers %v, want %v", step, ih, af, got, all)
				}
			}
		}
	}
}
