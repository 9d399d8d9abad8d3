package redis

import (
	"cmp"
	"context"
	"errors"
	"strconv"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
)

var errInvalidAddr = errors.New("storage/redis: peer has no valid address")

// update describes one swarm update: which script with which keys.
type update struct {
	sc   *script
	u    storage.Update
	fam  bittorrent.AddressFamily
	k    *swarmKeys
	addr []byte
	// local is set with locality on; cell is then the peer's cell with a
	// topology, "" by prefix (local.go).
	local   bool
	cell    string
	seeding bool
}

// appendUpdateArgs appends the EVALSHA (or EVAL) of an update to x.args.
func (s *PeerStore) appendUpdateArgs(x *exchange, up *update, eval bool) {
	s.noteSlotTotals()
	k, f := up.k, up.fam
	if up.u == storage.UpdateDelete {
		sc := deleteScript
		if up.local {
			sc = deleteLocalScript
		}
		x.args = sc.args(x.args, eval)
		x.args = append(x.args, &k.roles[f][0], &k.roles[f][1], &k.downloads, &k.shard.totals)
		if up.local {
			x.args = append(x.args, &k.ordered[f][0], &k.ordered[f][1])
		}
		x.args = append(x.args, &x.strs[2], &familyTag[f])
		return
	}
	if !up.local {
		x.args = putArgs(putScript.args(x.args, eval), k, f, up.u, &x.strs[2], &x.strs[3])
		return
	}
	x.args = putLocalArgs(putLocalScript.args(x.args, eval), k, f, up.u, &x.strs[2], &x.strs[3], &x.strs[6])
}

// putArgs appends the keys and arguments of put.lua to dst (after its
// EVALSHA): update u (not a delete) of the peer at addr, stored as value,
// in family af of the swarm whose keys are k.
func putArgs(dst []interface{}, k *swarmKeys, af bittorrent.AddressFamily, u storage.Update, addr, value interface{}) []interface{} {
	own, other := 0, 1
	if !u.Seeder() {
		own, other = 1, 0
	}
	dst = append(dst, &k.roles[af][own], &k.roles[af][other], &k.downloads, &k.shard.index, &k.shard.totals, addr, value)
	if u == storage.UpdateGraduate {
		dst = append(dst, &flagTag[1])
	}
	return dst
}

// flagTag are arguments passed by pointer (no allocation).
var flagTag = [2]string{"0", "1"}

// prepare fills up and x.value for an update of p; false if p has no
// valid address.
func (s *PeerStore) prepare(x *exchange, up *update, k *swarmKeys, u storage.Update, p bittorrent.Peer) bool {
	addr, af, ok := peerAddr(p, &x.addr)
	if !ok {
		return false
	}
	*up = update{u: u, fam: af, k: k, addr: addr, seeding: u.Seeder()}
	x.strs[2] = unsafe.String(&x.addr[0], len(addr))
	if classifier := s.classifier.Load(); classifier != nil {
		up.local, up.cell = true, storedCell(classifier, p.AddrPort.Addr())
		x.value = prepareLocal(x, p.ID, s.cfg.KeepPeerIDs, clock.Unix(), up.cell)
		return true
	}
	x.value = s.appendNative(x.value[:0], p.ID, clock.Unix())
	x.strs[3] = unsafe.String(&x.value[0], len(x.value))
	return true
}

// roleBefore turns what put.lua and delete.lua return into the
// announcer's role before the update.
func roleBefore(was int64, up *update) storage.Role {
	switch {
	case was == 0:
		return storage.Absent
	case up.u == storage.UpdateDelete:
		if was == 1 {
			return storage.Seeder
		}
		return storage.Leecher
	case (was == 1) == up.seeding:
		return storage.Seeder
	}
	return storage.Leecher
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
	if p.Kind == bittorrent.WebSocketPeer {
		return s.webUpdate(op, ih, u, p)
	}
	x := getExchange()
	defer putExchange(x)
	k := s.keys(ih)
	var up update
	if !s.prepare(x, &up, &k, u, p) {
		storage.ObserveError(op)
		return errInvalidAddr
	}
	return s.call(context.Background(), op, func(ctx context.Context) error {
		if s.tiny != nil && !up.local {
			return s.tinyApply(ctx, x, &up)
		}
		s.appendUpdateArgs(x, &up, false)
		return up.script().run(ctx, s.client, x.args).Err()
	})
}

func (up *update) script() *script {
	switch {
	case up.u == storage.UpdateDelete && up.local:
		return deleteLocalScript
	case up.u == storage.UpdateDelete:
		return deleteScript
	case up.local:
		return putLocalScript
	}
	return putScript
}

