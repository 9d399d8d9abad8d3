package redis

import (
	"context"
	"encoding/hex"
	"strconv"
	"sync/atomic"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// The shared form of tiny swarms. A Redis key costs about 107 bytes of
// used_memory whatever it holds, so a swarm of one peer kept in hashes of
// its own costs 157: over the 100 bytes a peer of issue 13. With locality
// off and outside Cluster, a family of a swarm whose only peer is that
// one is instead a field of a bucket hash shared by the swarms whose info
// hashes fall in it (P{bNNNN}F, bucketCount of them a family, each a
// listpack while it holds up to 128 swarms): the field is the info hash
// (20 bytes), the value the address, the stored value and the role (s or
// l). docs/redis.md has the figures.
//
// A swarm is in one form or the other: its peer in the bucket and its
// hashes empty, or nothing of it in the bucket. Moving between the forms
// depends on what Redis holds, so it is a script (tiny.lua), which also
// answers the announce: an announce of a swarm this tracker does not know
// to hold two peers or more goes to it. The others (the common announce,
// of larger swarms) stay plain (plain.go), with one HGET of the bucket
// field more among their reads: when it finds a peer there (another
// tracker, or collection, left the swarm tiny since), the announce counts
// it, answers with it, and makes the form right in a second round trip
// (tiny.lua with nothing to update) before it replies. Readers (scrapes,
// AnnouncePeers, the listing) read the bucket field beside the hashes.

// bucketBits sets the number of buckets of a family: 8192 hold a million
// single-peer swarms in listpacks of about 122 fields.
const bucketBits = 13

const bucketCount = 1 << bucketBits

// tinyForm is what a store keeps for the shared form: the bucket names,
// and a bit per swarm and family (by hash) set while its last answer
// counted two peers or more, which sends its announces the plain way.
type tinyForm struct {
	names [2][bucketCount]string
	big   [1 << 14]atomic.Uint64
}

func newTinyForm(prefix string) *tinyForm {
	t := new(tinyForm)
	for f := range 2 {
		for n := range bucketCount {
			t.names[f][n] = prefix + "{b" + strconv.FormatUint(uint64(n), 16) + "}" + familyTag[f]
		}
	}
	return t
}

// ihHash is FNV-1a of an info hash: the bucket, and the bit of big.
func ihHash(ih []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range ih {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

func (t *tinyForm) bucketOf(ih []byte) int { return int(ihHash(ih) & (bucketCount - 1)) }

func bigBit(ih string, f bittorrent.AddressFamily) (int, uint64) {
	h := ihHash([]byte(ih))>>bucketBits<<1 | uint64(f)
	return int(h>>6) & (1<<14 - 1), 1 << (h & 63)
}

// isBig reports whether the last answer of ih's family f counted two
// peers or more.
func (t *tinyForm) isBig(ih string, f bittorrent.AddressFamily) bool {
	w, b := bigBit(ih, f)
	return t.big[w].Load()&b != 0
}

// setBig records the number of peers an answer counted after its update.
func (t *tinyForm) setBig(ih string, f bittorrent.AddressFamily, peers int64) {
	w, b := bigBit(ih, f)
	if peers >= 2 {
		t.big[w].Or(b)
	} else {
		t.big[w].And(^b)
	}
}

// bucketFamily reports whether key is one of the buckets, and its family.
func (s *PeerStore) bucketFamily(key string) (bittorrent.AddressFamily, bool) {
	if s.tiny == nil || len(key) < len(s.cfg.KeyPrefix)+4 || key[:len(s.cfg.KeyPrefix)] != s.cfg.KeyPrefix {
		return 0, false
	}
	rest := key[len(s.cfg.KeyPrefix):]
	if rest[0] != '{' || rest[1] != 'b' || rest[len(rest)-2] != '}' {
		return 0, false
	}
	n, err := strconv.ParseUint(rest[2:len(rest)-2], 16, 32)
	if err != nil || n >= bucketCount {
		return 0, false
	}
	switch rest[len(rest)-1] {
	case '4':
		return bittorrent.IPv4, s.tiny.names[0][n] == key
	case '6':
		return bittorrent.IPv6, s.tiny.names[1][n] == key
	}
	return 0, false
}

// updateTags are tiny.lua's names of the updates, by storage.Update; the
// flags its fifth and sixth arguments.
var (
	updateTags         = [...]string{storage.UpdateSeeder: "s", storage.UpdateLeecher: "l", storage.UpdateGraduate: "g", storage.UpdateDelete: "d"}
	noUpdate           = "n"
	withValues, noVals = "v", ""
	zero               = "0"
)

// tinyArgs appends the EVALSHA (EVAL with eval) of tiny.lua for up, with
// want peers read of each role, to dst.
func (s *PeerStore) tinyArgs(dst []interface{}, x *exchange, up *update, u *string, want *string, values bool, eval bool) []interface{} {
	k, f := up.k, up.fam
	dst = tinyScript.args(dst, eval)
	dst = append(dst, &k.bucket[f], &k.roles[f][0], &k.roles[f][1], &k.downloads)
	return tinyArgv(dst, x, up, u, want, values)
}

// tinyArgv appends tiny.lua's ARGV.
func tinyArgv(dst []interface{}, x *exchange, up *update, u *string, want *string, values bool) []interface{} {
	dst = append(dst, &up.k.rawIH, &x.strs[2], &x.strs[3], u, want)
	v := &noVals
	if values {
		v = &withValues
	}
	return append(dst, v, &flagTag[boolInt(up.seeding)])
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// announceTiny is announceRaw by tiny.lua: one EVALSHA (and the
// WebSocket counts), on the wire path.
func (s *PeerStore) announceTiny(ctx context.Context, dst []bittorrent.Peer, x *exchange, up *update, numWant int) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	want := &zero
	if numWant > 0 {
		x.strs[1] = itoa(numWant + 1)
		want = &x.strs[1]
	}
	for eval := false; ; eval = true {
		x.args, x.raw.b = x.args[:0], x.raw.b[:0]
		x.args = s.tinyArgs(x.args, x, up, &updateTags[up.u], want, !x.addrsOnly, eval)
		w := appendArgs(x.wire[:0], x.args)
		x.replies = 1
		if x.web[0] != "" {
			w = appendCmd2(appendCmd2(w, "HLEN", x.web[0]), "HLEN", x.web[1])
			x.replies += 2
		}
		x.wire, x.wired = w, true
		x.probe = isProbe(ctx)
		if err := s.roundTrip(ctx, x); err != nil {
			return dst, storage.Counts{}, storage.Absent, err
		}
		r, b, err := readTiny(x.raw.b)
		if !eval && isNoScript(err) {
			continue
		}
		if err != nil {
			return dst, storage.Counts{}, storage.Absent, err
		}
		s.pending.add(up.fam, r.ds, r.dl, r.dw)
		s.tiny.setBig(up.k.rawIH, up.fam, r.after)
		want := numWant
		for range 2 {
			if dst, b, err = appendPeers(dst, b, up.addr, &want, !x.addrsOnly); err != nil {
				return dst, storage.Counts{}, storage.Absent, err
			}
		}
		var web [2]int64
		for i := 0; x.web[0] != "" && i < 2; i++ {
			if web[i], b, err = readInt(b); err != nil {
				return dst, storage.Counts{}, storage.Absent, err
			}
		}
		counts := storage.Counts{Seeders: clampU32(r.seeders + web[0]), Leechers: clampU32(r.leechers + web[1]), Downloads: clampU32(r.downloads)}
		return dst, counts, r.role, nil
	}
}

// tinyReply is tiny.lua's reply, but its two peer reads.
type tinyReply struct {
	role                                storage.Role
	seeders, leechers, downloads, after int64
	ds, dl, dw                          int64
}

var roles = [3]storage.Role{storage.Absent, storage.Seeder, storage.Leecher}

// readTiny reads a raw reply of tiny.lua.
func readTiny(b []byte) (tinyReply, []byte, error) {
	var r tinyReply
	line, b, ok := readLine(b)
	switch {
	case !ok || len(line) == 0:
		return r, b, errBadReply
	case line[0] == '-':
		return r, b, replyError(line[1:])
	case string(line) != "*10":
		return r, b, errBadReply
	}
	var v [8]int64
	for i := range v {
		var err error
		if v[i], b, err = readInt(b); err != nil {
			return r, b, err
		}
	}
	if v[0] < 0 || v[0] > 2 {
		return r, b, errBadReply
	}
	r = tinyReply{role: roles[v[0]], seeders: v[1], leechers: v[2], downloads: v[3], ds: v[4], dl: v[5], dw: v[6], after: v[7]}
	return r, b, nil
}

// occupant is the peer a plain announce found in its swarm's bucket
// field: its address, stored value, role.
type occupant struct {
	addr, value []byte
	role        storage.Role
}

// parseOccupant splits a bucket value of family f.
func parseOccupant(v []byte, f bittorrent.AddressFamily) (occupant, bool) {
	alen := 6
	if f == bittorrent.IPv6 {
		alen = 18
	}
	if len(v) < alen+5 {
		return occupant{}, false
	}
	o := occupant{addr: v[:alen], value: v[alen : len(v)-1], role: storage.Leecher}
	if v[len(v)-1] == 's' {
		o.role = storage.Seeder
	}
	return o, true
}

// readBulk reads a raw bulk reply: nil for a nil reply.
func readBulk(b []byte) ([]byte, []byte, error) {
	line, b, ok := readLine(b)
	switch {
	case !ok || len(line) == 0:
		return nil, b, errBadReply
	case line[0] == '-':
		return nil, b, replyError(line[1:])
	case line[0] != '$':
		return nil, b, errBadReply
	}
	l, ok := parseLen(line[1:])
	switch {
	case !ok:
		return nil, b, errBadReply
	case l < 0:
		return nil, b, nil
	case len(b) < l+2:
		return nil, b, errBadReply
	}
	return b[:l], b[l+2:], nil
}

// add adds o to counts; self is whether o is the announcer, and role the
// announcer's role before as its hashes said.
func (o occupant) add(c *storage.Counts, self bool, role storage.Role) {
	if self && role != storage.Absent {
		return // the same peer in the swarm's hashes: counted there
	}
	if o.role == storage.Seeder {
		c.Seeders++
	} else {
		c.Leechers++
	}
}

// appendTo appends o to dst if it is a peer for the announcer (not self,
// a leecher for a seeder) and there is room; with its peer ID if ids.
func (o occupant) appendTo(dst []bittorrent.Peer, self, seeding bool, want int, ids bool) []bittorrent.Peer {
	if self || want <= 0 || seeding && o.role == storage.Seeder {
		return dst
	}
	if !ids {
		o.value = nil
	}
	if p, ok := decodePeer(o.addr, o.value); ok {
		dst = append(dst, p)
	}
	return dst
}

// readOccupant reads the reply of the HGET of k's bucket field for family
// f, when a plain announce sent one.
func readOccupant(b []byte, k *swarmKeys, f bittorrent.AddressFamily) (occupant, bool, []byte, error) {
	if k.bucket[f] == "" {
		return occupant{}, false, b, nil
	}
	v, b, err := readBulk(b)
	o, ok := parseOccupant(v, f)
	return o, ok, b, err
}

// withOccupant adds the peer of the swarm's bucket field, as a reader's
// HGET read it, to what it answers the announcer of up: the counts, its
// role, and up to want peers appended to dst; it returns dst and how
// many peers are still wanted.
func withOccupant(dst []bittorrent.Peer, hget *redis.StringCmd, up *update, counts *storage.Counts, role *storage.Role, ids bool, want int) ([]bittorrent.Peer, int) {
	o, ok := parseOccupant([]byte(hget.Val()), up.fam)
	if !ok {
		return dst, want
	}
	self := string(o.addr) == string(up.addr)
	o.add(counts, self, *role)
	if self && *role == storage.Absent {
		*role = o.role
	}
	n := len(dst)
	dst = o.appendTo(dst, self, up.seeding, want, ids)
	return dst, want - (len(dst) - n)
}

// afterOccupant corrects what a plain announce did (counts, role, the
// changes to the totals) for a peer it found in its swarm's bucket, and
// makes the swarm's form right in a second round trip (tiny.lua). ds,
// dl, dw are the changes as if the bucket were empty, from was+1 peers.
func (s *PeerStore) afterOccupant(ctx context.Context, up *update, o occupant, counts *storage.Counts, role *storage.Role, ds, dl, dw *int64) error {
	self := string(o.addr) == string(up.addr)
	// dup: the announcer was in its hash too (a plain announce of
	// another tracker had not made the form right yet): the plain
	// update's changes counted it.
	dup := self && *role != storage.Absent
	o.add(counts, self, *role)
	u := &noUpdate
	switch {
	case self && up.u == storage.UpdateDelete:
		// A stop of the bucket's own peer: tiny.lua removes it there.
		u = &updateTags[storage.UpdateDelete]
	case dup:
	case self && o.role == storage.Seeder:
		*ds-- // moved from the bucket to a hash: not a new peer
	case self:
		*dl--
	}
	if self && !dup {
		*role = o.role
	}
	x := getExchange()
	defer putExchange(x)
	x.strs[2], x.strs[3] = string(up.addr), ""
	args := s.tinyArgs(x.args[:0], x, up, u, &zero, false, false)
	v, err := tinyScript.run(ctx, s.client, args).Slice()
	if err != nil {
		return err
	}
	if len(v) != 10 {
		return errBadReply
	}
	if u != &noUpdate {
		if !dup {
			*ds += asInt(v[4])
			*dl += asInt(v[5])
		}
		*dw += asInt(v[6])
	}
	s.tiny.setBig(up.k.rawIH, up.fam, asInt(v[7]))
	return nil
}

// tinyApply is apply (PutSeeder, PutLeecher, GraduateLeecher,
// DeletePeer) with the shared form: tiny.lua, reading no peer.
func (s *PeerStore) tinyApply(ctx context.Context, x *exchange, up *update) error {
	k := up.k
	x.args = tinyApplyScript.args(x.args[:0], false)
	x.args = append(x.args, &k.bucket[up.fam], &k.roles[up.fam][0], &k.roles[up.fam][1], &k.downloads, &k.shard.totals)
	x.args = tinyArgv(x.args, x, up, &updateTags[up.u], &zero, false)
	v, err := tinyApplyScript.run(ctx, s.client, x.args).Slice()
	if err != nil {
		return err
	}
	if len(v) != 10 {
		return errBadReply
	}
	s.tiny.setBig(up.k.rawIH, up.fam, asInt(v[7]))
	return nil
}

// addBucket adds to rc what a bucket of family f held before collection
// (bucket_gc.lua's reply: removed, seeders, leechers, swarms, ...).
func (rc *recount) addBucket(f bittorrent.AddressFamily, v []int64) {
	rc[3*f] += v[3]
	rc[3*f+1] += v[1]
	rc[3*f+2] += v[2]
}

// bucketMembers returns the swarms (index members: H in hex) of a bucket.
func (s *PeerStore) bucketMembers(ctx context.Context, key string) ([]string, error) {
	var fields []string
	err := s.call(ctx, "walk", func(ctx context.Context) (err error) {
		fields, err = s.client.HKeys(ctx, key).Result()
		return err
	})
	for i, f := range fields {
		fields[i] = hex.EncodeToString([]byte(f))
	}
	return fields, err
}
