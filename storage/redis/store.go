package redis

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
)

var errInvalidAddr = errors.New("storage/redis: peer has no valid address")

// exchange holds what one operation sends and reads, reused through a
// pool so that an announce allocates little: the command arguments, the
// stored value, and the raw replies of the peer reads.
type exchange struct {
	args  []interface{}
	addr  [18]byte
	value []byte
	raw   rawReply
	// strs are the string arguments that live as long as the exchange:
	// 0 the cell, 1 the count of an HRANDFIELD, 2 the address, 3 the value
	// (views of addr and value, passed as *string: no allocation).
	strs [4]string
	cmds [3]redis.Cmder
}

var exchanges = sync.Pool{New: func() any { return new(exchange) }}

func getExchange() *exchange {
	x := exchanges.Get().(*exchange)
	x.args, x.value, x.raw.b = x.args[:0], x.value[:0], x.raw.b[:0]
	return x
}

func putExchange(x *exchange) {
	clear(x.args)
	x.strs = [4]string{}
	x.cmds = [3]redis.Cmder{}
	exchanges.Put(x)
}

// update describes one swarm update: which script with which keys.
type update struct {
	sc      *script
	u       storage.Update
	fam     bittorrent.AddressFamily
	k       *swarmKeys
	addr    []byte
	cell    string
	seeding bool
}

// appendUpdateArgs appends the EVALSHA (or EVAL) of an update to x.args.
func (s *PeerStore) appendUpdateArgs(x *exchange, up *update, eval bool) {
	k, f := up.k, up.fam
	if up.u == storage.UpdateDelete {
		sc := deleteScript
		if up.cell != "" {
			sc = deleteLocalScript
		}
		x.args = sc.args(x.args, eval)
		x.args = append(x.args, &k.roles[f][0], &k.roles[f][1], &k.downloads, &k.shard.totals, &x.strs[2], &familyTag[f])
		if up.cell != "" {
			x.args = append(x.args, &k.base[f])
		}
		return
	}
	sc := putScript
	if up.cell != "" {
		sc = putLocalScript
	}
	own, other, role := 0, 1, "s"
	if !up.u.Seeder() {
		own, other, role = 1, 0, "l"
	}
	count := "0"
	if up.u == storage.UpdateGraduate {
		count = "1"
	}
	x.args = sc.args(x.args, eval)
	x.args = append(x.args, &k.roles[f][own], &k.roles[f][other], &k.downloads, &k.shard.index, &k.shard.totals,
		&x.strs[2], &x.strs[3], &familyTag[f], role, count, &k.hexIH)
	if up.cell != "" {
		x.strs[0] = up.cell
		x.args = append(x.args, &k.base[f], &x.strs[0])
	}
}

// prepare fills up and x.value for an update of p; false if p has no
// valid address.
func (s *PeerStore) prepare(x *exchange, up *update, k *swarmKeys, u storage.Update, p bittorrent.Peer) bool {
	addr, af, ok := peerAddr(p, &x.addr)
	if !ok {
		return false
	}
	*up = update{u: u, fam: af, k: k, addr: addr, seeding: u.Seeder()}
	x.value = appendValue(x.value[:0], p.ID, clock.Unix())
	if cls := s.cls.Load(); cls != nil {
		up.cell = cls.Cell(cls.Key(p.AddrPort.Addr()))
		x.value = append(x.value, up.cell...)
	}
	x.strs[2] = unsafe.String(&x.addr[0], len(addr))
	x.strs[3] = unsafe.String(&x.value[0], len(x.value))
	return true
}

// updateReply reads what put.lua and delete.lua return: the counts and the
// announcer's role before the update.
func updateReply(v interface{}, up *update) (storage.Counts, storage.Role, error) {
	r, ok := v.([]interface{})
	if !ok || len(r) != 4 {
		return storage.Counts{}, storage.Absent, errBadReply
	}
	a, b, dl, was := asInt(r[0]), asInt(r[1]), asInt(r[2]), asInt(r[3])
	var c storage.Counts
	role := storage.Absent
	if up.u == storage.UpdateDelete || up.seeding {
		// delete.lua: seeders, leechers; put.lua for a seeder: own (seeders), other.
		c = storage.Counts{Seeders: clampU32(a), Leechers: clampU32(b), Downloads: clampU32(dl)}
		switch was {
		case 1:
			role = storage.Seeder
		case 2:
			role = storage.Leecher
		}
	} else {
		c = storage.Counts{Seeders: clampU32(b), Leechers: clampU32(a), Downloads: clampU32(dl)}
		switch was {
		case 1:
			role = storage.Leecher
		case 2:
			role = storage.Seeder
		}
	}
	return c, role, nil
}

