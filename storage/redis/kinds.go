package redis

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
)

// WebSocket peers (bittorrent.WebSocketPeer) live in a swarm of their
// own, in keys beside the native swarm's, under the same hash tag (so that
// on a Cluster an announce of either kind still reaches one slot):
//
//	P{H}wFs  hash of the WebSocket seeders: A -> peer ID, last seen, and
//	         the number of the instance that holds the peer's socket (2
//	         bytes big-endian, absent when it is 0)
//	P{H}wFl  the WebSocket leechers, the same
//
// The downloads key P{H}d is the swarm's, shared by both kinds. The
// WebSocket swarm has its own member in its shard's index, "w" then H,
// so that collection walks it like any swarm (with locality off: browsers
// are not grouped). The scripts are the native swarm's, run on these keys.
//
// Counts add up both kinds. A WebSocket announce reads the native counts
// in the same round trip as its own; a native announce or scrape reads
// the WebSocket counts only once WebSocket peers are known to exist under
// key_prefix (web.seen: this store stored one, or its reporting found the
// marker key Pw that the first one sets): two HLENs more in the
// announce's or scrape's own pipeline (same hash tag, so one slot on a
// Cluster; one round trip still), so that a tracker without WebSocket
// peers pays nothing for them.

var _ interface{ KeepsPeerKinds() } = (*PeerStore)(nil)

// KeepsPeerKinds marks the store as one that keeps WebSocket peers apart
// (storage.KindKeeper).
func (s *PeerStore) KeepsPeerKinds() {}

// webSuffixes end the keys of a WebSocket swarm, in the order keys fills
// them (the last, the downloads, is the native swarm's).
var webSuffixes = [9]string{"w4s", "w4l", "w6s", "w6l", "w4sz", "w4lz", "w6sz", "w6lz", "d"}

// webMember starts the index member of a WebSocket swarm.
const webMember = "w"

// webMarker is the key (after key_prefix) whose existence tells every
// tracker sharing the prefix that WebSocket peers may exist.
const webMarker = "w"

// webState is the store's knowledge of WebSocket peers.
type webState struct {
	// seen is set once WebSocket peers are known to exist under
	// key_prefix; marked once this store set the marker key.
	seen, marked atomic.Bool
	// instance is the number written into the records of the WebSocket
	// peers this store stores (0 until a relay gives it one).
	instance atomic.Uint32
	// relay is started by the first call of Relay (relay.go).
	relayOnce sync.Once
	relay     atomic.Pointer[relay]
}

// webKeys returns the keys of ih's WebSocket swarm.
func (s *PeerStore) webKeys(ih bittorrent.InfoHash) swarmKeys {
	h := hex.EncodeToString(ih[:])
	base := s.cfg.KeyPrefix + "{" + h + "}"
	var k swarmKeys
	for i, suffix := range webSuffixes {
		k.set(i, base+suffix)
	}
	k.hexIH = webMember + h
	k.shard = s.shardOf([]byte(h))
	return k
}

// swarmMember returns the info hash of an index member, native or
// WebSocket, and whether it is a WebSocket swarm's.
func swarmMember(m string) (ih bittorrent.InfoHash, web, ok bool) {
	if web = strings.HasPrefix(m, webMember) && len(m) == 2*len(ih)+len(webMember); web {
		m = m[len(webMember):]
	}
	n, err := hex.Decode(ih[:], []byte(m))
	return ih, web, err == nil && n == len(ih)
}

// webValue is the stored value of a WebSocket peer.
func (s *PeerStore) webValue(id bittorrent.PeerID) string {
	b := make([]byte, 0, valueLen+2)
	b = appendValue(b, id, clock.Unix())
	if n := s.web.instance.Load(); n != 0 {
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	}
	return string(b)
}

// decodeWebPeer reads a WebSocket peer as stored.
func decodeWebPeer(a, v string) (bittorrent.Peer, bool) {
	p, ok := decodePeer([]byte(a), []byte(v))
	p.Kind = bittorrent.WebSocketPeer
	if len(v) >= valueLen+2 {
		p.Instance = binary.BigEndian.Uint16([]byte(v[valueLen : valueLen+2]))
	}
	return p, ok
}

// markWeb records that WebSocket peers exist, for every tracker sharing
// the prefix.
func (s *PeerStore) markWeb(ctx context.Context, pipe redis.Pipeliner) {
	s.web.seen.Store(true)
	if s.web.marked.CompareAndSwap(false, true) {
		pipe.Set(ctx, s.cfg.KeyPrefix+webMarker, "1", 0)
	}
}

// lookForWeb sets webSeen when another tracker has stored WebSocket
// peers under the prefix (run with the reporting).
func (s *PeerStore) lookForWeb() {
	if s.web.seen.Load() {
		return
	}
	_ = s.call(context.Background(), "stats", func(ctx context.Context) error {
		n, err := s.client.Exists(ctx, s.cfg.KeyPrefix+webMarker).Result()
		if n > 0 {
			s.web.seen.Store(true)
		}
		return err
	})
}

