package redis

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// TestPeerStoreLocality runs the whole contract with locality on, then the
// locality rules, on a real redis-server.
func TestPeerStoreLocality(t *testing.T) {
	srv := startRedis(t)
	withLocality := func(lc locality.Config) func(*Config) {
		return func(c *Config) { c.Locality = lc }
	}
	t.Run("Contract", func(t *testing.T) {
		storagetest.Run(t, func(t *testing.T) storage.PeerStore {
			return newUnstopped(t, srv, withLocality(locality.Config{Enabled: true}.WithDefaults()))
		})
	})
	t.Run("Rules", func(t *testing.T) {
		storagetest.RunLocality(t, func(t *testing.T, lc locality.Config) storage.PeerStore {
			return newUnstopped(t, srv, withLocality(lc))
		})
	})
}

func BenchmarkPeerStoreLocality(b *testing.B) {
	srv := startRedis(b)
	storagetest.RunBenchmarks(b, func(b *testing.B) storage.PeerStore {
		return newUnstopped(b, srv, func(c *Config) {
			c.Locality = locality.Config{Enabled: true, MinOutsideShare: 0.1}.WithDefaults()
		})
	})
}

// TestLocalityKeysCollected checks that deletes and collection leave no
// locality keys behind: the roles' orders go with their last peer, and no
// key is made per cell.
func TestLocalityKeysCollected(t *testing.T) {
	srv := startRedis(t)
	s := newStore(t, srv, func(c *Config) { c.Locality = locality.Config{Enabled: true}.WithDefaults() })
	ih := storagetest.InfoHash(1)
	for i := range 40 {
		p := storagetest.Peer4(i * 97) // spread over several /24s
		if i%3 == 0 {
			must(t, "PutSeeder", s.PutSeeder(ih, p))
		} else {
			must(t, "PutLeecher", s.PutLeecher(ih, p))
		}
		must(t, "PutLeecher", s.PutLeecher(ih, storagetest.Peer6(i)))
	}
	for i := 0; i < 40; i += 4 {
		must(t, "DeletePeer", s.DeletePeer(ih, storagetest.Peer4(i*97)))
		must(t, "GraduateLeecher", s.GraduateLeecher(ih, storagetest.Peer4(i*97+1)))
	}
	keys := func() []string {
		t.Helper()
		k, err := srv.Conn(t).Keys(context.Background(), s.cfg.KeyPrefix+"*").Result()
		must(t, "KEYS", err)
		sort.Strings(k)
		return k
	}
	swarm := s.cfg.KeyPrefix + "{" + hex.EncodeToString(ih[:]) + "}"
	// No swarm index: collection finds swarms by SCAN.
	want := []string{s.cfg.KeyPrefix + "n", swarm + "4l", swarm + "4lz", swarm + "4s", swarm + "4sz",
		swarm + "6l", swarm + "6lz", swarm + "d"}
	if got := keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("before collection, keys %q, want %q", got, want)
	}
	must(t, "CollectGarbage", s.CollectGarbage(time.Now().Add(time.Hour)))
	want = []string{s.cfg.KeyPrefix + "n", swarm + "d"}
	if got := keys(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after collecting every peer, keys %q, want only %q", got, want)
	}
}

// BenchmarkAnnounceLocality is BenchmarkAnnounce with locality by /24,
// one announce in flight, and reports the same Redis figures (redis-µs/op
// is INFO commandstats, every command's usec summed). fill puts the peers
// of a swarm of 20 each in a /24 of its own (the spread an open tracker
// sees; so are those of swarms of 4 and 256), and those of a swarm of
// 1000 about 13 to a /24 (racks). The roles of a swarm of 4 are short
// (their hashes alone, put_local.lua), the others ordered.
func BenchmarkAnnounceLocality(b *testing.B) {
	for _, tc := range []struct {
		name         string
		swarms, size int
		noIDs        bool
	}{
		{"spread/swarm=4", 5000, 4, false}, // short roles: no sorted sets
		{"spread/swarm=20", 1000, 20, false},
		{"spread/swarm=256", 256, 256, false},
		{"racks/swarm=1000", 20, 1000, false},
		{"spread/swarm=4/keep_peer_ids=false", 5000, 4, true},
		{"spread/swarm=20/keep_peer_ids=false", 1000, 20, true},
		{"racks/swarm=1000/keep_peer_ids=false", 20, 1000, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, c, cpu := announceBench(b, tc.swarms, tc.size, func(c *Config) {
				c.Locality = locality.Config{Enabled: true}.WithDefaults()
				c.KeepPeerIDs = !tc.noIDs
			})
			b.ReportAllocs()
			b.ResetTimer()
			dst := make([]bittorrent.Peer, 0, 64)
			for i := range b.N {
				var err error
				if dst, err = announceAgain(s, dst, i%(tc.swarms*tc.size), tc.swarms, false); err != nil {
					b.Fatal(err)
				}
				if len(dst) == 0 {
					b.Fatal("an answer without peers")
				}
			}
			b.StopTimer()
			if testing.Verbose() {
				info, _ := c.Info(context.Background(), "commandstats").Result()
				b.Log(info)
			}
			reportRedis(b, c, cpu)
		})
	}
}