// Announce answers an announce and applies its update in one round trip:
// a pipeline of the counts (HLEN of both roles, GET of the downloads),
// the update's plain commands in one MULTI/EXEC (plain.go), and the
// HRANDFIELD reads of numWant+1 seeders (for
// a leecher) and leechers, one more than wanted so that the announcer can
// be skipped. Every reply is read raw, in place, from one buffer.
func (s *PeerStore) Announce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	if announcer.Kind == bittorrent.WebSocketPeer {
		return s.webAnnounce(dst, ih, u, true, numWant, announcer)
	}
	return s.announce(dst, ih, u, numWant, announcer, false, false)
}

// AnnounceAddrs is Announce for a reply that needs only the peers'
// addresses (storage.AddrAnnouncer): the peer reads are HRANDFIELD without
// WITHVALUES, so Redis sends, and the tracker reads, a third of the bytes,
// and the peers come back with zero IDs; unless downloads, the pipeline
// has no GET of the download count, which is then 0. With a locality
// topology, and for WebSocket peers, it is Announce.
func (s *PeerStore) AnnounceAddrs(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer, downloads bool) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	if announcer.Kind == bittorrent.WebSocketPeer {
		return s.webAnnounce(dst, ih, u, true, numWant, announcer)
	}
	return s.announce(dst, ih, u, numWant, announcer, true, !downloads)
}

func (s *PeerStore) announce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, announcer bittorrent.Peer, addrsOnly, noDownloads bool) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	x := getExchange()
	defer putExchange(x)
	// The keys and the update live in the pooled exchange: no allocation.
	x.k, x.keyBuf = s.keysIn(x.keyBuf, ih)
	up := &x.up
	if !s.prepare(x, up, &x.k, u, announcer) {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	numWant = max(numWant, 0)
	if s.web.seen.Load() {
		s.webRolesIn(x, up.fam)
	}
	if classifier := s.classifier.Load(); classifier != nil {
		return s.announceLocal(dst, x, up, classifier, numWant, announcer)
	}
	x.addrsOnly, x.noDownloads = addrsOnly || !s.cfg.KeepPeerIDs, noDownloads // values without IDs: nothing to read
	var counts storage.Counts
	var role storage.Role
	n := len(dst)
	err := s.call(context.Background(), "announce", func(ctx context.Context) error {
		var err error
		if s.tiny != nil && !s.tiny.isBig(x.k.rawIH, up.fam) {
			// A swarm not known to hold two peers: it may be in
			// the shared form (bucket.go).
			dst, counts, role, err = s.announceTiny(ctx, dst[:n], x, up, numWant)
			return err
		}
		dst, counts, role, err = s.announceRaw(ctx, dst[:n], x, up, numWant)
		if errors.Is(err, errUnapplied) {
			// A Cluster's slot moving or moved under the swarm (a
			// reshard, a failover), and Redis applied nothing: the
			// whole announce again, with parsed commands that follow
			// redirections and a transaction sent again whole.
			dst, counts, role, err = s.announceFollowing(ctx, dst[:n], x, up, numWant)
		}
		return err
	})
	if err != nil {
		return dst[:n], storage.Counts{}, storage.Absent, err
	}
	return dst, counts, role, nil
}

