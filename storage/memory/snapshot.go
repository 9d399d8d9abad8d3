package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"runtime"

	"github.com/chihaya/chihaya/bittorrent"
)

// The snapshot format (version 2). Integers are little-endian unless said
// otherwise.
//
// Header, 64 bytes in every version (so that any version's header can be
// checked before its version is read):
//
//	 0  magic     8  "CHYSNAP\n"
//	 8  version   2  2
//	10  kind      2  1: the memory store
//	12  flags     4  bit 0: records hold peer IDs; the others 0
//	16  created   8  Unix seconds when the copy began
//	24  swarms    8  swarms in the file
//	32  peers4    8  IPv4 peers in the file
//	40  peers6    8  IPv6 peers in the file
//	48  blocks    4  blocks after the header
//	52  reserved  8  0
//	60  crc       4  CRC-32C of bytes 0-59
//
// Then `blocks` blocks, each a 12-byte block header and its payload:
//
//	0  length    4  payload bytes
//	4  swarms    4  swarms in the payload
//	8  crc       4  CRC-32C of bytes 0-7 and the payload
//
// A payload is whole swarms, each:
//
//	info hash                        20
//	downloads                        uvarint (of both peer kinds)
//	IPv4 seeders, IPv4 leechers,
//	IPv6 seeders, IPv6 leechers      4 uvarints
//	records: IPv4 seeders, then IPv4 leechers, then IPv6 seeders, then
//	IPv6 leechers, each as the store keeps it but for the last-seen
//	time: address and big-endian port (6 or 18 bytes), peer ID (20, with
//	flag bit 0 only), last-seen Unix seconds (4; the store keeps 16 bits,
//	stamp.go).
//
// Version 1 is version 2 with flags 0 and every record holding a peer ID;
// it is still read. A restore fits the records to the running store's
// keep_peer_ids: IDs are dropped, or left all zeros when the file has none.
//
// Locality cells are not written: they follow from the addresses and the
// running locality settings, so a restore regroups every swarm, whatever
// settings the snapshot was taken with. A file is 10 bytes an IPv4 peer
// and 22 an IPv6 peer (30 and 42 with peer IDs: the record bytes in
// memory and 2), plus about 25 bytes a swarm and 12 bytes per block of
// about 1 MiB.
const (
	snapshotMagic   = "CHYSNAP\n"
	snapshotVersion = 2
	snapshotKind    = 1 // the memory store

	// flagPeerIDs marks a file whose records hold peer IDs.
	flagPeerIDs = 1

	headerLen      = 64
	blockHeaderLen = 12
)

// blockTarget is the payload size after which a block is written: a
// block's payload is held in memory, whole, when it is written and when it
// is read. Tests lower it to get many blocks from few peers.
var blockTarget = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The reasons a snapshot is not restored; restoreResult maps them to the
// result label of chihaya_storage_snapshot_restores_total.
var (
	errSnapshotCorrupt   = errors.New("corrupt")
	errSnapshotTruncated = errors.New("truncated")
	errSnapshotNewer     = errors.New("written by a newer version")
	errSnapshotOtherKind = errors.New("not a snapshot of the memory store")
)

// snapshotHeader is the decoded header.
type snapshotHeader struct {
	version uint16
	kind    uint16
	flags   uint32
	created int64
	swarms  uint64
	peers   [2]uint64
	blocks  uint32
}

func (h *snapshotHeader) encode() []byte {
	b := make([]byte, headerLen)
	copy(b, snapshotMagic)
	binary.LittleEndian.PutUint16(b[8:], h.version)
	binary.LittleEndian.PutUint16(b[10:], h.kind)
	binary.LittleEndian.PutUint32(b[12:], h.flags)
	binary.LittleEndian.PutUint64(b[16:], uint64(h.created))
	binary.LittleEndian.PutUint64(b[24:], h.swarms)
	binary.LittleEndian.PutUint64(b[32:], h.peers[0])
	binary.LittleEndian.PutUint64(b[40:], h.peers[1])
	binary.LittleEndian.PutUint32(b[48:], h.blocks)
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	return b
}

