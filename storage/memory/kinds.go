package memory

import "github.com/chihaya/chihaya/bittorrent"

// WebSocket peers (bittorrent.WebSocketPeer) live in a second set of shards
// of their own, built by the first WebSocket peer stored, so that a
// tracker without a WebSocket frontend pays one atomic load per announce
// for them. Peer selection never mixes the kinds; counts and scrapes add
// them up. The second set has no background work of its own: the
// store's collection and reporting walk it too. Snapshots leave its peers
// out, since the sockets they stand for die with the process, but keep
// its download counts (added into the native swarm's, see webDownloads).

var _ interface{ KeepsPeerKinds() } = (*PeerStore)(nil)

// KeepsPeerKinds marks the store as one that keeps WebSocket peers apart
// (storage.KindKeeper).
func (s *PeerStore) KeepsPeerKinds() {}

// ofKind returns the store of the peers of kind k: s itself for native
// peers, the WebSocket shards otherwise, built on first use with create,
// or nil without.
func (s *PeerStore) ofKind(k bittorrent.PeerKind, create bool) *PeerStore {
	if k == bittorrent.NativePeer {
		return s
	}
	if w := s.web.Load(); w != nil || !create {
		return w
	}
	s.web.CompareAndSwap(nil, newShards(s.cfg, bittorrent.WebSocketPeer))
	return s.web.Load()
}
