package redis

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"strconv"
	"unsafe"

	"github.com/chihaya/chihaya/bittorrent"
)

// The key layout. P is key_prefix, H the info hash in lower-case hex, in
// braces: Redis Cluster places a key by the part in braces (its hash
// tag), so all the keys of one swarm are in one hash slot, and one
// script or pipeline reaches all of them on one node. F is the address
// family ("4" or "6"), A a peer's address and port as raw bytes (4 or
// 16 address bytes, then the port big-endian).
//
//	P{H}Fs  hash of the seeders: A -> peer ID (20 bytes, only with
//	        keep_peer_ids), last seen (Unix seconds, 4 bytes big-endian);
//	        with locality the stamp, the cell, and the ID in a short
//	        role (local.go)
//	P{H}Fl  hash of the leechers, the same
//	P{H}d   string, the torrent's completed downloads
//
// and per shard (one shard with a single Redis or Sentinel; one per hash
// slot with a Cluster, T a tag that hashes to the slot):
//
//	P{T}i   set of the shard's swarms (H), for collection
//	P{T}n   hash of the shard's totals that the update scripts change:
//	        sF, lF, wF (seeders, leechers, swarms of family F); outside
//	        Cluster it is Pn
//	P{T}gc  string, held by the tracker whose turn it is to collect the
//	        slots of one node
//
// and once for all (totals.go):
//
//	Pn      hash of the totals, the same fields
//	Pcut    string, the recount's cut (Unix ms)
//	Pr<cut> hash, the recount's tally: the fields counted so far, and
//	        done, the servers counted
//	Psn     string, set once update scripts changed a Cluster's P{T}n
//
// A peer is in at most one of the two role hashes of its family, so the
// counts are their lengths (HLEN), and a move between roles is one HDEL
// and one HSET. The last-seen stamp is in the value, so collection reads
// the hashes whole; random peers are HRANDFIELD, O(numwant).

// valueLen is the length of a stored value without its cell.
const valueLen = len(bittorrent.PeerID{}) + 4

var familyTag = [2]string{bittorrent.IPv4: "4", bittorrent.IPv6: "6"}

// peerAddr returns p's address and port as stored (A), and p's family.
func peerAddr(p bittorrent.Peer, buf *[18]byte) ([]byte, bittorrent.AddressFamily, bool) {
	a := p.AddrPort.Addr()
	port := p.AddrPort.Port()
	switch {
	case a.Is4():
		a4 := a.As4()
		copy(buf[:4], a4[:])
		binary.BigEndian.PutUint16(buf[4:], port)
		return buf[:6], bittorrent.IPv4, true
	case a.IsValid():
		a16 := a.As16()
		copy(buf[:16], a16[:])
		binary.BigEndian.PutUint16(buf[16:], port)
		return buf[:18], bittorrent.IPv6, true
	}
	return nil, 0, false
}

// decodePeer is the inverse of peerAddr, with the peer ID that follows:
// id starts with it, or is shorter than one when none was kept
// (keep_peer_ids off: the stamp alone, or nothing), and the peer then has
// a zero ID.
func decodePeer(a, id []byte) (bittorrent.Peer, bool) {
	var p bittorrent.Peer
	var ip netip.Addr
	switch len(a) {
	case 6:
		ip = netip.AddrFrom4([4]byte(a[:4]))
	case 18:
		ip = netip.AddrFrom16([16]byte(a[:16]))
	default:
		return p, false
	}
	p.AddrPort = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(a[len(a)-2:]))
	if len(id) >= len(p.ID) {
		copy(p.ID[:], id)
	}
	return p, true
}

// appendValue appends the stored value of a peer: its ID, then the stamp.
func appendValue(b []byte, id bittorrent.PeerID, stamp int64) []byte {
	b = append(b, id[:]...)
	return binary.BigEndian.AppendUint32(b, uint32(stamp))
}

// idLens are the lengths of the stored peer IDs, as script arguments
// (passed by pointer: no allocation).
var idLens = [2]string{"0", "20"}

// idLen is the length of the peer IDs this store keeps, as a script
// argument: 20, or 0 with keep_peer_ids off.
func (s *PeerStore) idLen() *string {
	if s.cfg.KeepPeerIDs {
		return &idLens[1]
	}
	return &idLens[0]
}