// PutSeeder stores p as a seeder of ih.
func (s *PeerStore) PutSeeder(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.apply("put", ih, storage.UpdateSeeder, p)
}

// PutLeecher stores p as a leecher of ih.
func (s *PeerStore) PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.apply("put", ih, storage.UpdateLeecher, p)
}

// GraduateLeecher stores p as a seeder of ih and counts a download.
func (s *PeerStore) GraduateLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.apply("graduate", ih, storage.UpdateGraduate, p)
}

// DeletePeer removes p from ih's swarm.
func (s *PeerStore) DeletePeer(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	if !p.AddrPort.Addr().IsValid() {
		return nil // never stored, so nothing to remove
	}
	return s.apply("delete", ih, storage.UpdateDelete, p)
}

// apply runs one update's script, in one round trip.
func (s *PeerStore) apply(op string, ih bittorrent.InfoHash, u storage.Update, p bittorrent.Peer) error {
	x := getExchange()
	defer putExchange(x)
	k := s.keys(ih)
	var up update
	if !s.prepare(x, &up, &k, u, p) {
		storage.ObserveError(op)
		return errInvalidAddr
	}
	return s.call(context.Background(), op, func(ctx context.Context) error {
		s.appendUpdateArgs(x, &up, false)
		return up.script().run(ctx, s.client, x.args).Err()
	})
}

func (up *update) script() *script {
	switch {
	case up.u == storage.UpdateDelete && up.cell != "":
		return deleteLocalScript
	case up.u == storage.UpdateDelete:
		return deleteScript
	case up.cell != "":
		return putLocalScript
	}
	return putScript
}

// Announce answers an announce and applies its update in one round trip:
// a pipeline of the update's script, which returns the counts and the
// announcer's role from before it, and the HRANDFIELD reads of numWant+1
// seeders (for a leecher) and leechers, one more than wanted so that the
// announcer can be skipped. The peer replies are read raw, in place.
func (s *PeerStore) Announce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	x := getExchange()
	defer putExchange(x)
	k := s.keys(ih)
	var up update
	if !s.prepare(x, &up, &k, u, announcer) {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	numWant = max(numWant, 0)
	if cls := s.cls.Load(); cls != nil {
		return s.announceLocal(dst, x, &up, cls, numWant, announcer)
	}
	var counts storage.Counts
	var role storage.Role
	n := len(dst)
	err := s.call(context.Background(), "announce", func(ctx context.Context) error {
		for eval := false; ; eval = true {
			dst = dst[:n]
			x.args, x.raw.b = x.args[:0], x.raw.b[:0]
			pipe := s.client.Pipeline()
			s.appendUpdateArgs(x, &up, eval)
			upd := pipe.Do(ctx, x.args...)
			reads := s.queuePeerReads(ctx, pipe, x, &up, numWant)
			_, err := pipe.Exec(ctx)
			if isNoScript(upd.Err()) && !eval {
				continue
			}
			if err := upd.Err(); err != nil {
				return err
			}
			if counts, role, err = updateReply(upd.Val(), &up); err != nil {
				return err
			}
			if err != nil && !isReplyError(err) {
				return err
			}
			dst, err = s.readPeers(ctx, dst, x, &up, numWant, reads)
			return err
		}
	})
	if err != nil {
		return dst[:n], storage.Counts{}, storage.Absent, err
	}
	return dst, counts, role, nil
}

// queuePeerReads queues the raw HRANDFIELD reads of an announce in pipe
// and returns how many.
func (s *PeerStore) queuePeerReads(ctx context.Context, pipe redis.Pipeliner, x *exchange, up *update, numWant int) int {
	if numWant == 0 {
		return 0
	}
	want := numWant + 1
	reads := 0
	x.strs[1] = itoa(want)
	for role := 0; role < 2; role++ {
		if role == 0 && up.seeding {
			continue // a seeder gets only leechers
		}
		cmd := redis.NewRawWriteToCmd(ctx, &x.raw, "hrandfield", &up.k.roles[up.fam][role], &x.strs[1], "withvalues")
		_ = pipe.Process(ctx, cmd)
		x.cmds[reads] = cmd
		reads++
	}
	return reads
}