// decodeHeader checks and decodes a header. A file that does not start
// with the magic is not a snapshot at all (another store's file, or
// garbage): that is errSnapshotOtherKind only when it is not even the
// start of the magic.
func decodeHeader(b []byte) (snapshotHeader, error) {
	var h snapshotHeader
	if len(b) < headerLen {
		if len(b) < len(snapshotMagic) && string(b) != snapshotMagic[:len(b)] || len(b) >= len(snapshotMagic) && string(b[:8]) != snapshotMagic {
			return h, fmt.Errorf("%w: no snapshot header", errSnapshotOtherKind)
		}
		return h, fmt.Errorf("%w: header is %d of %d bytes", errSnapshotTruncated, len(b), headerLen)
	}
	if string(b[:8]) != snapshotMagic {
		return h, fmt.Errorf("%w: no snapshot header", errSnapshotOtherKind)
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), crc32.Checksum(b[:60], castagnoli); got != want {
		return h, fmt.Errorf("%w: header checksum %08x, want %08x", errSnapshotCorrupt, got, want)
	}
	h.version = binary.LittleEndian.Uint16(b[8:])
	h.kind = binary.LittleEndian.Uint16(b[10:])
	h.flags = binary.LittleEndian.Uint32(b[12:])
	h.created = int64(binary.LittleEndian.Uint64(b[16:]))
	h.swarms = binary.LittleEndian.Uint64(b[24:])
	h.peers[0] = binary.LittleEndian.Uint64(b[32:])
	h.peers[1] = binary.LittleEndian.Uint64(b[40:])
	h.blocks = binary.LittleEndian.Uint32(b[48:])
	switch {
	case h.version > snapshotVersion:
		return h, fmt.Errorf("%w: format version %d, this tracker reads up to %d", errSnapshotNewer, h.version, snapshotVersion)
	case h.version == 0:
		return h, fmt.Errorf("%w: format version 0", errSnapshotCorrupt)
	case h.kind != snapshotKind:
		return h, fmt.Errorf("%w: store kind %d", errSnapshotOtherKind, h.kind)
	case h.version == 1 && h.flags != 0 || h.flags&^flagPeerIDs != 0 || binary.LittleEndian.Uint64(b[52:]) != 0:
		return h, fmt.Errorf("%w: reserved header bytes set", errSnapshotCorrupt)
	}
	if h.version == 1 {
		h.flags = flagPeerIDs
	}
	return h, nil
}

// idLen returns the length of the peer IDs in the file's records.
func (h *snapshotHeader) idLen() int {
	if h.flags&flagPeerIDs != 0 {
		return idLen
	}
	return 0
}

// encodeBlock returns the block header of payload, which holds swarms
// swarms.
func encodeBlock(payload []byte, swarms int) [blockHeaderLen]byte {
	var b [blockHeaderLen]byte
	binary.LittleEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[4:], uint32(swarms))
	crc := crc32.Update(crc32.Checksum(b[:8], castagnoli), castagnoli, payload)
	binary.LittleEndian.PutUint32(b[8:], crc)
	return b
}

// copyCounts are what a copy of the store holds.
type copyCounts struct {
	swarms uint64
	peers  [2]uint64
}

// appendRecords appends records as the file holds them: the store's
// bytes, with the 16-bit stamp widened to Unix seconds as of nowSec. A
// stamp's unit may be several seconds (stamp.go), and a peer was last seen
// somewhere in it: the file says its last second (or now), so that a
// store restoring it with a finer unit, under a shorter peer_lifetime,
// collects the peer late by less than a unit rather than early.
func (s *PeerStore) appendRecords(buf []byte, l *layout, recs []byte, nowSec int64) []byte {
	last := int64(1)<<s.stamps.shift - 1
	for off := 0; off < len(recs); off += l.stride {
		buf = append(buf, recs[off:off+l.stampOff]...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(min(s.stamps.unix(l.stamp(recs[off:]), nowSec)+last, nowSec)))
	}
	return buf
}

