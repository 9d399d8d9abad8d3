package redis

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// Locality in Redis. With locality on, each family of a swarm also keeps
// its peers by cell (the announcer's subnet, or rack-in-zone with a
// topology; see storage/locality), per role, under the swarm's hash tag:
//
//	P{H}Fsc:<cell>  set of the seeders of a cell: address+port, peer ID
//	P{H}Flc:<cell>  the same for leechers
//	P{H}Fsd         sorted set of the cells that have seeders, all scored
//	                0, so ordered by name: the cells of one group at any
//	                tier are a contiguous run (cell names join the
//	                groups' names, farthest tier first, each ended by NUL)
//	P{H}Fld         the same for leechers
//
// and a stored value ends with the peer's cell, so that an update or
// collection finds the cell a peer was stored under. An announce is one
// round trip: select.lua, which takes the own cell's peers, then walks
// runs of cells from a random one (O(numwant) cells and peers, plus
// O(log cells) per run to find it), pipelined with put_local.lua or
// delete_local.lua. Every tracker sharing a Redis must run with the same
// locality settings; a change of them (on or off) needs a new key_prefix,
// since peers stored one way are not found the other.

// The daemon calls Reload on SIGUSR1 and SIGHUP when a store has it.
var _ storage.Reloader = (*PeerStore)(nil)

// Reload reads the locality topology file again; peers move to their new
// cells as they next announce. Without locality, or with prefix grouping,
// it does nothing. A file that does not load leaves the running topology
// in place.
func (s *PeerStore) Reload() error {
	classifier, err := locality.Reload(s.cfg.Locality)
	if err != nil {
		return fmt.Errorf("storage/redis: reload: %w", err)
	}
	if classifier != nil {
		s.classifier.Store(classifier)
	}
	return nil
}

// selectArgs appends the EVALSHA (EVAL with eval) of select.lua for the
// announcer to x.args.
func selectArgs(x *exchange, up *update, classifier *locality.Classifier, numWant int, announcer bittorrent.Peer, eval bool) {
	ck := classifier.Key(announcer.AddrPort.Addr())
	k, f := up.k, up.fam
	x.args = selectScript.args(x.args, eval)
	x.args = append(x.args, &k.roles[f][0], &k.roles[f][1], &k.downloads,
		&k.base[f], &x.strs[2], classifier.Cell(ck), flag(classifier.Placed(ck, 0)), numWant, classifier.Reserve(numWant), flag(up.seeding),
		1+rand.Int64N(2147483646))
	for t := 1; t < classifier.Tiers(); t++ {
		if classifier.Placed(ck, t) {
			x.args = append(x.args, classifier.TierPrefix(ck, t))
		} else {
			x.args = append(x.args, "-")
		}
	}
}

// selectReply reads what select.lua returns.
func selectReply(dst []bittorrent.Peer, v interface{}, addr []byte, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	r, ok := v.([]interface{})
	if !ok || len(r) < 4 {
		return dst, storage.Counts{}, storage.Absent, errBadReply
	}
	counts := storage.Counts{Seeders: clampU32(asInt(r[0])), Leechers: clampU32(asInt(r[1])), Downloads: clampU32(asInt(r[2]))}
	role := storage.Absent
	switch r[3] {
	case "s":
		role = storage.Seeder
	case "l":
		role = storage.Leecher
	}
	want := numWant
	for _, m := range r[4:] {
		b, _ := m.(string)
		if want == 0 {
			break
		}
		if len(b) != len(addr)+len(bittorrent.PeerID{}) || b[:len(addr)] == string(addr) {
			continue
		}
		if p, ok := decodePeer([]byte(b[:len(addr)]), []byte(b[len(addr):])); ok {
			dst = append(dst, p)
			want--
		}
	}
	return dst, counts, role, nil
}

// announceLocal is Announce with locality on: select.lua and the update's
// script, pipelined in one round trip, shared with the other announces in
// progress (batch.go).
func (s *PeerStore) announceLocal(dst []bittorrent.Peer, x *exchange, up *update, classifier *locality.Classifier, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	var counts storage.Counts
	var role storage.Role
	n := len(dst)
	err := s.call(context.Background(), "announce", func(ctx context.Context) error {
		x.probe = isProbe(ctx)
		for eval := false; ; eval = true {
			dst = dst[:n]
			x.args = x.args[:0]
			selectArgs(x, up, classifier, numWant, announcer, eval)
			sel := redis.NewCmd(ctx, x.args...)
			upArgs := make([]interface{}, 0, 20)
			x.args, upArgs = upArgs, x.args
			s.appendUpdateArgs(x, up, eval)
			upd := redis.NewCmd(ctx, x.args...)
			x.args = upArgs
			x.cmds = append(x.cmds[:0], sel, upd)
			var web [2]*redis.IntCmd
			if x.web[0] != "" {
				x.queueWebHlen()
				web = [2]*redis.IntCmd{redis.NewIntCmd(ctx, x.webHlen[0][:]...), redis.NewIntCmd(ctx, x.webHlen[1][:]...)}
				x.cmds = append(x.cmds, web[0], web[1])
			}
			// The first of the two commands' errors, or the batch's.
			err := s.roundTrip(ctx, x)
			if !eval && (isNoScript(sel.Err()) || isNoScript(upd.Err())) {
				continue
			}
			if err != nil {
				return err
			}
			dst, counts, role, err = selectReply(dst, sel.Val(), up.addr, numWant)
			counts = webCounts(web).add(counts)
			return err
		}
	})
	if err != nil {
		return dst[:n], storage.Counts{}, storage.Absent, err
	}
	return dst, counts, role, nil
}

// selectLocal is AnnouncePeers with locality on: select.lua alone.
func (s *PeerStore) selectLocal(dst []bittorrent.Peer, x *exchange, up *update, classifier *locality.Classifier, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	var counts storage.Counts
	var role storage.Role
	n := len(dst)
	x.strs[2] = string(up.addr)
	err := s.call(context.Background(), "announce", func(ctx context.Context) error {
		x.args = x.args[:0]
		selectArgs(x, up, classifier, numWant, announcer, false)
		var v interface{}
		var err error
		var web webCounts
		if x.web[0] == "" {
			v, err = selectScript.run(ctx, s.client, x.args).Result()
		} else {
			// The WebSocket counts in the same round trip.
			pipe := s.client.Pipeline()
			web = queueWebCounts(ctx, pipe, x.web)
			sel := pipe.Do(ctx, x.args...)
			_, _ = pipe.Exec(ctx)
			if isNoScript(sel.Err()) {
				x.args[0], x.args[1] = "eval", &selectScript.src
				sel = s.client.Do(ctx, x.args...)
			}
			if v, err = sel.Result(); err == nil {
				err = web.err()
			}
		}
		if err != nil {
			return err
		}
		dst, counts, role, err = selectReply(dst[:n], v, up.addr, numWant)
		counts = web.add(counts)
		return err
	})
	if err != nil {
		return dst[:n], storage.Counts{}, storage.Absent, err
	}
	return dst, counts, role, nil
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
