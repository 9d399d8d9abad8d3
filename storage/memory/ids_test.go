package memory

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// withoutIDs lets the contract, which expects peers back with the IDs they
// announced, run against a store that keeps no peer IDs (keep_peer_ids
// off): it remembers the ID of each peer put, checks that every native
// peer the store returns has an all-zero ID, and gives it back its ID, so
// that every other clause of the contract is checked as written.
type withoutIDs struct {
	*PeerStore
	t   testing.TB
	mu  sync.Mutex
	ids map[peerAt]bittorrent.PeerID
}

type peerAt struct {
	ih   bittorrent.InfoHash
	ap   netip.AddrPort
	kind bittorrent.PeerKind
}

// keepIDs turns keep_peer_ids on, for tests that follow records by
// their IDs.
func keepIDs(c *Config) { c.KeepPeerIDs = true }

func newWithoutIDs(t testing.TB, s *PeerStore) *withoutIDs {
	t.Helper()
	if s.layouts[0].idLen != 0 || s.layouts[1].idLen != 0 {
		t.Fatal("store keeps peer IDs; withoutIDs is for one that does not")
	}
	return &withoutIDs{PeerStore: s, t: t, ids: map[peerAt]bittorrent.PeerID{}}
}

func (w *withoutIDs) remember(ih bittorrent.InfoHash, p bittorrent.Peer) {
	w.mu.Lock()
	w.ids[peerAt{ih, p.AddrPort, p.Kind}] = p.ID
	w.mu.Unlock()
}

func (w *withoutIDs) PutSeeder(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	w.remember(ih, p)
	return w.PeerStore.PutSeeder(ih, p)
}

func (w *withoutIDs) PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	w.remember(ih, p)
	return w.PeerStore.PutLeecher(ih, p)
}

func (w *withoutIDs) GraduateLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	w.remember(ih, p)
	return w.PeerStore.GraduateLeecher(ih, p)
}

func (w *withoutIDs) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	n0 := len(dst)
	dst, c, role, err := w.PeerStore.AnnouncePeers(dst, ih, seeder, numWant, announcer)
	w.mu.Lock()
	for i := n0; i < len(dst); i++ {
		p := &dst[i]
		if p.Kind == bittorrent.NativePeer {
			if p.ID != (bittorrent.PeerID{}) {
				w.t.Errorf("peer %v came back with ID %x from a store that keeps none", p.AddrPort, p.ID[:])
			}
		} else if p.ID == (bittorrent.PeerID{}) {
			w.t.Errorf("WebSocket peer %v came back without its ID", p.AddrPort)
		}
		p.ID = w.ids[peerAt{ih, p.AddrPort, p.Kind}]
	}
	w.mu.Unlock()
	return dst, c, role, err
}

// TestPeerStoreKeepPeerIDs runs the contract as written, peer IDs
// included, with keep_peer_ids on.
func TestPeerStoreKeepPeerIDs(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.PeerStore {
		cfg := Config{}.WithDefaults()
		cfg.KeepPeerIDs = true
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestRecordSizes checks what keep_peer_ids costs a record.
func TestRecordSizes(t *testing.T) {
	for _, tc := range []struct {
		keep       bool
		kind       bittorrent.PeerKind
		ipv4, ipv6 int
	}{
		{false, bittorrent.NativePeer, 8, 20},
		{true, bittorrent.NativePeer, 28, 40},
		{false, bittorrent.WebSocketPeer, 28, 40}, // addressed by peer ID
	} {
		cfg := Config{}.WithDefaults()
		cfg.KeepPeerIDs = tc.keep
		s := newShards(cfg, tc.kind)
		if got := [2]int{s.layouts[0].stride, s.layouts[1].stride}; got != [2]int{tc.ipv4, tc.ipv6} {
			t.Errorf("keep_peer_ids %v, kind %v: records of %v bytes, want %d and %d", tc.keep, tc.kind, got, tc.ipv4, tc.ipv6)
		}
	}
}