// appendShard appends every swarm of sh, encoded, to buf, with stamps read
// as of nowSec. It holds the shard's read lock while it copies (announces,
// which read, go on; puts wait for one shard's copy), and nothing else.
func (s *PeerStore) appendShard(buf []byte, sh *shard, c *copyCounts, webDL map[bittorrent.InfoHash]uint32, nowSec int64) ([]byte, int) {
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	n := 0
	for ih, sw := range sh.swarms.all() {
		downloads := sw.downloads
		if d, ok := webDL[ih]; ok {
			downloads = addDownloads(downloads, d)
			delete(webDL, ih)
		}
		buf = append(buf, ih[:]...)
		buf = binary.AppendUvarint(buf, uint64(downloads))
		if ls := sw.loc; ls != nil {
			for af := range ls.fam {
				buf = binary.AppendUvarint(buf, uint64(ls.fam[af].nSeed))
				buf = binary.AppendUvarint(buf, uint64(ls.fam[af].n-ls.fam[af].nSeed))
			}
			for af := range ls.fam {
				l := &s.layouts[af]
				cells := ls.fam[af].cells
				for ci := range cells {
					buf = s.appendRecords(buf, l, cells[ci].recs[:int(cells[ci].nSeed)*l.stride], nowSec)
				}
				for ci := range cells {
					buf = s.appendRecords(buf, l, cells[ci].recs[int(cells[ci].nSeed)*l.stride:int(cells[ci].n)*l.stride], nowSec)
				}
				c.peers[af] += uint64(ls.fam[af].n)
			}
		} else {
			for af := range s.layouts {
				f := sw.fam(bittorrent.AddressFamily(af))
				buf = binary.AppendUvarint(buf, uint64(f.nSeed))
				buf = binary.AppendUvarint(buf, uint64(f.n-f.nSeed))
			}
			for af := range s.layouts {
				f := sw.fam(bittorrent.AddressFamily(af))
				buf = s.appendRecords(buf, &s.layouts[af], f.recs[:int(f.n)*s.layouts[af].stride], nowSec)
				c.peers[af] += uint64(f.n)
			}
		}
		n++
	}
	c.swarms += uint64(n)
	return buf, n
}

// webDownloads returns the downloads counted in the swarms of the
// WebSocket peers, which a snapshot does not keep (their sockets die with
// the process) but whose download counts must survive like the others:
// they are written into the native swarm of the same info hash, which
// scrapes add up with the WebSocket one. Each shard is read under its own
// read lock.
func (s *PeerStore) webDownloads() map[bittorrent.InfoHash]uint32 {
	w := s.web.Load()
	if w == nil {
		return nil
	}
	m := make(map[bittorrent.InfoHash]uint32)
	for i := range w.shards {
		sh := &w.shards[i]
		sh.mu.RLock()
		for ih, sw := range sh.swarms.all() {
			if sw.downloads > 0 {
				m[ih] = sw.downloads
			}
		}
		sh.mu.RUnlock()
	}
	return m
}

// addDownloads adds two download counts, stopping at the largest.
func addDownloads(a, b uint32) uint32 {
	if a > math.MaxUint32-b {
		return math.MaxUint32
	}
	return a + b
}

// appendDownloads appends a swarm that has downloads and no peers.
func appendDownloads(buf []byte, ih bittorrent.InfoHash, downloads uint32) []byte {
	buf = append(buf, ih[:]...)
	buf = binary.AppendUvarint(buf, uint64(downloads))
	return append(buf, 0, 0, 0, 0)
}

// writeSnapshot writes the store to w as a snapshot: the header (with
// zero counts: the caller writes the returned header over it once the
// copy is done, as the counts are only known then), then the blocks. It
// copies one shard at a time and writes outside the shard locks. stop,
// checked between blocks, abandons the write.
func (s *PeerStore) writeSnapshot(w io.Writer, created int64, stop func() error) (snapshotHeader, int64, error) {
	h := snapshotHeader{version: snapshotVersion, kind: snapshotKind, created: created}
	if s.layouts[0].idLen != 0 {
		h.flags = flagPeerIDs
	}
	if _, err := w.Write(make([]byte, headerLen)); err != nil {
		return h, 0, err
	}
	size := int64(headerLen)
	var c copyCounts
	buf := make([]byte, 0, blockTarget+blockTarget/4)
	swarms := 0
	webDL := s.webDownloads()
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if err := stop(); err != nil {
			return err
		}
		bh := encodeBlock(buf, swarms)
		if _, err := w.Write(bh[:]); err != nil {
			return err
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		size += int64(blockHeaderLen + len(buf))
		h.blocks++
		buf, swarms = buf[:0], 0
		return nil
	}
	for i := range s.shards {
		var n int
		buf, n = s.appendShard(buf, &s.shards[i], &c, webDL, created)
		swarms += n
		// Let the frontends' goroutines run between shards: with one P
		// (a tracker on one core) the copy would otherwise hold it for a
		// whole scheduler time slice (10 ms) and delay announces by that.
		runtime.Gosched()
		if len(buf) >= blockTarget {
			if err := flush(); err != nil {
				return h, size, err
			}
		}
	}
	// The swarms that have only WebSocket peers, by their downloads. A
	// native swarm written above took its own; each info hash is in the
	// file once.
	for ih, d := range webDL {
		buf = appendDownloads(buf, ih, d)
		swarms++
		c.swarms++
		if len(buf) >= blockTarget {
			if err := flush(); err != nil {
				return h, size, err
			}
		}
	}
	if err := flush(); err != nil {
		return h, size, err
	}
	h.swarms, h.peers = c.swarms, c.peers
	return h, size, nil
}

