package storage

import (
	"cmp"
	"context"
	"slices"

	"github.com/chihaya/chihaya/bittorrent"
)

// Swarm is one swarm's counts as a listing reports them: peers by address
// family (indexed by bittorrent.AddressFamily) and the torrent's completed
// downloads, which are not kept per family.
type Swarm struct {
	InfoHash  bittorrent.InfoHash
	Seeders   [2]uint32
	Leechers  [2]uint32
	Downloads uint32
}

// Peers returns the swarm's seeders and leechers of both families.
func (s *Swarm) Peers() uint64 {
	return uint64(s.Seeders[0]) + uint64(s.Seeders[1]) + uint64(s.Leechers[0]) + uint64(s.Leechers[1])
}

// Group is the peers of one swarm in one locality group of the nearest
// tier (a rack, or a subnet), for one address family.
type Group struct {
	// Name is the group's name (locality.Classifier.GroupName): its
	// tiers' groups, the farthest first ("zone-a/rack-1", "(none)" for a
	// tier the peers are in no group of), or its prefix ("10.1.2.0/24")
	// when locality groups by subnet.
	Name     string
	Family   bittorrent.AddressFamily
	Seeders  uint32
	Leechers uint32
}

// Lister is implemented by stores that can walk their swarms: the
// operator API, the status page and the HTTP full scrape read the store
// through it, never on a request path of the tracker.
//
// The contract (storagetest.RunLister checks it):
//
//   - Walk calls fn with batches of the swarms whose info hash keep
//     accepts (every swarm when keep is nil), until every swarm has been
//     visited, fn returns an error (which Walk returns) or ctx is done.
//     A swarm that exists throughout the walk is visited exactly once;
//     one created or emptied during it may or may not be. keep is called
//     while the driver holds its locks, so it must be quick and must not
//     block; fn is never called with a lock held, so it may block (write
//     to a client). A batch is only valid until fn returns.
//   - Groups returns the peers of ih's swarm counted by locality group of
//     the nearest tier, sorted by family then name; nil when locality is
//     off or the swarm has no peers.
type Lister interface {
	Walk(ctx context.Context, keep func(bittorrent.InfoHash) bool, fn func(batch []Swarm) error) error
	Groups(ih bittorrent.InfoHash) ([]Group, error)
}

// SortedGroups returns the groups counted in m as Lister.Groups returns
// them: sorted by family then name, nil when there are none.
func SortedGroups[K comparable](m map[K]*Group) []Group {
	if len(m) == 0 {
		return nil
	}
	out := make([]Group, 0, len(m))
	for _, g := range m {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b Group) int {
		return cmp.Or(cmp.Compare(a.Family, b.Family), cmp.Compare(a.Name, b.Name))
	})
	return out
}