// webUpdate applies an update of a WebSocket peer: one script, one round
// trip.
func (s *PeerStore) webUpdate(op string, ih bittorrent.InfoHash, u storage.Update, p bittorrent.Peer) error {
	var buf [18]byte
	addr, af, ok := peerAddr(p, &buf)
	if !ok {
		storage.ObserveError(op)
		return errInvalidAddr
	}
	k := s.webKeys(ih)
	value := s.webValue(p.ID)
	return s.call(context.Background(), op, func(ctx context.Context) error {
		return s.webPipeline(ctx, func(pipe redis.Pipeliner, eval bool) {
			s.webScript(ctx, pipe, &k, u, af, string(addr), value, eval)
			s.trackMember(ctx, pipe, ih, string(addr), u == storage.UpdateDelete)
		})
	})
}

// webScript queues the update script of a WebSocket peer on pipe: the
// native swarm's scripts, on the WebSocket swarm's keys.
func (s *PeerStore) webScript(ctx context.Context, pipe redis.Pipeliner, k *swarmKeys, u storage.Update, af bittorrent.AddressFamily, addr, value string, eval bool) *redis.Cmd {
	s.noteSlotTotals()
	if u == storage.UpdateDelete {
		args := deleteScript.args(make([]interface{}, 0, 9), eval)
		args = append(args, k.roles[af][0], k.roles[af][1], k.downloads, k.shard.totals, addr, familyTag[af])
		return pipe.Do(ctx, args...)
	}
	s.markWeb(ctx, pipe)
	args := putArgs(putScript.args(make([]interface{}, 0, 10), eval), k, af, u, addr, value)
	return pipe.Do(ctx, args...)
}

// webPipeline runs the commands queue puts on a pipeline, again with
// EVAL instead of EVALSHA when Redis does not hold a script. Its error is
// the first of a command's, a missing key (GET) aside.
func (s *PeerStore) webPipeline(ctx context.Context, queue func(pipe redis.Pipeliner, eval bool)) error {
	var first error
	for _, eval := range []bool{false, true} {
		pipe := s.client.Pipeline()
		queue(pipe, eval)
		cmds, _ := pipe.Exec(ctx)
		first = nil
		noScript := false
		for _, c := range cmds {
			err := c.Err()
			if err == nil || errors.Is(err, redis.Nil) {
				continue
			}
			noScript = noScript || isNoScript(err)
			if first == nil {
				first = err
			}
		}
		if !noScript {
			break
		}
	}
	return first
}

// kindCounts are the reads of one family's counts of both kinds.
type kindCounts struct {
	own, other [2]*redis.IntCmd
	downloads  *redis.StringCmd
	// bucket reads the native peer in the shared form (bucket.go).
	bucket *redis.StringCmd
	af     bittorrent.AddressFamily
}

// queueCounts queues the reads of the counts of both kinds of ih's swarm
// for af.
func (s *PeerStore) queueCounts(ctx context.Context, pipe redis.Pipeliner, web, native *swarmKeys, af bittorrent.AddressFamily) kindCounts {
	var c kindCounts
	for r := 0; r < 2; r++ {
		c.own[r] = pipe.HLen(ctx, web.roles[af][r])
		c.other[r] = pipe.HLen(ctx, native.roles[af][r])
	}
	c.downloads = pipe.Get(ctx, native.downloads)
	if native.bucket[af] != "" {
		c.bucket, c.af = pipe.HGet(ctx, native.bucket[af], native.rawIH), af
	}
	return c
}

func (c kindCounts) counts() storage.Counts {
	d, _ := c.downloads.Int64()
	counts := storage.Counts{
		Seeders:   clampU32(c.own[0].Val() + c.other[0].Val()),
		Leechers:  clampU32(c.own[1].Val() + c.other[1].Val()),
		Downloads: clampU32(d),
	}
	if c.bucket != nil {
		if o, ok := parseOccupant([]byte(c.bucket.Val()), c.af); ok {
			o.add(&counts, false, storage.Absent)
		}
	}
	return counts
}