// TestLocalityOrdersMatchHashes drives one swarm through random puts,
// role changes, completions, new peer IDs, stops and (with a topology) a
// reload that moves peers to other cells, and checks after each round
// that every role's order holds exactly one member per peer of its hash:
// the peer's cell as its value names it, its address, its latest peer
// ID. Answers are read from the orders, so a member left behind would be
// a peer answered after it left. It runs with keep_peer_ids on and off
// (members and values without the IDs, which then read as zeros).
func TestLocalityOrdersMatchHashes(t *testing.T) {
	srv := startRedis(t)
	topo := filepath.Join(t.TempDir(), "topology.yaml")
	writeTopo := func(r1, r2 string) {
		t.Helper()
		y := "tiers:\n  - name: rack\n    groups:\n      - name: r1\n        cidrs: [" + r1 + "]\n      - name: r2\n        cidrs: [" + r2 + "]\n"
		if err := os.WriteFile(topo, []byte(y), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeTopo("10.1.0.0/16", "10.2.0.0/16, \"fd00::/16\"")
	for _, tc := range []struct {
		name string
		lc   locality.Config
		keep bool
	}{
		{"prefix", locality.Config{Enabled: true}.WithDefaults(), true},
		{"topology", locality.Config{Enabled: true, TopologyFile: topo}.WithDefaults(), true},
		{"prefix/keep_peer_ids=false", locality.Config{Enabled: true}.WithDefaults(), false},
		{"topology/keep_peer_ids=false", locality.Config{Enabled: true, TopologyFile: topo}.WithDefaults(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeTopo("10.1.0.0/16", "10.2.0.0/16, \"fd00::/16\"")
			s := newStore(t, srv, func(c *Config) { c.Locality, c.KeepPeerIDs = tc.lc, tc.keep })
			idLen := 0
			if tc.keep {
				idLen = 20
			}
			c := srv.Conn(t)
			ctx := context.Background()
			ih := storagetest.InfoHash(7)
			k := s.keys(ih)
			type stored struct {
				seeder bool
				id     bittorrent.PeerID
			}
			model := map[netip.AddrPort]stored{}
			rng := rand.New(rand.NewPCG(1, 2))
			peer := func() bittorrent.Peer {
				n := rng.IntN(60)
				a := netip.AddrFrom4([4]byte{10, byte(1 + n%3), byte(n % 5), byte(n)})
				if n%7 == 0 {
					a = netip.MustParseAddr(fmt.Sprintf("fd00::%x", n))
				}
				p := bittorrent.Peer{AddrPort: netip.AddrPortFrom(a, 6881)}
				copy(p.ID[:], fmt.Sprintf("-XX0001-%012d", rng.IntN(3)))
				return p
			}
			check := func(round int) {
				t.Helper()
				for f := range familyTag {
					for r := range 2 {
						values, err := c.HGetAll(ctx, k.roles[f][r]).Result()
						must(t, "HGETALL", err)
						members, err := c.ZRange(ctx, k.ordered[f][r], 0, -1).Result()
						must(t, "ZRANGE", err)
						// A short role has no order: its hash's values
						// carry the peer IDs (put_local.lua).
						short := len(members) == 0
						if short {
							if len(values) > 4 {
								t.Fatalf("round %d, family %d role %d: %d peers and no order", round, f, r, len(values))
							}
							for a, v := range values {
								m, ok := shortMember(a, v, idLen)
								if !ok {
									t.Fatalf("round %d: value %q of a short role", round, v)
								}
								members = append(members, m)
							}
						}
						if len(members) != len(values) {
							t.Fatalf("round %d, family %d role %d: %d members in order, %d peers in the hash", round, f, r, len(members), len(values))
						}
						for _, m := range members {
							id := m[len(m)-idLen:]
							m = m[:len(m)-idLen]
							addrLen := 6
							if f == 1 {
								addrLen = 18
							}
							addr, cell := m[len(m)-addrLen:], m[:len(m)-addrLen]
							v, ok := values[addr]
							if ok && short {
								v = v[:len(v)-idLen]
							}
							if !ok || v[4:] != cell {
								t.Fatalf("round %d: member of cell %q not in the hash as such (value %q, %v)", round, cell, v, ok)
							}
							p, _ := decodePeer([]byte(addr), []byte(id))
							want, ok := model[p.AddrPort]
							if !tc.keep {
								want.id = bittorrent.PeerID{}
							}
							if !ok || want.id != p.ID || want.seeder != (r == 0) {
								t.Fatalf("round %d: member %v %q seeder %v, want %+v (stored %v)", round, p.AddrPort, p.ID[:], r == 0, want, ok)
							}
						}
					}
				}
				var seeders, leechers [2]uint32
				for ap, st := range model {
					f := 0
					if ap.Addr().Is6() {
						f = 1
					}
					if st.seeder {
						seeders[f]++
					} else {
						leechers[f]++
					}
				}
				for f, af := range []bittorrent.AddressFamily{bittorrent.IPv4, bittorrent.IPv6} {
					got, err := s.ScrapeSwarm(ih, af)
					must(t, "scrape", err)
					if got.Seeders != seeders[f] || got.Leechers != leechers[f] {
						t.Fatalf("round %d: %s counts %+v, want %d seeders, %d leechers", round, af, got, seeders[f], leechers[f])
					}
				}
			}
			for round := range 8 {
				if round == 4 && tc.lc.TopologyFile != "" {
					// The racks swap: peers move as they announce again.
					writeTopo("10.2.0.0/16, \"fd00::/16\"", "10.1.0.0/16")
					must(t, "Reload", s.Reload())
					for ap, st := range model {
						p := bittorrent.Peer{AddrPort: ap, ID: st.id}
						u := storage.UpdateLeecher
						if st.seeder {
							u = storage.UpdateSeeder
						}
						_, _, _, err := s.Announce(nil, ih, u, 0, p)
						must(t, "announce again", err)
					}
					check(round)
				}
				for range 100 {
					p := peer()
					u := []storage.Update{storage.UpdateLeecher, storage.UpdateSeeder, storage.UpdateGraduate, storage.UpdateDelete}[rng.IntN(4)]
					_, _, _, err := s.Announce(nil, ih, u, 5, p)
					must(t, "announce", err)
					if u == storage.UpdateDelete {
						delete(model, p.AddrPort)
					} else {
						model[p.AddrPort] = stored{seeder: u.Seeder(), id: p.ID}
					}
				}
				check(round)
			}
		})
	}
}

// TestLocalityEdgeOfSubnet: a member is the address, the port and the
// peer ID, so the bound above a subnet must be above its last address
// with the highest port and an ID of 0xff bytes: such a peer is still
// answered as one of its own /24 (and /64).
func TestLocalityEdgeOfSubnet(t *testing.T) {
	srv := startRedis(t)
	lc := locality.Config{Enabled: true}.WithDefaults()
	lc.MinOutsideShare = 0
	s := newStore(t, srv, func(c *Config) { c.Locality = lc })
	ih := storagetest.InfoHash(3)
	var edge bittorrent.PeerID
	for i := range edge {
		edge[i] = 0xff
	}
	for _, tc := range []struct{ last, other, me string }{
		{"10.1.1.255", "10.1.2.0", "10.1.1.7"},
		{"2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:2::", "2001:db8:0:1::7"},
	} {
		last := bittorrent.Peer{ID: edge, AddrPort: netip.AddrPortFrom(netip.MustParseAddr(tc.last), 65535)}
		other := bittorrent.Peer{ID: edge, AddrPort: netip.AddrPortFrom(netip.MustParseAddr(tc.other), 1)}
		must(t, "PutSeeder", s.PutSeeder(ih, last))
		must(t, "PutSeeder", s.PutSeeder(ih, other))
		me := bittorrent.Peer{AddrPort: netip.AddrPortFrom(netip.MustParseAddr(tc.me), 6881)}
		// Out of its subnet, the peer would be drawn half of the time.
		for range 10 {
			peers, _, _, err := s.AnnouncePeers(nil, ih, false, 1, me)
			must(t, "AnnouncePeers", err)
			if len(peers) != 1 || peers[0] != last {
				t.Fatalf("%s: got %v, want only %v, the one peer of its subnet", tc.me, peers, last.AddrPort)
			}
		}
	}
}
