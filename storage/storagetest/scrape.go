package storagetest

import (
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// testScrapeSwarms checks that a batched scrape answers every hash in
// request order, unknown and repeated hashes included, per family.
func testScrapeSwarms(t *testing.T, s storage.PeerStore) {
	a, b, unknown := InfoHash(1), InfoHash(2), InfoHash(3)
	must(t, "PutSeeder", s.PutSeeder(a, Peer4(1)))
	must(t, "PutLeecher", s.PutLeecher(a, Peer4(2)))
	must(t, "PutLeecher", s.PutLeecher(a, Peer4(3)))
	must(t, "PutLeecher", s.PutLeecher(b, Peer4(4)))
	must(t, "GraduateLeecher", s.GraduateLeecher(b, Peer4(4)))
	must(t, "PutSeeder", s.PutSeeder(b, Peer6(5)))

	ihs := []bittorrent.InfoHash{b, unknown, a, b}
	for _, tc := range []struct {
		af   bittorrent.AddressFamily
		want []storage.Counts
	}{
		{bittorrent.IPv4, []storage.Counts{{Seeders: 1, Downloads: 1}, {}, {Seeders: 1, Leechers: 2}, {Seeders: 1, Downloads: 1}}},
		{bittorrent.IPv6, []storage.Counts{{Seeders: 1, Downloads: 1}, {}, {}, {Seeders: 1, Downloads: 1}}},
	} {
		got := make([]storage.Counts, len(ihs))
		for i := range got {
			got[i] = storage.Counts{Seeders: 99} // must be overwritten
		}
		must(t, "ScrapeSwarms", s.ScrapeSwarms(got, ihs, tc.af))
		for i := range ihs {
			if got[i] != tc.want[i] {
				t.Errorf("%v: ScrapeSwarms[%d] = %+v, want %+v", tc.af, i, got[i], tc.want[i])
			}
			if one := scrape(t, s, ihs[i], tc.af); one != got[i] {
				t.Errorf("%v: ScrapeSwarms[%d] = %+v, but ScrapeSwarm says %+v", tc.af, i, got[i], one)
			}
		}
	}
	must(t, "ScrapeSwarms of nothing", s.ScrapeSwarms(nil, nil, bittorrent.IPv4))
}
