package memory

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
)

// swarmOf returns the swarm of ih, or nil; the caller holds its shard's
// lock, or nothing else runs.
func (s *PeerStore) swarmOf(ih bittorrent.InfoHash) *swarm {
	sh, h := s.locate(ih)
	return sh.swarms.get(h, ih)
}

// TestSwarmTable checks the table against a Go map through random
// inserts, removals and lookups, with hashes drawn from a few values so
// that chains of colliding slots, tombstones inside them and rebuilds
// are all exercised, and checks that a walk yields every swarm once.
func TestSwarmTable(t *testing.T) {
	for _, spread := range []uint32{1, 7, 1<<32 - 1} {
		rng := rand.New(rand.NewPCG(uint64(spread), 3))
		var tab swarmTable
		want := map[bittorrent.InfoHash]*swarm{}
		hashOf := func(ih bittorrent.InfoHash) uint32 {
			return binary.LittleEndian.Uint32(ih[:]) % spread
		}
		for step := range 20_000 {
			var ih bittorrent.InfoHash
			binary.LittleEndian.PutUint32(ih[:], uint32(rng.IntN(300)))
			h := hashOf(ih)
			switch got := tab.get(h, ih); {
			case got != want[ih]:
				t.Fatalf("spread %d, step %d: get(%x) = %p, want %p", spread, step, ih[:4], got, want[ih])
			case got == nil:
				sw := &swarm{downloads: uint32(step)}
				tab.insert(h, ih, sw)
				want[ih] = sw
			case rng.IntN(2) == 0:
				tab.remove(h, ih)
				delete(want, ih)
			}
			if tab.len() != len(want) {
				t.Fatalf("spread %d, step %d: len %d, want %d", spread, step, tab.len(), len(want))
			}
			if (tab.n+tab.dead)*4 > uint32(len(tab.slots))*3 {
				t.Fatalf("spread %d, step %d: %d live and %d dead in %d slots", spread, step, tab.n, tab.dead, len(tab.slots))
			}
		}
		seen := map[bittorrent.InfoHash]bool{}
		for ih, sw := range tab.all() {
			if seen[ih] || want[ih] != sw {
				t.Fatalf("spread %d: walk gave %x (%p) again or wrongly; want %p", spread, ih[:4], sw, want[ih])
			}
			seen[ih] = true
			// Removing the swarm being walked is allowed.
			tab.remove(hashOf(ih), ih)
		}
		if len(seen) != len(want) || tab.len() != 0 {
			t.Fatalf("spread %d: walk gave %d swarms of %d, %d left", spread, len(seen), len(want), tab.len())
		}
	}
}
