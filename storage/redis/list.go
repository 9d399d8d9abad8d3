package redis

import (
	"context"
	"encoding/hex"
	"sort"

	"github.com/gomodule/redigo/redis"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// The listing of swarms (storage.Lister), kept apart from the rest of the
// driver: the swarm index is walked with ZSCAN, a page at a time, never
// with KEYS, and each page's counts are read in one pipelined round trip.

var _ storage.Lister = (*PeerStore)(nil)

// walkPage is how many swarms one ZSCAN step asks for, and so about the
// size of a batch.
const walkPage = 1000

// Walk walks the swarm index with ZSCAN. ZSCAN visits every member that
// is in the index for the whole walk at least once, and may repeat one
// when the index is rehashed meanwhile: repeats are dropped, so each is
// handed to fn once. Swarms whose peers have all left (collection drops
// them from the index later) are skipped.
func (s *PeerStore) Walk(ctx context.Context, keep func(bittorrent.InfoHash) bool, fn func([]storage.Swarm) error) error {
	seen := map[bittorrent.InfoHash]struct{}{}
	cursor := "0"
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		reply, err := s.do("walk", func(c redis.Conn) (interface{}, error) {
			return redis.Values(c.Do("ZSCAN", s.indexKey, cursor, "COUNT", walkPage))
		})
		if err != nil {
			return err
		}
		v := reply.([]interface{})
		next, _ := redis.String(v[0], nil)
		members, _ := redis.Strings(v[1], nil)
		var page []bittorrent.InfoHash
		for i := 0; i < len(members); i += 2 { // member, score
			var ih bittorrent.InfoHash
			if n, err := hex.Decode(ih[:], []byte(members[i])); err != nil || n != len(ih) {
				continue
			}
			if _, dup := seen[ih]; dup || (keep != nil && !keep(ih)) {
				continue
			}
			seen[ih] = struct{}{}
			page = append(page, ih)
		}
		if len(page) > 0 {
			batch, err := s.counts(page)
			if err != nil {
				return err
			}
			if len(batch) > 0 {
				if err := fn(batch); err != nil {
					return err
				}
			}
		}
		if next == "0" {
			return nil
		}
		cursor = next
	}
}

// counts reads the counts of ihs in one pipelined round trip.
func (s *PeerStore) counts(ihs []bittorrent.InfoHash) ([]storage.Swarm, error) {
	reply, err := s.do("walk", func(c redis.Conn) (interface{}, error) {
		for _, ih := range ihs {
			k4, k6 := s.keys(ih, bittorrent.IPv4), s.keys(ih, bittorrent.IPv6)
			for _, k := range []string{k4.seeders, k4.leechers, k6.seeders, k6.leechers} {
				if err := c.Send("ZCARD", k); err != nil {
					return nil, err
				}
			}
			if err := c.Send("GET", k4.downloads); err != nil {
				return nil, err
			}
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
		out := make([]interface{}, 0, 5*len(ihs))
		for range 5 * len(ihs) {
			v, err := c.Receive()
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	v := reply.([]interface{})
	batch := make([]storage.Swarm, 0, len(ihs))
	for i, ih := range ihs {
		r := v[5*i : 5*i+5]
		sw := storage.Swarm{
			InfoHash:  ih,
			Seeders:   [2]uint32{uint32(asUint64(r[0])), uint32(asUint64(r[2]))},
			Leechers:  [2]uint32{uint32(asUint64(r[1])), uint32(asUint64(r[3]))},
			Downloads: uint32(asUint64(r[4])),
		}
		if sw.Peers() == 0 && sw.Downloads == 0 {
			continue
		}
		batch = append(batch, sw)
	}
	return batch, nil
}

// Groups reads the cells of each family and role (P H:F:sd, P H:F:ld) and
// counts each cell's set.
func (s *PeerStore) Groups(ih bittorrent.InfoHash) ([]storage.Group, error) {
	cls := s.cls.Load()
	if cls == nil {
		return nil, nil
	}
	type key struct {
		af   int
		name string
	}
	counts := map[key]*storage.Group{}
	for af := range familyTag {
		k := s.keys(ih, bittorrent.AddressFamily(af))
		for _, role := range []string{"s", "l"} {
			reply, err := s.do("groups", func(c redis.Conn) (interface{}, error) {
				cells, err := redis.Strings(c.Do("ZRANGE", k.fam+role+"d", 0, -1))
				if err != nil {
					return nil, err
				}
				for _, cell := range cells {
					if err := c.Send("SCARD", k.fam+role+"c:"+cell); err != nil {
						return nil, err
					}
				}
				if err := c.Flush(); err != nil {
					return nil, err
				}
				out := make([]interface{}, 0, 2*len(cells))
				for _, cell := range cells {
					n, err := c.Receive()
					if err != nil {
						return nil, err
					}
					out = append(out, cell, n)
				}
				return out, nil
			})
			if err != nil {
				return nil, err
			}
			v := reply.([]interface{})
			for i := 0; i < len(v); i += 2 {
				n := uint32(asUint64(v[i+1]))
				if n == 0 {
					continue
				}
				name := cls.CellName(v[i].(string), af == int(bittorrent.IPv6))
				g := counts[key{af, name}]
				if g == nil {
					g = &storage.Group{Name: name, Family: bittorrent.AddressFamily(af)}
					counts[key{af, name}] = g
				}
				if role == "s" {
					g.Seeders += n
				} else {
					g.Leechers += n
				}
			}
		}
	}
	if len(counts) == 0 {
		return nil, nil
	}
	out := make([]storage.Group, 0, len(counts))
	for _, g := range counts {
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Family != out[j].Family {
			return out[i].Family < out[j].Family
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