// readPeers appends the peers of the raw replies in x to dst: seeders
// first for a leecher. A reply that is an error (a redirection during a
// reshard, which the raw reads do not follow) is read again through the
// parsed command, which follows it.
func (s *PeerStore) readPeers(ctx context.Context, dst []bittorrent.Peer, x *exchange, up *update, numWant, reads int) ([]bittorrent.Peer, error) {
	want := numWant
	b := x.raw.b
	n := len(dst)
	var err error
	for i := 0; i < reads; i++ {
		if err = x.cmds[i].Err(); err != nil {
			break
		}
		if dst, b, err = appendPairs(dst, b, up.addr, &want); err != nil {
			break
		}
	}
	if err == nil {
		return dst, nil
	}
	if !isReplyError(err) {
		var re replyError
		if !errors.As(err, &re) {
			return dst[:n], err
		}
	}
	// Slow path: parsed replies, redirections followed.
	dst, want = dst[:n], numWant
	for role := 0; role < 2; role++ {
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
			if p, ok := decodePeer([]byte(kv.Key), []byte(kv.Value)); ok {
				dst = append(dst, p)
				want--
			}
		}
	}
	return dst, nil
}

// AnnouncePeers appends up to numWant peers for the announcer to dst, with
// the swarm's counts and the announcer's role, in one round trip of plain
// reads. The daemon uses Announce instead, which applies the update too.
func (s *PeerStore) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	x := getExchange()
	defer putExchange(x)
	addr, af, ok := peerAddr(announcer, &x.addr)
	if !ok {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	k := s.keys(ih)
	numWant = max(numWant, 0)
	u := storage.UpdateLeecher
	if seeder {
		u = storage.UpdateSeeder
	}
	up := update{u: u, fam: af, k: &k, addr: addr, seeding: seeder}
	if cls := s.cls.Load(); cls != nil {
		return s.selectLocal(dst, x, &up, cls, numWant, announcer)
	}
	var counts storage.Counts
	role := storage.Absent
	n := len(dst)
	err := s.call(context.Background(), "announce", func(ctx context.Context) error {
		dst = dst[:n]
		x.raw.b = x.raw.b[:0]
		pipe := s.client.Pipeline()
		nS := pipe.HLen(ctx, k.roles[af][0])
		nL := pipe.HLen(ctx, k.roles[af][1])
		dl := pipe.Get(ctx, k.downloads)
		isS := pipe.HExists(ctx, k.roles[af][0], string(addr))
		isL := pipe.HExists(ctx, k.roles[af][1], string(addr))
		reads := s.queuePeerReads(ctx, pipe, x, &up, numWant)
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		d, _ := dl.Int64()
		counts = storage.Counts{Seeders: clampU32(nS.Val()), Leechers: clampU32(nL.Val()), Downloads: clampU32(d)}
		switch {
		case isS.Val():
			role = storage.Seeder
		case isL.Val():
			role = storage.Leecher
		}
		var err error
		dst, err = s.readPeers(ctx, dst, x, &up, numWant, reads)
		return err
	})
	if err != nil {
		return dst[:n], storage.Counts{}, storage.Absent, err
	}
	return dst, counts, role, nil
}

// ScrapeSwarm returns the counts of ih's swarm for af, in one round trip.
func (s *PeerStore) ScrapeSwarm(ih bittorrent.InfoHash, af bittorrent.AddressFamily) (storage.Counts, error) {
	var c [1]storage.Counts
	err := s.ScrapeSwarms(c[:], []bittorrent.InfoHash{ih}, af)
	return c[0], err
}

// ScrapeSwarms writes the counts of each of ihs for af into dst, in one
// pipelined round trip for the whole scrape (one per node of a Cluster,
// in parallel).
func (s *PeerStore) ScrapeSwarms(dst []storage.Counts, ihs []bittorrent.InfoHash, af bittorrent.AddressFamily) error {
	if af > bittorrent.IPv6 {
		clear(dst[:len(ihs)])
		return nil
	}
	return s.call(context.Background(), "scrape", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.IntCmd, 0, 2*len(ihs))
		dls := make([]*redis.StringCmd, 0, len(ihs))
		for _, ih := range ihs {
			k := s.keys(ih)
			cmds = append(cmds, pipe.HLen(ctx, k.roles[af][0]), pipe.HLen(ctx, k.roles[af][1]))
			dls = append(dls, pipe.Get(ctx, k.downloads))
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i := range ihs {
			d, _ := dls[i].Int64()
			dst[i] = storage.Counts{Seeders: clampU32(cmds[2*i].Val()), Leechers: clampU32(cmds[2*i+1].Val()), Downloads: clampU32(d)}
		}
		return nil
	})
}

var smallInts = func() (a [1024]string) {
	for i := range a {
		a[i] = strconv.Itoa(i)
	}
	return
}()

// itoa formats n without allocating for the numwants clients send.
func itoa(n int) string {
	if n >= 0 && n < len(smallInts) {
		return smallInts[n]
	}
	return strconv.Itoa(n)
}