// announceRaw is Announce's one round trip, its replies read raw: the
// counts, the update's plain commands in one MULTI/EXEC (plain.go), the
// peer reads. On a single Redis or Sentinel they are written in RESP on
// the wire path's connections (resp.go); with a Cluster they go to the
// master of the swarm's slot, through that master's own go-redis client.
// An update refused for where its slot is comes back as errUnapplied.
func (s *PeerStore) announceRaw(ctx context.Context, dst []bittorrent.Peer, x *exchange, up *update, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	k, f := up.k, up.fam
	n0 := len(dst)
	x.args, x.raw.b = x.args[:0], x.raw.b[:0]
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// The commands go to the slot's master as they are, on its own
		// connections: the cluster client's pipeline would send MULTI
		// and EXEC (no key) to any master, and follow a redirected
		// command alone, out of its transaction.
		node, err := cc.MasterForKey(ctx, k.roles[f][0])
		if err != nil {
			return dst, storage.Counts{}, storage.Absent, err
		}
		x.node = node
	}
	// Every topology's announce is wired: a single Redis or Sentinel on
	// connections dialled with s.wireOpt, a Cluster on x.node's.
	x.wired = true
	x.wireAnnounce(up, numWant)
	x.probe = isProbe(ctx)
	if err := s.roundTrip(ctx, x); err != nil {
		return dst, storage.Counts{}, storage.Absent, err
	}
	b := x.raw.b
	// The integer replies to read, in order: v's slots (v[2] stays 0
	// without the GET).
	slots := [5]int{0, 1, 2, 3, 4}
	ints := 3
	if x.noDownloads {
		slots[2], slots[3], ints = 3, 4, 2
	}
	if x.web[0] != "" {
		ints += 2
	}
	var v [5]int64
	var err, readErr error
	for _, i := range slots[:ints] {
		if v[i], b, err = readInt(b); err != nil {
			// An error reply is one line: the update's replies that
			// follow are still read, so that what it applied reaches
			// the totals.
			var re replyError
			if !errors.As(err, &re) {
				return dst, storage.Counts{}, storage.Absent, err
			}
			readErr = cmp.Or(readErr, err)
		}
	}
	// v[3] and v[4] are the WebSocket counts, when read (0 otherwise).
	counts := storage.Counts{Seeders: clampU32(v[0] + v[3]), Leechers: clampU32(v[1] + v[4]), Downloads: clampU32(v[2])}
	occ, occupied, b, err := readOccupant(b, k, f)
	if err != nil {
		var re replyError
		if !errors.As(err, &re) {
			return dst, storage.Counts{}, storage.Absent, err
		}
		readErr = cmp.Or(readErr, err)
	}
	ch, b, err := readPlainUpdate(b, x, up)
	if !ch.applied {
		if isRedirectErr(err) {
			return dst, storage.Counts{}, storage.Absent, errUnapplied
		}
		return dst, storage.Counts{}, storage.Absent, cmp.Or(err, readErr)
	}
	was := v[0] + v[1]
	if isRedirectErr(readErr) {
		// A count's key had already moved (a reshard) while the
		// update's had not: the update is applied, so the counts before
		// it are read again after it, following, less its own changes.
		counts, was, readErr = s.countsBefore(ctx, x, up, ch)
	}
	if occupied {
		was++
	}
	ds, dl, dw := ch.deltas(was, up.u)
	role := ch.role
	if occupied && err == nil && readErr == nil {
		err = s.afterOccupant(ctx, up, occ, &counts, &role, &ds, &dl, &dw)
	} else if s.tiny != nil {
		s.tiny.setBig(k.rawIH, f, was+ds+dl)
	}
	s.pending.add(f, ds, dl, dw)
	if err = cmp.Or(readErr, err); err != nil {
		return dst, storage.Counts{}, storage.Absent, err
	}
	want := numWant
	if occupied {
		dst = occ.appendTo(dst, string(occ.addr) == string(up.addr), up.seeding, want, !x.addrsOnly)
		want = numWant - len(dst) + n0
	}
	for range x.reads {
		// The peer reads' replies follow the update's in x.raw.
		if dst, b, err = appendPeers(dst, b, up.addr, &want, !x.addrsOnly); err != nil {
			// The update is applied: read the peers again, following.
			if isRedirectErr(err) {
				dst, err = s.readPeers(ctx, dst, up, numWant)
			}
			return dst, counts, role, err
		}
	}
	return dst, counts, role, nil
}

// wireAnnounce writes the commands of announceRaw in RESP to x.wire
// (resp.go) and counts their replies.
func (x *exchange) wireAnnounce(up *update, numWant int) {
	k, f := up.k, up.fam
	w := appendCmd2(x.wire[:0], "HLEN", k.roles[f][0])
	w = appendCmd2(w, "HLEN", k.roles[f][1])
	x.replies = 2
	if !x.noDownloads {
		w = appendCmd2(w, "GET", k.downloads)
		x.replies++
	}
	if x.web[0] != "" {
		w = appendCmd2(appendCmd2(w, "HLEN", x.web[0]), "HLEN", x.web[1])
		x.replies += 2
	}
	if k.bucket[f] != "" {
		// The swarm's field in its bucket (bucket.go).
		w = appendCmd3(w, "HGET", k.bucket[f], k.rawIH)
		x.replies++
	}
	x.plainUpdate(up)
	w = appendArgs(w, multiArgs)
	for _, i := range x.sent[:x.nw] {
		w = appendArgs(w, x.wr[i][:wrLen[i]])
	}
	w = appendArgs(w, execArgs)
	x.replies += 2 + x.nw
	x.reads = 0
	if numWant > 0 {
		x.strs[1] = itoa(numWant + 1)
		for role := 0; role < 2; role++ {
			if role == 0 && up.seeding {
				continue // a seeder gets only leechers
			}
			if x.addrsOnly {
				w = appendCmd3(w, "HRANDFIELD", k.roles[f][role], x.strs[1])
			} else {
				w = appendCmd4(w, "HRANDFIELD", k.roles[f][role], x.strs[1], "WITHVALUES")
			}
			x.reads++
		}
	}
	x.replies += x.reads
	x.wire = w
}

