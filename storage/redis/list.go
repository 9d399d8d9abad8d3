package redis

import (
	"context"
	"net/netip"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// The listing of swarms (storage.Lister), kept apart from the rest of the
// driver: the peer hashes of each server (each master of a Cluster) are
// walked with SCAN (scan.go), a page at a time, never with KEYS, and each
// page's counts are read in one pipelined round trip.

var _ storage.Lister = (*PeerStore)(nil)

// Walk walks the peer hashes with SCAN, which visits every key that is
// there for the whole walk at least once, and may repeat one (a rehash
// meanwhile; a swarm's several hashes): repeats are dropped, so each
// swarm is handed to fn once. Swarms whose peers have all left are
// skipped.
func (s *PeerStore) Walk(ctx context.Context, keep func(bittorrent.InfoHash) bool, fn func([]storage.Swarm) error) error {
	seen := map[bittorrent.InfoHash]struct{}{}
	// visit hands fn the swarms of one page not seen before.
	visit := func(members []string) error {
		var page []bittorrent.InfoHash
		for _, m := range members {
			ih, _, ok := swarmMember(m)
			if !ok {
				continue
			}
			if _, dup := seen[ih]; dup || (keep != nil && !keep(ih)) {
				continue
			}
			seen[ih] = struct{}{}
			page = append(page, ih)
		}
		if len(page) == 0 {
			return nil
		}
		batch, err := s.counts(ctx, page)
		if err != nil || len(batch) == 0 {
			return err
		}
		return fn(batch)
	}
	// By SCAN of each server's peer hashes (scan.go): the only server,
	// or each master of a Cluster.
	var ranges []slotRange
	if err := s.call(ctx, "walk", func(ctx context.Context) (err error) {
		ranges, err = s.slotRanges(ctx)
		ranges = perMaster(ranges)
		return err
	}); err != nil {
		return err
	}
	var members []string
	for _, r := range ranges {
		var c scanner
		if err := s.call(ctx, "walk", func(ctx context.Context) (err error) {
			c, err = s.scanClient(ctx, r.first)
			return err
		}); err != nil {
			return err
		}
		err := s.scanSwarms(ctx, c, "walk", func(page []foundSwarm) error {
			members = members[:0]
			for _, f := range page {
				if f.bucket == "" {
					members = append(members, f.member)
					continue
				}
				// A bucket of the shared form: its swarms (bucket.go).
				ms, err := s.bucketMembers(ctx, f.bucket)
				if err != nil {
					return err
				}
				members = append(members, ms...)
			}
			return visit(members)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// counts reads the counts of ihs in one pipelined round trip.
func (s *PeerStore) counts(ctx context.Context, ihs []bittorrent.InfoHash) ([]storage.Swarm, error) {
	batch := make([]storage.Swarm, 0, len(ihs))
	err := s.call(ctx, "walk", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		lens := make([]*redis.IntCmd, 0, 4*len(ihs))
		dls := make([]*redis.StringCmd, 0, len(ihs))
		var web []*redis.IntCmd // the WebSocket swarms', once there are any
		var buckets []*redis.StringCmd
		for _, ih := range ihs {
			k := s.keys(ih)
			lens = append(lens, pipe.HLen(ctx, k.roles[0][0]), pipe.HLen(ctx, k.roles[0][1]),
				pipe.HLen(ctx, k.roles[1][0]), pipe.HLen(ctx, k.roles[1][1]))
			dls = append(dls, pipe.Get(ctx, k.downloads))
			if s.tiny != nil {
				buckets = append(buckets, pipe.HGet(ctx, k.bucket[0], k.rawIH), pipe.HGet(ctx, k.bucket[1], k.rawIH))
			}
			if s.web.seen.Load() {
				w := s.webKeys(ih)
				web = append(web, pipe.HLen(ctx, w.roles[0][0]), pipe.HLen(ctx, w.roles[0][1]),
					pipe.HLen(ctx, w.roles[1][0]), pipe.HLen(ctx, w.roles[1][1]))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i, ih := range ihs {
			l := lens[4*i : 4*i+4]
			if web != nil {
				l = []*redis.IntCmd{sum(l[0], web[4*i]), sum(l[1], web[4*i+1]), sum(l[2], web[4*i+2]), sum(l[3], web[4*i+3])}
			}
			d, _ := dls[i].Int64()
			sw := storage.Swarm{
				InfoHash:  ih,
				Seeders:   [2]uint32{clampU32(l[0].Val()), clampU32(l[2].Val())},
				Leechers:  [2]uint32{clampU32(l[1].Val()), clampU32(l[3].Val())},
				Downloads: clampU32(d),
			}
			for af := 0; buckets != nil && af < 2; af++ {
				// The swarm's peer in the shared form (bucket.go).
				if o, ok := parseOccupant([]byte(buckets[2*i+af].Val()), bittorrent.AddressFamily(af)); ok {
					c := storage.Counts{Seeders: sw.Seeders[af], Leechers: sw.Leechers[af]}
					o.add(&c, false, storage.Absent)
					sw.Seeders[af], sw.Leechers[af] = c.Seeders, c.Leechers
				}
			}
			if sw.Peers() == 0 && sw.Downloads == 0 {
				continue
			}
			batch = append(batch, sw)
		}
		return nil
	})
	return batch, err
}

// Groups reads the order of each family and role (P{H}Fsz, P{H}Flz), a
// page of members per round trip, and counts its members by group: by
// the cell a member starts with (topology), or by the prefix of its
// address.
func (s *PeerStore) Groups(ih bittorrent.InfoHash) ([]storage.Group, error) {
	classifier := s.classifier.Load()
	if classifier == nil {
		return nil, nil
	}
	type key struct {
		af   int
		name string
	}
	counts := map[key]*storage.Group{}
	k := s.keys(ih)
	const page = 1000
	for af := range familyTag {
		v6 := af == int(bittorrent.IPv6)
		// A member ends with A, then the peer ID (none with
		// keep_peer_ids off).
		addrLen, idLen := 6, len(bittorrent.PeerID{})
		if !s.cfg.KeepPeerIDs {
			idLen = 0
		}
		if v6 {
			addrLen = 18
		}
		for r, role := range k.ordered[af] {
			for start := int64(0); ; start += page {
				var members []string
				err := s.call(context.Background(), "groups", func(ctx context.Context) (err error) {
					members, err = s.client.ZRange(ctx, role, start, start+page-1).Result()
					if err == nil && start == 0 && len(members) == 0 {
						// A short role, or an empty one: its hash alone.
						members, err = shortMembers(ctx, s.client, k.roles[af][r], idLen)
					}
					return err
				})
				if err != nil {
					return nil, err
				}
				for _, m := range members {
					if len(m) < addrLen+idLen {
						continue
					}
					m = m[:len(m)-idLen]
					name := groupName(classifier, m[:len(m)-addrLen], m[len(m)-addrLen:], v6)
					g := counts[key{af, name}]
					if g == nil {
						g = &storage.Group{Name: name, Family: bittorrent.AddressFamily(af)}
						counts[key{af, name}] = g
					}
					if r == 0 {
						g.Seeders++
					} else {
						g.Leechers++
					}
				}
				if len(members) < page {
					break
				}
			}
		}
	}
	return storage.SortedGroups(counts), nil
}

// shortMembers reads a short role of locality (no order: at most a few
// peers, see put_local.lua) from its hash, as the members of its order
// would be: the cell, the address, the peer ID.
func shortMembers(ctx context.Context, c redis.Cmdable, role string, idLen int) ([]string, error) {
	values, err := c.HGetAll(ctx, role).Result()
	members := make([]string, 0, len(values))
	for a, v := range values {
		if m, ok := shortMember(a, v, idLen); ok {
			members = append(members, m)
		}
	}
	return members, err
}

// shortMember is the member of the peer at address a whose value in a
// short role is v (the stamp, the cell, the peer ID of idLen bytes).
func shortMember(a, v string, idLen int) (string, bool) {
	if len(v) < 4+idLen {
		return "", false
	}
	return v[4:len(v)-idLen] + a + v[len(v)-idLen:], true
}

// groupName names the group of a member of an order: by its cell, or by
// the prefix of its address (addr: address and port, as stored).
func groupName(classifier *locality.Classifier, cell, addr string, v6 bool) string {
	if cell != "" {
		return classifier.CellName(cell, v6)
	}
	ip, ok := netip.AddrFromSlice([]byte(addr[:len(addr)-2]))
	if !ok {
		return addr
	}
	return classifier.GroupName(classifier.Key(ip), v6)
}
