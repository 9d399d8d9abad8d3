package storage

import "github.com/chihaya/chihaya/bittorrent"

// Update is the change to a swarm that one announce asks for.
type Update uint8

// The updates an announce asks for.
const (
	// UpdateLeecher stores the announcer as a leecher (PutLeecher).
	UpdateLeecher Update = iota
	// UpdateSeeder stores it as a seeder (PutSeeder).
	UpdateSeeder
	// UpdateGraduate makes it a seeder and counts a download
	// (GraduateLeecher, the `completed` event).
	UpdateGraduate
	// UpdateDelete removes it (DeletePeer, the `stopped` event).
	UpdateDelete
)

// Seeder reports whether the announcer is a seeder once u is applied.
func (u Update) Seeder() bool { return u == UpdateSeeder || u == UpdateGraduate }

// Announcer is implemented by stores for which reading an announce's answer
// and applying its update together costs less than doing them apart: the
// Redis store does both in one round trip instead of two.
//
// Announce answers as AnnouncePeers does for an announcer that is a seeder
// when u.Seeder(), with the counts and the announcer's role as they were
// before the update, and applies u as PutLeecher, PutSeeder,
// GraduateLeecher or DeletePeer would, atomically with reading the counts.
// A caller that uses it does not apply the update again after its reply.
// On an error nothing was applied, or (a reply lost with its connection)
// possibly all of it, never a part.
type Announcer interface {
	Announce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, Counts, Role, error)
}

// AddrAnnouncer is implemented by Announcers that answer with less when the
// answer needs only the peers' addresses (a compact or UDP reply, or one
// without peer IDs): AnnounceAddrs is Announce, except that the peers it
// returns may have zero IDs, and, unless downloads, the download count may
// be zero (UDP's reply has none). The Redis store then reads the addresses
// without the stored values, a third of the bytes, and no download count.
type AddrAnnouncer interface {
	AnnounceAddrs(dst []bittorrent.Peer, ih bittorrent.InfoHash, u Update, numWant int, announcer bittorrent.Peer, downloads bool) ([]bittorrent.Peer, Counts, Role, error)
}

// CompactAnnouncer is implemented by Announcers that can write an answer's
// peers straight in their compact form (bittorrent.AnnounceResponse's
// CompactPeers): AnnounceCompact is Announce, except that it may append
// the peers, or some of them, to compact instead of to dst, without their
// IDs. The memory store copies them out of its records, which hold them
// in that form, instead of building a bittorrent.Peer for each one that
// the frontend then encodes again.
type CompactAnnouncer interface {
	AnnounceCompact(dst []bittorrent.Peer, compact []byte, ih bittorrent.InfoHash, u Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, []byte, Counts, Role, error)
}
