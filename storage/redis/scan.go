package redis

import (
	"context"
	"strings"
)

// Collection and the listing find the swarms by SCAN over the peer
// hashes (TYPE hash, the key prefix) of each server (each master of a
// Cluster), not by the shards' indexes: a native announce is plain
// commands (plain.go), and keeping the index would cost it one more, a
// SADD, on every announce. SCAN returns every key that exists for the whole walk
// at least once, so no swarm with peers is missed; one that appears
// during the walk is found by the next. It pages through the keys of the
// database, the others included, at about 0.1 µs each in Redis.
//
// A swarm's peers are in up to four hashes (two roles, two families), so
// the walk may meet a swarm up to four times. Collection runs gc.lua on
// a swarm only from the first of its hashes that exists (the script is
// told which one it was found by and checks the ones before); the
// listing drops repeats itself. The scripts no longer add swarms to the
// shards' indexes, which nothing reads; collection still removes the
// swarms it empties from them, so an index an earlier version kept
// empties as its swarms go.

// scanCount is how many keys one SCAN step asks for.
const scanCount = 1000

// peerHashSuffixes end the keys of peer hashes, native then WebSocket, in
// the order of a swarm's KEYS to gc.lua.
var peerHashSuffixes = [8]string{"4s", "4l", "6s", "6l", "w4s", "w4l", "w6s", "w6l"}

// foundSwarm is a swarm met by the walk: its index member (H, or wH for
// the WebSocket swarm), and which of its four hashes (1 to 4) the walk
// met.
type foundSwarm struct {
	member string
	by     int
	// bucket is, instead, a bucket of the shared form met (bucket.go).
	bucket string
}

// scanPattern is the SCAN MATCH pattern of the keys of swarms: the
// prefix (its glob characters escaped), then a hash tag.
func (s *PeerStore) scanPattern() string {
	var b strings.Builder
	for _, c := range s.cfg.KeyPrefix {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteString("{*}*")
	return b.String()
}

// peerHashSwarm returns the swarm whose peer hash key is, if it is one.
func (s *PeerStore) peerHashSwarm(key string) (foundSwarm, bool) {
	rest, ok := strings.CutPrefix(key, s.cfg.KeyPrefix)
	const tag = 2 + 40 // {H}
	if !ok || len(rest) < tag+2 || rest[0] != '{' || rest[tag-1] != '}' {
		return foundSwarm{}, false
	}
	h, suffix := rest[1:tag-1], rest[tag:]
	for i, sfx := range peerHashSuffixes {
		if suffix != sfx {
			continue
		}
		m := h
		if i >= 4 {
			m = webMember + h
		}
		if _, _, ok := swarmMember(m); !ok {
			return foundSwarm{}, false
		}
		return foundSwarm{member: m, by: i%4 + 1}, true
	}
	return foundSwarm{}, false
}

// scanSwarms walks the peer hashes of the server c (scanClient) with
// SCAN, a page at a time (each its own exchange, counted under op), and
// hands fn each page's swarms, repeats within the page dropped (keeping
// the first hash met).
func (s *PeerStore) scanSwarms(ctx context.Context, c scanner, op string, fn func([]foundSwarm) error) error {
	pattern := s.scanPattern()
	var cursor uint64
	var page []foundSwarm
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var keys []string
		if err := s.call(ctx, op, func(ctx context.Context) (err error) {
			keys, cursor, err = c.ScanType(ctx, cursor, pattern, scanCount, "hash").Result()
			return err
		}); err != nil {
			return err
		}
		page = page[:0]
		at := make(map[string]int, len(keys))
		for _, k := range keys {
			f, ok := s.peerHashSwarm(k)
			if !ok {
				if _, ok := s.bucketFamily(k); ok {
					page = append(page, foundSwarm{bucket: k})
				}
				continue
			}
			if i, dup := at[f.member]; dup {
				page[i].by = min(page[i].by, f.by)
				continue
			}
			at[f.member] = len(page)
			page = append(page, f)
		}
		if len(page) > 0 {
			if err := fn(page); err != nil {
				return err
			}
		}
		if cursor == 0 {
			return nil
		}
	}
}