// queuePeerReads appends the raw HRANDFIELD reads of an announce to
// x.cmds and returns how many.
func (s *PeerStore) queuePeerReads(ctx context.Context, x *exchange, up *update, numWant int) int {
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
		x.hrf[role] = [4]interface{}{"hrandfield", &up.k.roles[up.fam][role], &x.strs[1], "withvalues"}
		args := x.hrf[role][:]
		if x.addrsOnly {
			args = args[:3]
		}
		// Read whole into one buffer: a raw write would cost an
		// allocation per element.
		x.peerCmds[reads] = redis.NewRawCmd(ctx, args...)
		x.cmds = append(x.cmds, x.peerCmds[reads])
		reads++
	}
	return reads
}

// AnnouncePeers appends up to numWant peers for the announcer to dst, with
// the swarm's counts and the announcer's role, in one round trip of plain
// reads. The daemon uses Announce instead, which applies the update too.
func (s *PeerStore) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	if announcer.Kind == bittorrent.WebSocketPeer {
		u := storage.UpdateLeecher
		if seeder {
			u = storage.UpdateSeeder
		}
		return s.webAnnounce(dst, ih, u, false, numWant, announcer)
	}
	return s.announcePeers(dst, ih, seeder, numWant, announcer)
}

func (s *PeerStore) announcePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
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
	if s.web.seen.Load() {
		x.web = s.webRoles(ih, af)
	}
	if classifier := s.classifier.Load(); classifier != nil {
		return s.selectLocal(dst, x, &up, classifier, numWant, announcer)
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
		web := queueWebCounts(ctx, pipe, x.web)
		var bucket *redis.StringCmd
		if k.bucket[af] != "" {
			bucket = pipe.HGet(ctx, k.bucket[af], k.rawIH)
		}
		x.cmds = x.cmds[:0]
		x.addrsOnly = !s.cfg.KeepPeerIDs // no IDs to answer with, as Announce
		reads := s.queuePeerReads(ctx, x, &up, numWant)
		_ = pipe.BatchProcess(ctx, x.cmds...)
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		d, _ := dl.Int64()
		counts = web.add(storage.Counts{Seeders: clampU32(nS.Val()), Leechers: clampU32(nL.Val()), Downloads: clampU32(d)})
		switch {
		case isS.Val():
			role = storage.Seeder
		case isL.Val():
			role = storage.Leecher
		}
		want := numWant
		if bucket != nil {
			dst, want = withOccupant(dst, bucket, &up, &counts, &role, s.cfg.KeepPeerIDs, want)
		}
		for i := range reads {
			var err error
			if dst, _, err = appendPeers(dst, x.peerCmds[i].Val(), addr, &want, !x.addrsOnly); err != nil {
				var re replyError
				if errors.As(err, &re) && isRedirect(string(re)) {
					dst, err = s.readPeers(ctx, dst[:n], &up, numWant)
				}
				return err
			}
		}
		return nil
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
	// The WebSocket swarms' counts, once there are WebSocket peers, in
	// the same pipeline.
	seen := s.web.seen.Load()
	return s.call(context.Background(), "scrape", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.IntCmd, 0, 2*len(ihs))
		dls := make([]*redis.StringCmd, 0, len(ihs))
		var buckets []*redis.StringCmd
		if s.tiny != nil {
			buckets = make([]*redis.StringCmd, 0, len(ihs))
		}
		var web []webCounts
		if seen {
			web = make([]webCounts, 0, len(ihs))
		}
		for _, ih := range ihs {
			k := s.keys(ih)
			cmds = append(cmds, pipe.HLen(ctx, k.roles[af][0]), pipe.HLen(ctx, k.roles[af][1]))
			dls = append(dls, pipe.Get(ctx, k.downloads))
			if buckets != nil {
				buckets = append(buckets, pipe.HGet(ctx, k.bucket[af], k.rawIH))
			}
			if seen {
				web = append(web, queueWebCounts(ctx, pipe, s.webRoles(ih, af)))
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
			return err
		}
		for i := range ihs {
			d, _ := dls[i].Int64()
			dst[i] = storage.Counts{Seeders: clampU32(cmds[2*i].Val()), Leechers: clampU32(cmds[2*i+1].Val()), Downloads: clampU32(d)}
			if buckets != nil {
				if o, ok := parseOccupant([]byte(buckets[i].Val()), af); ok {
					o.add(&dst[i], false, storage.Absent)
				}
			}
			if seen {
				dst[i] = web[i].add(dst[i])
			}
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
