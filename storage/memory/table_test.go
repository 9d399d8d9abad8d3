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

// TestSwarmTableShrinks checks that a table whose swarms leave gives its
// slots back: a tracker that once held many swarms and now holds few
// keeps slots for the few, not for its peak (and not tombstones for the
// rest, which lookups would probe through).
func TestSwarmTableShrinks(t *testing.T) {
	var tab swarmTable
	const peak, kept = 100_000, 100
	hashOf := func(i uint32) (uint32, bittorrent.InfoHash) {
		var ih bittorrent.InfoHash
		binary.LittleEndian.PutUint32(ih[:], i)
		return i * 2654435761, ih
	}
	for i := range uint32(peak) {
		h, ih := hashOf(i)
		tab.insert(h, ih, &swarm{downloads: i})
	}
	peakSlots := len(tab.slots)
	for i := uint32(kept); i < peak; i++ {
		h, ih := hashOf(i)
		tab.remove(h, ih)
	}
	if tab.len() != kept || len(tab.slots) > 8*kept {
		t.Fatalf("after %d of %d swarms left: %d slots (%d at the peak), %d tombstones; want at most %d slots", kept, peak, len(tab.slots), peakSlots, tab.dead, 8*kept)
	}
	for i := range uint32(kept) {
		h, ih := hashOf(i)
		if sw := tab.get(h, ih); sw == nil || sw.downloads != i {
			t.Fatalf("swarm %d lost by the shrink", i)
		}
		tab.remove(h, ih)
	}
	if tab.len() != 0 || len(tab.slots) > minTable {
		t.Fatalf("empty table keeps %d slots, want at most %d", len(tab.slots), minTable)
	}
}

// TestSwarmTableWalkUnderChurn is the table against a Go map while a walk
// (collection's, which releases the lock between batches) is under way:
// between the walk's steps swarms come and go, and the table grows and
// shrinks. Every swarm there from the walk's start to its end must be
// given exactly once, and a swarm given is one that was there at some
// point (the walker looks it up again, as collection does).
func TestSwarmTableWalkUnderChurn(t *testing.T) {
	for _, tc := range []struct{ spread, keys uint32 }{{3, 300}, {1<<32 - 1, 5000}} {
		spread := tc.spread // few hashes: long chains of collisions
		rng := rand.New(rand.NewPCG(uint64(spread), 11))
		var tab swarmTable
		want := map[bittorrent.InfoHash]*swarm{}
		hashOf := func(ih bittorrent.InfoHash) uint32 {
			return (binary.LittleEndian.Uint32(ih[:]) * 2654435761) % spread
		}
		ever := map[*swarm]bool{}
		churn := func(n, keys int, bias int, gone map[*swarm]bool) {
			for range n {
				var ih bittorrent.InfoHash
				binary.LittleEndian.PutUint32(ih[:], uint32(rng.IntN(keys)))
				h := hashOf(ih)
				if got := tab.get(h, ih); got != want[ih] {
					t.Fatalf("spread %d: get(%x) = %p, want %p", spread, ih[:4], got, want[ih])
				}
				if want[ih] == nil {
					if rng.IntN(100) < bias {
						sw := &swarm{}
						tab.insert(h, ih, sw)
						want[ih], ever[sw] = sw, true
					}
				} else if rng.IntN(100) >= bias {
					gone[want[ih]] = true
					tab.remove(h, ih)
					delete(want, ih)
				}
			}
		}
		for round := range 40 {
			keys := 50 + rng.IntN(int(tc.keys))
			churn(3*keys, keys, 90, map[*swarm]bool{}) // fill
			start := map[*swarm]bool{}
			for _, sw := range want {
				start[sw] = true
			}
			gone := map[*swarm]bool{}
			given := map[*swarm]bool{}
			bias := 10 + rng.IntN(80) // this walk's churn grows or shrinks the table
			for ih, sw := range tab.all() {
				if given[sw] || !ever[sw] {
					t.Fatalf("spread %d, round %d: walk gave %p twice or never inserted", spread, round, sw)
				}
				given[sw] = true
				if want[ih] == sw && rng.IntN(3) == 0 {
					tab.remove(hashOf(ih), ih) // the walker drops it
					delete(want, ih)
				}
				if rng.IntN(8) == 0 { // the lock released: others run
					churn(rng.IntN(200), keys, bias, gone)
				}
			}
			for sw := range start {
				if !given[sw] && !gone[sw] {
					t.Fatalf("spread %d, round %d: the walk missed a swarm there throughout", spread, round)
				}
			}
			if tab.len() != len(want) || (tab.n+tab.dead)*4 > uint32(len(tab.slots))*3 {
				t.Fatalf("spread %d, round %d: len %d want %d; %d live, %d dead in %d slots", spread, round, tab.len(), len(want), tab.n, tab.dead, len(tab.slots))
			}
			if len(tab.slots) > minTable && tab.len()*8 < len(tab.slots) {
				t.Fatalf("spread %d, round %d: %d swarms in %d slots", spread, round, tab.len(), len(tab.slots))
			}
		}
	}
}