// restoreCounts are what a restore kept and dropped.
type restoreCounts struct {
	swarms  uint64
	peers   uint64
	expired uint64
}

// readSnapshot reads a snapshot of size bytes from r into the store, which
// must be empty and not yet serving. Peers last seen before cut are
// dropped; last-seen times after now are set to now. On error the store
// may hold part of the snapshot: the caller empties it.
func (s *PeerStore) readSnapshot(r io.Reader, size int64, cut, now uint32) (snapshotHeader, restoreCounts, error) {
	var rc restoreCounts
	hb := make([]byte, headerLen)
	n, err := io.ReadFull(r, hb)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return snapshotHeader{}, rc, err
	}
	h, err := decodeHeader(hb[:n])
	if err != nil {
		return h, rc, err
	}
	remaining := size - headerLen
	var got copyCounts
	var payload []byte
	for b := uint32(0); b < h.blocks; b++ {
		var bh [blockHeaderLen]byte
		if remaining < blockHeaderLen {
			return h, rc, fmt.Errorf("%w: block %d of %d missing", errSnapshotTruncated, b+1, h.blocks)
		}
		if _, err := io.ReadFull(r, bh[:]); err != nil {
			return h, rc, readErr(err, b, h.blocks)
		}
		remaining -= blockHeaderLen
		length := int64(binary.LittleEndian.Uint32(bh[0:]))
		nSwarms := binary.LittleEndian.Uint32(bh[4:])
		if length > remaining {
			return h, rc, fmt.Errorf("%w: block %d of %d is %d bytes, the file has %d left", errSnapshotTruncated, b+1, h.blocks, length, remaining)
		}
		if int64(cap(payload)) < length {
			payload = make([]byte, length)
		}
		payload = payload[:length]
		if _, err := io.ReadFull(r, payload); err != nil {
			return h, rc, readErr(err, b, h.blocks)
		}
		remaining -= length
		crc := crc32.Update(crc32.Checksum(bh[:8], castagnoli), castagnoli, payload)
		if want := binary.LittleEndian.Uint32(bh[8:]); crc != want {
			return h, rc, fmt.Errorf("%w: block %d of %d: checksum %08x, want %08x", errSnapshotCorrupt, b+1, h.blocks, crc, want)
		}
		if err := s.restoreBlock(payload, nSwarms, h.idLen(), cut, now, &got, &rc); err != nil {
			return h, rc, fmt.Errorf("%w: block %d of %d: %w", errSnapshotCorrupt, b+1, h.blocks, err)
		}
	}
	if remaining != 0 {
		return h, rc, fmt.Errorf("%w: %d bytes after the last block", errSnapshotCorrupt, remaining)
	}
	if got != (copyCounts{swarms: h.swarms, peers: h.peers}) {
		return h, rc, fmt.Errorf("%w: blocks hold %d swarms and %d+%d peers, the header says %d and %d+%d",
			errSnapshotCorrupt, got.swarms, got.peers[0], got.peers[1], h.swarms, h.peers[0], h.peers[1])
	}
	return h, rc, nil
}

// readErr names a read that ended early as truncation.
func readErr(err error, b, blocks uint32) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: block %d of %d cut short", errSnapshotTruncated, b+1, blocks)
	}
	return err
}

// payloadReader reads the fields of a block's payload, remembering the
// first error.
type payloadReader struct {
	b   []byte
	err error
}

func (p *payloadReader) bytes(n uint64) []byte {
	if p.err != nil {
		return nil
	}
	if n > uint64(len(p.b)) {
		p.err = errors.New("a swarm runs past the end of its block")
		return nil
	}
	v := p.b[:n]
	p.b = p.b[n:]
	return v
}

func (p *payloadReader) uvarint(max uint64) uint64 {
	if p.err != nil {
		return 0
	}
	v, n := binary.Uvarint(p.b)
	switch {
	case n <= 0:
		p.err = errors.New("bad number")
		return 0
	case v > max:
		p.err = fmt.Errorf("number %d out of range", v)
		return 0
	case n != uvarintLen(v):
		// Only the shortest encoding is accepted, so that one snapshot
		// has one byte form.
		p.err = errors.New("number not in its shortest form")
		return 0
	}
	p.b = p.b[n:]
	return v
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}