// webAnnounce is Announce (with u) or AnnouncePeers (u < 0: no update)
// for a WebSocket peer: the counts of both kinds, the update, and the
// reads of WebSocket peers, in one pipelined round trip (on a Cluster, to
// one slot).
func (s *PeerStore) webAnnounce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, apply bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	var buf [18]byte
	addr, af, ok := peerAddr(announcer, &buf)
	if !ok {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	numWant = max(numWant, 0)
	web, native := s.webKeys(ih), s.keys(ih)
	value := s.webValue(announcer.ID)
	n := len(dst)
	var counts storage.Counts
	role := storage.Absent
	err := s.call(context.Background(), "announce", func(ctx context.Context) error {
		var c kindCounts
		var script *redis.Cmd
		var roles [2]*redis.BoolCmd
		var reads [2]*redis.KeyValueSliceCmd
		err := s.webPipeline(ctx, func(pipe redis.Pipeliner, eval bool) {
			c = s.queueCounts(ctx, pipe, &web, &native, af)
			if apply {
				script = s.webScript(ctx, pipe, &web, u, af, string(addr), value, eval)
				s.trackMember(ctx, pipe, ih, string(addr), u == storage.UpdateDelete)
			} else {
				roles[0] = pipe.HExists(ctx, web.roles[af][0], string(addr))
				roles[1] = pipe.HExists(ctx, web.roles[af][1], string(addr))
			}
			if numWant == 0 {
				return
			}
			for r := 0; r < 2; r++ {
				if r == 0 && u.Seeder() {
					continue // a seeder gets only leechers
				}
				reads[r] = pipe.HRandFieldWithValues(ctx, web.roles[af][r], numWant+1)
			}
		})
		if err != nil {
			return err
		}
		counts = c.counts()
		if apply {
			was, _ := script.Int64()
			role = roleBefore(was, &update{u: u, seeding: u.Seeder()})
		} else if roles[0].Val() {
			role = storage.Seeder
		} else if roles[1].Val() {
			role = storage.Leecher
		}
		dst = dst[:n]
		want := numWant
		for _, r := range reads {
			if r == nil {
				continue
			}
			for _, kv := range r.Val() {
				if want == 0 {
					break
				}
				if len(kv.Key) != len(addr) || kv.Key == string(addr) {
					continue
				}
				if p, ok := decodeWebPeer(kv.Key, kv.Value); ok {
					dst = append(dst, p)
					want--
				}
			}
		}
		return nil
	})
	if err != nil {
		return dst[:n], storage.Counts{}, storage.Absent, err
	}
	return dst, counts, role, nil
}

// webRolesIn cuts the names of the WebSocket seeders and leechers of
// x.k's swarm, family af, from x.keyBuf, in the room keysIn left after
// the native names (no allocation), into x.web.
func (s *PeerStore) webRolesIn(x *exchange, af bittorrent.AddressFamily) {
	x.web, x.keyBuf = appendWebRoles(x.keyBuf, s.cfg.KeyPrefix, x.k.hexIH, af)
}

// webRoles returns the names of the WebSocket seeders and leechers of
// ih's swarm, family af.
func (s *PeerStore) webRoles(ih bittorrent.InfoHash, af bittorrent.AddressFamily) [2]string {
	var h [40]byte
	hex.Encode(h[:], ih[:])
	k, _ := appendWebRoles(nil, s.cfg.KeyPrefix, string(h[:]), af)
	return k
}

func appendWebRoles(buf []byte, prefix, hexIH string, af bittorrent.AddressFamily) ([2]string, []byte) {
	var k [2]string
	for r := range k {
		start := len(buf)
		buf = append(buf, prefix...)
		buf = append(buf, '{')
		buf = append(buf, hexIH...)
		buf = append(buf, '}')
		buf = append(buf, webSuffixes[2*int(af)+r]...)
		k[r] = unsafe.String(&buf[start], len(buf)-start)
	}
	return k, buf
}

// queueWebHlen fills the arguments of the HLENs of x.web.
func (x *exchange) queueWebHlen() {
	x.webHlen[0] = [2]interface{}{"hlen", &x.web[0]}
	x.webHlen[1] = [2]interface{}{"hlen", &x.web[1]}
}

// webCounts are the HLENs of a WebSocket swarm's seeders and leechers
// (nil when WebSocket peers are not known to exist).
type webCounts [2]*redis.IntCmd

// queueWebCounts queues the HLENs of the WebSocket roles k on pipe (none
// when k is empty: no WebSocket peers known).
func queueWebCounts(ctx context.Context, pipe redis.Pipeliner, k [2]string) webCounts {
	if k[0] == "" {
		return webCounts{}
	}
	return webCounts{pipe.HLen(ctx, k[0]), pipe.HLen(ctx, k[1])}
}

// add adds the WebSocket seeders and leechers to the native counts c.
func (w webCounts) add(c storage.Counts) storage.Counts {
	if w[0] == nil {
		return c
	}
	c.Seeders = clampU32(int64(c.Seeders) + w[0].Val())
	c.Leechers = clampU32(int64(c.Leechers) + w[1].Val())
	return c
}

// err is the first error of the reads.
func (w webCounts) err() error {
	for _, c := range w {
		if c != nil && c.Err() != nil {
			return c.Err()
		}
	}
	return nil
}

// sum is a reply holding the sum of the replies of two HLENs.
func sum(a, b *redis.IntCmd) *redis.IntCmd {
	return redis.NewIntResult(a.Val()+b.Val(), nil)
}
