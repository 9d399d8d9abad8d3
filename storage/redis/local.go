package redis

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// Locality in Redis. With locality on, each role of each family of a
// swarm also keeps its peers in order, in a sorted set under the swarm's
// hash tag:
//
//	P{H}Fsz  the seeders: every member scored 0, so ordered by its bytes
//	P{H}Flz  the leechers, the same
//
// A member is the peer's address and port as in the role's hash (A),
// then its peer ID; with a topology the peer's cell comes first (the
// names of its groups, farthest tier first, each ended by NUL; see
// storage/locality). By prefix (ipv4_prefix, ipv6_prefix), ordered by
// address, the peers of every subnet of every length are a contiguous
// run, whose ends follow from the announcer's address and the prefix;
// with a topology the cells of one group at any tier are a contiguous
// run. The role's hash then maps A to the last-seen stamp only, then the
// cell with a topology, so that an update or collection finds the member
// a peer was stored under after a reload moved it: the peer ID is kept
// once, in the member, where an answer reads it.
//
// One member a peer and no key per cell: a peer costs the same whether
// it shares its subnet with others or not (docs/redis.md has the bytes).
//
// A role of at most 4 peers (short) has no order: its hash maps A to the
// stamp, the cell, then the peer ID, and select.lua reads it whole and
// orders it itself (a few peers: cheaper than the sorted set's ranks, and
// a sorted-set key, about 100 bytes of Redis, is what a swarm of one
// peer would otherwise pay beside its hash). A peer new to a short role
// that takes it past 4 makes it ordered (put_local.lua moves the IDs
// into the members); it stays ordered until it empties. The form is
// whether the order key exists, which every script checks before its
// first write. Roles stored by an earlier version all have their order,
// so they read as ordered: an upgrade keeps the keys (but trackers of
// the earlier version must not run beside this one: they read no peers
// from a short role).
// An announce is one round trip: select.lua, which takes runs of members
// by rank (O(numwant) members, plus O(log peers) per run to find it),
// pipelined with put_local.lua or delete_local.lua. Every tracker sharing
// a Redis must run with the same locality settings; turning locality on
// or off, or between prefixes and a topology, needs a new key_prefix,
// since peers stored one way are not found the other (a new prefix length
// needs nothing: the order is the addresses').

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

// storedCell is the cell that a's member and stored value carry: its
// cell with a topology, none by prefix (the address orders the peers).
func storedCell(classifier *locality.Classifier, a netip.Addr) string {
	if _, _, ok := classifier.PrefixMasks(); ok {
		return ""
	}
	return classifier.Cell(classifier.Key(a))
}

// prepareLocal writes the stored value of a peer with locality into
// x.value, which it returns: the stamp, then the cell (none by prefix);
// then, past the value, the peer ID (none unless keep), which goes in the
// peer's member of its order instead. x.strs[3] and x.strs[6] are views
// of both.
func prepareLocal(x *exchange, id bittorrent.PeerID, keep bool, stamp int64, cell string) []byte {
	b := binary.BigEndian.AppendUint32(x.value[:0], uint32(stamp))
	b = append(b, cell...)
	n := len(b)
	x.strs[6] = ""
	if keep {
		b = append(b, id[:]...)
		x.strs[6] = unsafe.String(&b[n], len(id))
	}
	x.strs[3] = unsafe.String(&b[0], n)
	return b
}

// putLocalArgs appends the keys and arguments of put_local.lua to dst
// (after its EVALSHA): put.lua's keys, the orders of both roles, the
// address, the value, the peer ID.
func putLocalArgs(dst []interface{}, k *swarmKeys, af bittorrent.AddressFamily, u storage.Update, addr, value, id interface{}) []interface{} {
	own, other := 0, 1
	if !u.Seeder() {
		own, other = 1, 0
	}
	dst = append(dst, &k.roles[af][own], &k.roles[af][other], &k.downloads, &k.shard.index, &k.shard.totals,
		&k.ordered[af][own], &k.ordered[af][other], addr, value, id)
	if u == storage.UpdateGraduate {
		dst = append(dst, &flagTag[1])
	}
	return dst
}

// boundTail is the length of a port and a peer ID, and one more.
const boundTail = 2 + len(bittorrent.PeerID{}) + 1

// selectArgs appends the EVALSHA (EVAL with eval) of select.lua for the
// announcer to x.args: with the bounds of the announcer's group at each
// tier (none where it is in no group).
func selectArgs(x *exchange, up *update, classifier *locality.Classifier, numWant int, announcer bittorrent.Peer, eval bool, idLen *string) {
	k, f := up.k, up.fam
	x.strs[0] = up.cell
	x.args = selectScript.args(x.args, eval)
	x.args = append(x.args, &k.roles[f][0], &k.roles[f][1], &k.downloads, &k.ordered[f][0], &k.ordered[f][1],
		&x.strs[2], numWant, classifier.Reserve(numWant), flag(up.seeding), 1+rand.Int64N(2147483646), &x.strs[0], idLen)
	a := announcer.AddrPort.Addr()
	if v4, v6, ok := classifier.PrefixMasks(); ok {
		// The subnet's first address, and its last then boundTail bytes
		// 0xff: above the subnet's members (an address, a port and a
		// peer ID), below the next subnet's.
		lo, hi := &x.bounds[0], &x.bounds[1]
		n := 4
		if a.Is4() {
			a4 := a.As4()
			b := binary.BigEndian.Uint32(a4[:])
			binary.BigEndian.PutUint32(lo[:], b&v4)
			binary.BigEndian.PutUint32(hi[:], b|^v4)
		} else {
			b := a.As16()
			n = 16
			top := binary.BigEndian.Uint64(b[:8])
			binary.BigEndian.PutUint64(lo[:], top&v6)
			binary.BigEndian.PutUint64(hi[:], top|^v6)
			clear(lo[8:16])
			for i := 8; i < 16; i++ {
				hi[i] = 0xff
			}
		}
		for i := n; i < n+boundTail; i++ {
			hi[i] = 0xff
		}
		x.strs[4], x.strs[5] = unsafe.String(&lo[0], n), unsafe.String(&hi[0], n+boundTail)
		x.args = append(x.args, &x.strs[4], &x.strs[5])
		return
	}
	ck := classifier.Key(a)
	for t := range classifier.Tiers() {
		if !classifier.Placed(ck, t) {
			x.args = append(x.args, "", "")
			continue
		}
		// The group's name ends with NUL, and names are printable: the
		// name ended by 0x01 instead is above the group's members and
		// below the next group's.
		p := classifier.TierPrefix(ck, t)
		x.args = append(x.args, p, p[:len(p)-1]+"\x01")
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
		// A member ends with the address and the peer ID, or the address
		// alone with keep_peer_ids off (the peer then has a zero ID).
		if len(b) != len(addr)+len(bittorrent.PeerID{}) && len(b) != len(addr) || b[:len(addr)] == string(addr) {
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
			selectArgs(x, up, classifier, numWant, announcer, eval, s.idLen())
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
		selectArgs(x, up, classifier, numWant, announcer, false, s.idLen())
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
