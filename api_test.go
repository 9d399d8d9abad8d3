package chihaya

import (
	"context"
	"net/netip"
	"reflect"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/operator"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/memory"
)

// memoryStore is a memory store for the adapter's tests, with locality by
// subnet when local.
func memoryStore(tb testing.TB, local bool) storage.PeerStore {
	tb.Helper()
	cfg := memory.Config{}.WithDefaults()
	if local {
		cfg.Locality = locality.Config{Enabled: true}.WithDefaults()
	}
	s, err := memory.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func apiPeer(a string) bittorrent.Peer {
	return bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.MustParseAddr(a), 6881)}
}

// TestOperatorStore: the operator server sees the store's swarms with
// each family's counts where the operator looks for that family.
func TestOperatorStore(t *testing.T) {
	s := memoryStore(t, true)
	ih1, ih2 := bittorrent.InfoHash{1}, bittorrent.InfoHash{2}
	for _, err := range []error{
		s.PutSeeder(ih1, apiPeer("10.0.0.1")),
		s.GraduateLeecher(ih1, apiPeer("10.0.0.2")),
		s.PutLeecher(ih1, apiPeer("2001:db8::1")),
		s.PutLeecher(ih2, apiPeer("10.0.1.1")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	o, err := newOperatorStore(s)
	if err != nil {
		t.Fatal(err)
	}
	st, err := o.Stats()
	if want := (operator.Stats{Swarms: [2]uint64{operator.IPv4: 2, operator.IPv6: 1}, Seeders: [2]uint64{operator.IPv4: 2}, Leechers: [2]uint64{operator.IPv4: 1, operator.IPv6: 1}}); err != nil || st != want {
		t.Errorf("Stats = %+v, %v; want %+v", st, err, want)
	}
	want1 := operator.Swarm{InfoHash: ih1, Seeders: [2]uint32{operator.IPv4: 2}, Leechers: [2]uint32{operator.IPv6: 1}, Downloads: 1}
	want2 := operator.Swarm{InfoHash: ih2, Leechers: [2]uint32{operator.IPv4: 1}}
	if sw, err := o.Swarm(ih1); err != nil || sw != want1 {
		t.Errorf("Swarm(1) = %+v, %v; want %+v", sw, err, want1)
	}
	if sw, err := o.Swarm([20]byte{3}); err != nil || sw != (operator.Swarm{InfoHash: [20]byte{3}}) {
		t.Errorf("Swarm of an unknown torrent = %+v, %v; want zeros", sw, err)
	}
	seen := map[[20]byte]operator.Swarm{}
	if err := o.Walk(context.Background(), func(batch []operator.Swarm) error {
		for _, sw := range batch {
			if _, dup := seen[sw.InfoHash]; dup {
				t.Errorf("Walk visited %x twice", sw.InfoHash)
			}
			seen[sw.InfoHash] = sw
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := map[[20]byte]operator.Swarm{ih1: want1, ih2: want2}; !reflect.DeepEqual(seen, want) {
		t.Errorf("Walk saw %+v; want %+v", seen, want)
	}
	groups, err := o.Groups(ih1)
	wantGroups := []operator.Group{
		{Name: "10.0.0.0/24", Family: operator.IPv4, Seeders: 2},
		{Name: "2001:db8::/64", Family: operator.IPv6, Leechers: 1},
	}
	if err != nil || !reflect.DeepEqual(groups, wantGroups) {
		t.Errorf("Groups = %+v, %v; want %+v", groups, err, wantGroups)
	}
	if groups, err := o.Groups([20]byte{3}); err != nil || groups != nil {
		t.Errorf("Groups of an unknown torrent = %+v, %v; want none", groups, err)
	}

	// A store that cannot list its swarms cannot serve the API.
	if _, err := newOperatorStore(struct{ storage.PeerStore }{s}); err == nil || err.Error() != "api: the store cannot list its swarms" {
		t.Errorf("newOperatorStore of a store without a listing: %v", err)
	}
}

// BenchmarkOperatorStoreWalk is a walk of 10,000 swarms through the
// adapter: its allocations are the store's own walk's and one buffer,
// none per swarm (compare BenchmarkStoreWalk).
func BenchmarkOperatorStoreWalk(b *testing.B) {
	s := fillStore(b, 10000)
	o, err := newOperatorStore(s)
	if err != nil {
		b.Fatal(err)
	}
	var peers uint64
	b.ReportAllocs()
	for b.Loop() {
		_ = o.Walk(context.Background(), func(batch []operator.Swarm) error {
			for i := range batch {
				peers += batch[i].Peers()
			}
			return nil
		})
	}
}

// BenchmarkStoreWalk is the same walk straight from the store.
func BenchmarkStoreWalk(b *testing.B) {
	s := fillStore(b, 10000)
	var peers uint64
	b.ReportAllocs()
	for b.Loop() {
		_ = s.(storage.Lister).Walk(context.Background(), nil, func(batch []storage.Swarm) error {
			for i := range batch {
				peers += batch[i].Peers()
			}
			return nil
		})
	}
}

func fillStore(b *testing.B, swarms int) storage.PeerStore {
	b.Helper()
	s := memoryStore(b, false)
	for i := range swarms {
		ih := bittorrent.InfoHash{byte(i), byte(i >> 8)}
		if err := s.PutSeeder(ih, apiPeer("10.0.0.1")); err != nil {
			b.Fatal(err)
		}
	}
	return s
}
