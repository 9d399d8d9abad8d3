package redis

// The announce's path that follows a Cluster's redirections: when a
// Cluster refuses an announce's transaction whole for where its slot is
// (a reshard or a failover), the announce is made again with go-redis'
// parsed commands, which go to the node a MOVED or ASK names.

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// isRedirect reports an error reply that a Cluster client answers by
// asking another node, or the same one again.
func isRedirect(msg string) bool {
	for _, p := range []string{"MOVED ", "ASK ", "TRYAGAIN", "CLUSTERDOWN", "LOADING"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// isRedirectErr reports an error that is such a reply.
func isRedirectErr(err error) bool {
	var re replyError
	return errors.As(err, &re) && isRedirect(string(re))
}

// errUnapplied marks an announce whose update a Cluster refused whole for
// where its slot is (MOVED, ASK, TRYAGAIN, CLUSTERDOWN, LOADING): Redis
// applied none of it, so it may be sent again.
var errUnapplied = errors.New("update refused whole for a moving slot")

// countsBefore reads the counts of up's swarm with parsed commands, which
// follow redirections, after its update c was applied, and returns them
// as they were before it (less c's changes), with the family's native
// peers before.
func (s *PeerStore) countsBefore(ctx context.Context, x *exchange, up *update, c plainChange) (storage.Counts, int64, error) {
	nS, nL, d, web, err := s.countsFollowing(ctx, x, up)
	if err != nil {
		return storage.Counts{}, 0, err
	}
	ds, dl, _ := c.deltas(0, up.u)
	nS, nL = max(nS-ds, 0), max(nL-dl, 0)
	if up.u == storage.UpdateGraduate {
		d = max(d-1, 0)
	}
	counts := web.add(storage.Counts{Seeders: clampU32(nS), Leechers: clampU32(nL), Downloads: clampU32(d)})
	return counts, nS + nL, nil
}

// countsFollowing reads the native seeders and leechers of up's family,
// the downloads and the WebSocket counts of up's swarm, in one pipeline
// of parsed commands, which follow redirections.
func (s *PeerStore) countsFollowing(ctx context.Context, x *exchange, up *update) (nS, nL, d int64, web webCounts, err error) {
	k, f := up.k, up.fam
	pipe := s.client.Pipeline()
	s0 := pipe.HLen(ctx, k.roles[f][0])
	l0 := pipe.HLen(ctx, k.roles[f][1])
	dl := pipe.Get(ctx, k.downloads)
	web = queueWebCounts(ctx, pipe, x.web)
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return 0, 0, 0, web, err
	}
	d, _ = dl.Int64()
	return s0.Val(), l0.Val(), d, web, nil
}

// announceFollowing is Announce with parsed commands, in three round
// trips, for an update a Cluster refused whole for where its slot is:
// the counts, then the update's commands in one transaction (go-redis'
// TxPipeline sends MULTI and EXEC to the slot's master, and sends the
// whole transaction again, with ASKING before it, to the node a MOVED
// or ASK names, or again after a TRYAGAIN: never a part of it, and never
// once Redis may have run it), then the peer reads.
func (s *PeerStore) announceFollowing(ctx context.Context, dst []bittorrent.Peer, x *exchange, up *update, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	nS, nL, d, web, err := s.countsFollowing(ctx, x, up)
	if err != nil {
		return dst, storage.Counts{}, storage.Absent, err
	}
	k, f := up.k, up.fam
	tx := s.client.TxPipeline()
	var cmds [3]*redis.IntCmd
	if up.u == storage.UpdateDelete {
		cmds[0] = tx.HDel(ctx, k.roles[f][0], x.strs[2])
		cmds[1] = tx.HDel(ctx, k.roles[f][1], x.strs[2])
	} else {
		own, other := 0, 1
		if !up.seeding {
			own, other = 1, 0
		}
		cmds[0] = tx.HSet(ctx, k.roles[f][own], x.strs[2], x.strs[3])
		cmds[1] = tx.HDel(ctx, k.roles[f][other], x.strs[2])
		if up.u == storage.UpdateGraduate {
			cmds[2] = tx.Incr(ctx, k.downloads)
		}
	}
	_, err = tx.Exec(ctx)
	// Each command's error: a refused or lost transaction sets them all
	// (Redis applied nothing, or may have: then nothing is counted, as
	// with a raw reply lost); an error as it ran, only its own.
	var r [4]int64
	var failed [4]bool
	applied := false
	for i, c := range cmds[:2] {
		if failed[i] = c.Err() != nil; !failed[i] {
			r[i], applied = c.Val(), true
		}
	}
	if !applied {
		return dst, storage.Counts{}, storage.Absent, err
	}
	c := plainResult(up, r, failed)
	ds, dl, dw := c.deltas(nS+nL, up.u)
	s.pending.add(f, ds, dl, dw)
	if err != nil {
		return dst, storage.Counts{}, storage.Absent, err
	}
	counts := web.add(storage.Counts{Seeders: clampU32(nS), Leechers: clampU32(nL), Downloads: clampU32(d)})
	dst, err = s.readPeers(ctx, dst, up, numWant)
	return dst, counts, c.role, err
}

// readPeers appends up to numWant peers for the announcer to dst with
// parsed commands (which follow Cluster redirections): seeders first for
// a leecher.
func (s *PeerStore) readPeers(ctx context.Context, dst []bittorrent.Peer, up *update, numWant int) ([]bittorrent.Peer, error) {
	n, want := len(dst), numWant
	if k := up.k; k.bucket[up.fam] != "" {
		// The swarm's peer in the shared form (bucket.go).
		v, err := s.client.HGet(ctx, k.bucket[up.fam], k.rawIH).Bytes()
		if err != nil && err != redis.Nil {
			return dst, err
		}
		if o, ok := parseOccupant(v, up.fam); ok {
			self := string(o.addr) == string(up.addr)
			dst = o.appendTo(dst, self, up.seeding, want, s.cfg.KeepPeerIDs)
			want = numWant - (len(dst) - n)
		}
	}
	for role := 0; role < 2 && want > 0; role++ {
		if role == 0 && up.seeding {
			continue
		}
		kvs, err := s.client.HRandFieldWithValues(ctx, up.k.roles[up.fam][role], numWant+1).Result()
		if err != nil {
			return dst[:n], err
		}
		for _, kv := range kvs {
			if want == 0 {
				break
			}
			if len(kv.Key) != len(up.addr) || kv.Key == string(up.addr) {
				continue
			}
			var id []byte
			if s.cfg.KeepPeerIDs {
				id = []byte(kv.Value) // else answered without, whoever stored it
			}
			if p, ok := decodePeer([]byte(kv.Key), id); ok {
				dst = append(dst, p)
				want--
			}
		}
	}
	return dst, nil
}
