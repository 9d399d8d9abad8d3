// Package storagetest holds the storage.PeerStore contract as tests (Run)
// and the benchmarks every driver is measured with (RunBenchmarks). A
// driver's test file only calls them with a constructor for a fresh store.
package storagetest

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// Run checks the PeerStore contract, one named subtest per clause. newStore
// is called once per subtest; Run stops each store when its subtest ends,
// so newStore need not (Stop may therefore be called twice).
func Run(t *testing.T, newStore func(t *testing.T) storage.PeerStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.PeerStore)
	}{
		{"PutAndDelete", testPutAndDelete},
		{"SeederLeecherExclusive", testExclusive},
		{"GraduateLeecher", testGraduate},
		{"PeerIDReplaced", testPeerIDReplaced},
		{"AnnounceNeverReturnsAnnouncer", testAnnounceNotSelf},
		{"AnnounceRoles", testAnnounceRoles},
		{"AnnounceNumWant", testAnnounceNumWant},
		{"AnnounceFamiliesApart", testFamiliesApart},
		{"AnnounceCountsAndRole", testAnnounceCountsAndRole},
		{"AnnounceAppendsToDst", testAnnounceAppends},
		{"UnknownSwarm", testUnknownSwarm},
		{"ScrapeSwarms", testScrapeSwarms},
		{"CollectGarbage", testCollectGarbage},
		{"Stats", testStats},
		{"LargeSwarm", testLargeSwarm},
		{"MatchesModel", testMatchesModel},
		{"Concurrent", testConcurrent},
		{"ConcurrentCollection", testConcurrentCollection},
		{"ReadyAndStop", testReadyAndStop},
		{"KindsApart", testKindsApart},
		{"KindsDeleteAndGraduate", testKindsDeleteAndGraduate},
		{"KindsCollected", testKindsCollected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { stop(t, s) })
			tc.fn(t, s)
		})
	}
}

func stop(t testing.TB, s storage.PeerStore) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// InfoHash returns a distinct info hash for n.
func InfoHash(n int) bittorrent.InfoHash {
	var ih bittorrent.InfoHash
	binary.BigEndian.PutUint64(ih[:8], uint64(n))
	copy(ih[8:], "storagetest!")
	return ih
}

// Peer4 returns a distinct IPv4 peer for n (n < 2^24), in 10.0.0.0/8, with
// a peer ID derived from n.
func Peer4(n int) bittorrent.Peer {
	a := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	return bittorrent.Peer{ID: peerID(n), AddrPort: netip.AddrPortFrom(a, 6881)}
}

// Peer6 returns a distinct IPv6 peer for n, in 2001:db8::/32.
func Peer6(n int) bittorrent.Peer {
	var b [16]byte
	b[0], b[1], b[2], b[3] = 0x20, 0x01, 0x0d, 0xb8
	binary.BigEndian.PutUint64(b[8:], uint64(n))
	return bittorrent.Peer{ID: peerID(n), AddrPort: netip.AddrPortFrom(netip.AddrFrom16(b), 6881)}
}

func peerID(n int) bittorrent.PeerID {
	var id bittorrent.PeerID
	copy(id[:], "-ST0001-")
	binary.BigEndian.PutUint64(id[12:], uint64(n))
	return id
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func scrape(t testing.TB, s storage.PeerStore, ih bittorrent.InfoHash, af bittorrent.AddressFamily) storage.Counts {
	t.Helper()
	c, err := s.ScrapeSwarm(ih, af)
	must(t, "ScrapeSwarm", err)
	return c
}

// announce returns every peer the store gives p (numWant large).
func announce(t testing.TB, s storage.PeerStore, ih bittorrent.InfoHash, seeder bool, numWant int, p bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role) {
	t.Helper()
	peers, c, role, err := s.AnnouncePeers(nil, ih, seeder, numWant, p)
	must(t, "AnnouncePeers", err)
	return peers, c, role
}

func addrs(peers []bittorrent.Peer) []string {
	out := make([]string, len(peers))
	for i, p := range peers {
		out[i] = p.AddrPort.String()
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func put(t testing.TB, s storage.PeerStore, ih bittorrent.InfoHash, seeder bool, peers ...bittorrent.Peer) {
	t.Helper()
	for _, p := range peers {
		if seeder {
			must(t, "PutSeeder", s.PutSeeder(ih, p))
		} else {
			must(t, "PutLeecher", s.PutLeecher(ih, p))
		}
	}
}
