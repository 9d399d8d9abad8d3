package clients

import (
	"context"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/prereq"
	"github.com/chihaya/chihaya/internal/proctest"
)

// scenarioTimeout bounds one seed-and-download; on loopback the transfer
// itself takes about a second, the rest is client start-up.
const scenarioTimeout = 90 * time.Second

// TestSeedAndDownload has one real client seed a torrent and another
// download it, meeting only through the tracker; then the download must be
// intact and the tracker's scrape must show two seeders and one completed
// download (every downloader here announces event=completed).
func TestSeedAndDownload(t *testing.T) {
	tests := []struct {
		name       string
		host       string // loopback address of the tracker and the clients
		transport  string // how the clients announce
		seeder     string
		downloader string
	}{
		// Transmission waits for its 10 s rechoke timer before it unchokes
		// the downloader: start these first.
		{"transmission-to-aria2/http", "127.0.0.1", "http", "transmission", "aria2"},
		{"libtorrent/http", "127.0.0.1", "http", "libtorrent", "libtorrent"},
		{"libtorrent/udp", "127.0.0.1", "udp", "libtorrent", "libtorrent"},
		{"libtorrent/http/ipv6", "::1", "http", "libtorrent", "libtorrent"},
		{"libtorrent/udp/ipv6", "::1", "udp", "libtorrent", "libtorrent"},
		{"aria2/http", "127.0.0.1", "http", "aria2", "aria2"},
		{"libtorrent-to-qbittorrent/http", "127.0.0.1", "http", "libtorrent", "qbittorrent"},
		{"qbittorrent/udp", "127.0.0.1", "udp", "qbittorrent", "qbittorrent"},
		{"transmission-to-libtorrent/udp", "127.0.0.1", "udp", "transmission", "libtorrent"},
		{"aria2/http/ipv6", "::1", "http", "aria2", "aria2"},
		{"qbittorrent/http/ipv6", "::1", "http", "qbittorrent", "qbittorrent"},
		{"qbittorrent/udp/ipv6", "::1", "udp", "qbittorrent", "qbittorrent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prereq.Program(t, "mktorrent", "mktorrent")
			installed[tc.seeder](t)
			installed[tc.downloader](t)
			seedAndDownload(t, tc.host, tc.transport, clients[tc.seeder], clients[tc.downloader])
		})
	}
}

// seedAndDownload starts a tracker on host and a torrent announcing over
// transport, has seeder seed it and then downloader fetch it.
func seedAndDownload(t *testing.T, host, transport string, seeder, downloader client) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	tr := startTracker(t, host)
	s := newSwarm(t, tr, transport)
	scrapeUntil := func(what string, want func(counts) bool, procs ...*proctest.Proc) {
		t.Helper()
		waitFor(t, ctx, what, func() (bool, string) {
			c, err := tr.scrape(s.infoHash)
			if err != nil {
				return false, err.Error()
			}
			return want(c), c.String()
		}, procs...)
	}

	// The downloader must find the seeder in its first announce reply: the
	// next one is half an hour away.
	seed, _ := seeder(t, ctx, s, true)
	scrapeUntil("the seeder joins the swarm", func(c counts) bool {
		return c.Complete == 1 && c.Incomplete == 0
	}, seed)

	t.Logf("%5.1fs: the seeder is in the swarm", time.Since(begin).Seconds())
	down, dir := downloader(t, ctx, s, false)
	waitFor(t, ctx, "the download is intact", func() (bool, string) { return s.intact(dir) }, seed, down)
	t.Logf("%5.1fs: the download is intact", time.Since(begin).Seconds())
	scrapeUntil("the swarm shows two seeders and one completed download", func(c counts) bool {
		return c.Complete == 2 && c.Incomplete == 0 && c.Downloaded == 1
	}, seed, down)
	t.Logf("%5.1fs: the scrape shows the completed download", time.Since(begin).Seconds())
}