// appendNative appends the stored value of a native peer: its ID and the
// stamp (appendValue), or with keep_peer_ids off the stamp alone.
// Readers tell the two forms by length (decodePeer, gc.lua).
func (s *PeerStore) appendNative(b []byte, id bittorrent.PeerID, stamp int64) []byte {
	if s.cfg.KeepPeerIDs {
		return appendValue(b, id, stamp)
	}
	return binary.BigEndian.AppendUint32(b, uint32(stamp))
}

// swarmKeys are the key names of one swarm, cut from one string.
type swarmKeys struct {
	// roles[F][0] is family F's seeders, roles[F][1] its leechers.
	roles [2][2]string
	// ordered[F][r] holds the members of roles[F][r] in locality order
	// (local.go).
	ordered   [2][2]string
	downloads string
	// hexIH is the swarm's member in its shard's index; rawIH the info
	// hash's bytes, its field in its bucket, bucket[F] (bucket.go).
	hexIH, rawIH string
	bucket       [2]string
	shard        shard
}

// set stores the key of suffix number i (keySuffixes' order: the four
// roles, their four locality orders, the downloads).
func (k *swarmKeys) set(i int, key string) {
	switch {
	case i < 4:
		k.roles[i/2][i%2] = key
	case i < 8:
		k.ordered[(i-4)/2][i%2] = key
	default:
		k.downloads = key
	}
}

// shard is the index and the totals of the swarms of one hash slot (or of
// all of them, outside Cluster), and that slot (0 outside Cluster).
type shard struct {
	// index is the swarm index an earlier version kept: collection and
	// the listing find the swarms by SCAN (scan.go), nothing adds to it
	// (a member cost about 90 bytes of Redis a swarm), and collection
	// removes the swarms it empties from it, so that it empties.
	index, totals string
	slot          int
}

func (s *PeerStore) keys(ih bittorrent.InfoHash) swarmKeys {
	k, _ := s.keysIn(nil, ih)
	return k
}

// keysIn is keys with the names cut from buf, which it returns, grown if
// it had to: the caller keeps buf unchanged while the keys are in use, and
// may reuse it afterwards (an announce's exchange does: no allocation).
func (s *PeerStore) keysIn(buf []byte, ih bittorrent.InfoHash) (swarmKeys, []byte) {
	var h [40]byte
	hex.Encode(h[:], ih[:])
	p := s.cfg.KeyPrefix
	n := len(p) + 2 + len(h) // P{H}
	// Room for the names of the WebSocket roles of one family too
	// (webRolesIn): P{H}w4s, P{H}w4l.
	if size := 11*n + 21 + len(h) + len(ih) + 6; cap(buf) < size {
		buf = make([]byte, 0, size)
	}
	buf = buf[:0]
	var k swarmKeys
	// The strings cut from buf are never written again: appends only
	// write past them (and a growth would copy, leaving them as they are).
	for i, suffix := range keySuffixes {
		start := len(buf)
		buf = append(buf, p...)
		buf = append(buf, '{')
		buf = append(buf, h[:]...)
		buf = append(buf, '}')
		buf = append(buf, suffix...)
		k.set(i, unsafe.String(&buf[start], len(buf)-start))
	}
	start := len(buf)
	buf = append(buf, h[:]...)
	k.hexIH = unsafe.String(&buf[start], len(h))
	start = len(buf)
	buf = append(buf, ih[:]...)
	k.rawIH = unsafe.String(&buf[start], len(ih))
	if s.tiny != nil {
		n := s.tiny.bucketOf(ih[:])
		k.bucket = [2]string{s.tiny.names[0][n], s.tiny.names[1][n]}
	}
	k.shard = s.shardOf(h[:])
	return k, buf
}

// keySuffixes end the keys of a swarm, in the order keys fills them.
var keySuffixes = [9]string{"4s", "4l", "6s", "6l", "4sz", "4lz", "6sz", "6lz", "d"}

// shardOf returns the shard of the swarm whose hash tag is tag.
func (s *PeerStore) shardOf(tag []byte) shard {
	if s.slotShards == nil {
		return s.oneShard
	}
	return s.slotShards[slot(tag)]
}

// slot is the Redis Cluster hash slot of a key whose hash tag is tag.
func slot(tag []byte) int { return int(crc16(tag) & 16383) }

