package memory

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage/locality"
)

// TestSnapshotKeepsWebSocketDownloads: the downloads counted from
// WebSocket peers survive a restart like the others, in a swarm that has
// both kinds of peers and in one that has only WebSocket peers. (The
// WebSocket peers themselves are not kept: their sockets die with the
// process.)
func TestSnapshotKeepsWebSocketDownloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	a := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	both, webOnly := bittorrent.InfoHash{1}, bittorrent.InfoHash{2}
	native := bittorrent.Peer{AddrPort: netip.MustParseAddrPort("10.0.0.1:6881")}
	web := func(i byte) bittorrent.Peer {
		return bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, i}), 6881), Kind: bittorrent.WebSocketPeer}
	}
	for _, step := range []error{
		a.GraduateLeecher(both, native),
		a.GraduateLeecher(both, web(1)),
		a.GraduateLeecher(both, web(2)),
		a.GraduateLeecher(webOnly, web(3)),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	want := map[bittorrent.InfoHash]uint32{both: 3, webOnly: 1}
	for ih, n := range want {
		if c, _ := a.ScrapeSwarm(ih, bittorrent.IPv4); c.Downloads != n {
			t.Fatalf("before: swarm %x has %d downloads, want %d", ih[:1], c.Downloads, n)
		}
	}
	if err := a.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	b := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	for ih, n := range want {
		if c, _ := b.ScrapeSwarm(ih, bittorrent.IPv4); c.Downloads != n {
			t.Fatalf("after restore: swarm %x has %d downloads, want %d", ih[:1], c.Downloads, n)
		}
	}
	// The restored counts go on from there, and a second round trip
	// counts nothing twice.
	if err := b.GraduateLeecher(webOnly, web(4)); err != nil {
		t.Fatal(err)
	}
	want[webOnly]++
	if err := b.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	c := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	for ih, n := range want {
		if got, _ := c.ScrapeSwarm(ih, bittorrent.IPv4); got.Downloads != n {
			t.Fatalf("after a second restore: swarm %x has %d downloads, want %d", ih[:1], got.Downloads, n)
		}
	}
}
