package memory

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// age sets the last-seen stamp of p in ih's swarm, as if it had last
// announced at t.
func age(tb testing.TB, s *PeerStore, ih bittorrent.InfoHash, p bittorrent.Peer, t time.Time) {
	tb.Helper()
	key, af, _ := peerKey(p)
	l := &s.layouts[af]
	sh := s.shardFor(ih)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	f := s.swarmOf(ih).fam(af)
	i := f.find(l, key[:l.keyLen])
	if i < 0 {
		tb.Fatalf("peer %v not stored", p.AddrPort)
	}
	binary.LittleEndian.PutUint16(f.rec(l, i)[l.stampOff:], s.stamps.fromUnix(t.Unix()))
}

// TestCollectGarbageByAge checks that collection removes exactly the peers
// last seen before the cutoff, in a swarm large enough to be collected in
// several batches, and gives back the space they held.
func TestCollectGarbageByAge(t *testing.T) {
	// With peer IDs kept, which show that records move whole.
	s := newLayoutStore(t, locality.Config{}, defaultFlatMax, keepIDs)
	t.Cleanup(func() { storagetestStop(t, s) })
	ih := storagetest.InfoHash(1)
	const n = 3 * gcBatch
	const kept = (n + 9) / 10 // i%10 == 0, all of them seeders (i%5 == 0)
	ids := map[netip.AddrPort]bittorrent.PeerID{}
	now := time.Now()
	for i := range n {
		p := storagetest.Peer4(i)
		ids[p.AddrPort] = p.ID
		if err := s.PutLeecher(ih, p); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if err := s.PutSeeder(ih, p); err != nil {
				t.Fatal(err)
			}
		}
		if i%10 != 0 { // keep one peer in ten
			age(t, s, ih, p, now.Add(-time.Hour))
		}
	}
	capBefore := cap(s.swarmOf(ih).v4.recs)

	if err := s.CollectGarbage(now.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	c, _ := s.ScrapeSwarm(ih, bittorrent.IPv4)
	if want := (storage.Counts{Seeders: kept}); c != want {
		t.Fatalf("counts %+v, want %+v", c, want)
	}
	peers, _, _, _ := s.AnnouncePeers(nil, ih, false, n, storagetest.Peer4(n+1))
	if len(peers) != kept {
		t.Fatalf("announce gave %d peers, want %d", len(peers), kept)
	}
	for _, p := range peers {
		if p.ID != ids[p.AddrPort] {
			t.Fatalf("peer %v came back with another peer's ID", p.AddrPort)
		}
	}
	if capAfter := cap(s.swarmOf(ih).v4.recs); capAfter >= capBefore/2 {
		t.Errorf("record space %d bytes after collecting 90%% of the peers, was %d", capAfter, capBefore)
	}
}

func TestInvalidPeerAddress(t *testing.T) {
	s := newStore(t)
	t.Cleanup(func() { storagetestStop(t, s) })
	var zero bittorrent.Peer
	ih := storagetest.InfoHash(1)
	if err := s.PutSeeder(ih, zero); err == nil {
		t.Error("PutSeeder of a peer without an address: no error")
	}
	if _, _, _, err := s.AnnouncePeers(nil, ih, false, 10, zero); err == nil {
		t.Error("AnnouncePeers for a peer without an address: no error")
	}
	if err := s.DeletePeer(ih, zero); err != nil {
		t.Errorf("DeletePeer of a peer without an address: %v", err)
	}
	if st, _ := s.Stats(); st != (storage.Stats{}) {
		t.Errorf("stats %+v, want nothing stored", st)
	}
}