// crc16 is CRC-16/XMODEM, as Redis Cluster hashes keys.
func crc16(b []byte) uint16 {
	var crc uint16
	for _, c := range b {
		crc ^= uint16(c) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}

// slotTags returns, for each of the 16384 hash slots, a short tag that
// hashes to it: the shard keys of a slot carry it, so that an announce's
// script reaches its swarm and its shard on one node.
func slotTags() *[16384]string {
	var tags [16384]string
	left := len(tags)
	var b []byte
	for n := 0; left > 0; n++ {
		b = strconv.AppendInt(b[:0], int64(n), 36)
		if s := slot(b); tags[s] == "" {
			tags[s] = string(b)
			left--
		}
	}
	return &tags
}

// errBadReply is a reply of an unexpected shape (never from a Redis that
// runs the driver's scripts).
var errBadReply = errors.New("unexpected reply")

// rawReply holds the raw RESP2 bytes of an announce's replies (the wire
// path cuts them out of its connection's buffer, resp.go), so that a peer
// list is read in place instead of as one string per element.
type rawReply struct{ b []byte }

// replyError is an error reply of Redis read from raw bytes.
type replyError string

func (e replyError) Error() string { return string(e) }

// readLine returns the line at the start of b (without CRLF) and the rest.
func readLine(b []byte) (line, rest []byte, ok bool) {
	for i := 0; i+1 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' {
			return b[:i], b[i+2:], true
		}
	}
	return nil, b, false
}

func parseLen(b []byte) (int, bool) {
	if len(b) == 0 {
		return 0, false
	}
	if string(b) == "-1" {
		return -1, true
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
		if n > 1<<30 {
			return 0, false
		}
	}
	return n, true
}

// appendPeers reads a raw HRANDFIELD reply from b, WITHVALUES when
// values (field, value, field, value...; otherwise fields alone, and the
// peers have zero IDs), and appends up to *want of its peers to dst,
// skipping the one at address self; it lowers *want by the number added
// and returns the bytes after the reply.
func appendPeers(dst []bittorrent.Peer, b []byte, self []byte, want *int, values bool) ([]bittorrent.Peer, []byte, error) {
	line, b, ok := readLine(b)
	if !ok || len(line) == 0 {
		return dst, b, errBadReply
	}
	switch line[0] {
	case '-':
		return dst, b, replyError(line[1:])
	case '*':
	default:
		return dst, b, errBadReply
	}
	n, ok := parseLen(line[1:])
	if !ok || values && n%2 != 0 {
		return dst, b, errBadReply
	}
	var field []byte
	var noID [len(bittorrent.PeerID{})]byte
	for i := 0; i < n; i++ {
		line, b, ok = readLine(b)
		if !ok || len(line) == 0 || line[0] != '$' {
			return dst, b, errBadReply
		}
		l, ok := parseLen(line[1:])
		if !ok || l < 0 || len(b) < l+2 {
			return dst, b, errBadReply
		}
		v := b[:l]
		b = b[l+2:]
		if values && i%2 == 0 {
			field = v
			continue
		}
		if !values {
			field, v = v, noID[:]
		}
		if *want == 0 || len(field) != len(self) || string(field) == string(self) {
			continue
		}
		if p, ok := decodePeer(field, v); ok {
			dst = append(dst, p)
			*want--
		}
	}
	return dst, b, nil
}

// readInt reads a raw integer reply (":n"), or a bulk string holding one
// ("$-1" reads as 0, as GET of a missing counter), and returns the bytes
// after it.
func readInt(b []byte) (int64, []byte, error) {
	line, b, ok := readLine(b)
	if !ok || len(line) == 0 {
		return 0, b, errBadReply
	}
	switch line[0] {
	case '-':
		return 0, b, replyError(line[1:])
	case ':':
		n, err := strconv.ParseInt(string(line[1:]), 10, 64)
		if err != nil {
			return 0, b, errBadReply
		}
		return n, b, nil
	case '$':
		l, ok := parseLen(line[1:])
		if !ok || l > 20 {
			return 0, b, errBadReply
		}
		if l < 0 {
			return 0, b, nil
		}
		if len(b) < l+2 {
			return 0, b, errBadReply
		}
		n, err := strconv.ParseInt(string(b[:l]), 10, 64)
		if err != nil {
			return 0, b, errBadReply
		}
		return n, b[l+2:], nil
	}
	return 0, b, errBadReply
}

// asInt reads an integer of a parsed reply.
func asInt(v interface{}) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// clampU32 turns a count read from Redis into a Counts field.
func clampU32(n int64) uint32 {
	switch {
	case n < 0:
		return 0
	case n > 1<<32-1:
		return 1<<32 - 1
	}
	return uint32(n)
}
