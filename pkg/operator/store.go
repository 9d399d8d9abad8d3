package operator

import "context"

// The operator server reads the tracker's store through Store, and counts
// with the plain types below, so that this package needs none of the
// tracker's own packages (pkg/ imports only the standard library and the
// chosen libraries). The daemon hands it an adapter over its
// storage.PeerStore and storage.Lister; an info hash is its 20 bytes.

// Family is an address family: the index of the per-family counts.
type Family uint8

// The address families.
const (
	IPv4 Family = iota
	IPv6
)

// String returns "ipv4" or "ipv6", as the API writes it.
func (f Family) String() string {
	if f == IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// Stats are the store's totals by address family (indexed by Family).
type Stats struct {
	Swarms   [2]uint64
	Seeders  [2]uint64
	Leechers [2]uint64
}

// Swarm is one swarm's counts: peers by address family (indexed by
// Family) and the torrent's completed downloads, which are not kept per
// family.
type Swarm struct {
	InfoHash  [20]byte
	Seeders   [2]uint32
	Leechers  [2]uint32
	Downloads uint32
}

// Peers returns the swarm's seeders and leechers of both families.
func (s *Swarm) Peers() uint64 {
	return uint64(s.Seeders[0]) + uint64(s.Seeders[1]) + uint64(s.Leechers[0]) + uint64(s.Leechers[1])
}

// Group is the peers of one swarm in one locality group, for one address
// family.
type Group struct {
	// Name is the group's name: its tiers' groups, the farthest first
	// ("zone-a/rack-1"), or its prefix ("10.1.2.0/24").
	Name     string
	Family   Family
	Seeders  uint32
	Leechers uint32
}

// Store is what the operator server reads of the tracker's store. None of
// it is on a request path of the tracker.
type Store interface {
	// Stats returns the store's totals.
	Stats() (Stats, error)
	// Swarm returns the counts of ih's swarm; zeros for a swarm the store
	// does not have.
	Swarm(ih [20]byte) (Swarm, error)
	// Walk calls fn with batches of every swarm until each has been
	// visited, fn returns an error (which Walk returns) or ctx is done. A
	// swarm that exists throughout the walk is visited exactly once. A
	// batch is only valid until fn returns.
	Walk(ctx context.Context, fn func(batch []Swarm) error) error
	// Groups returns the peers of ih's swarm by locality group, sorted by
	// family then name; nil when locality is off or the swarm has no
	// peers.
	Groups(ih [20]byte) ([]Group, error)
}
