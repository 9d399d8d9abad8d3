package udp

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"os"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
)

// This file holds an encoder and a decoder of BEP 15 written apart from the
// package's own parser and writer, so that round trips check one against
// the other.

// TestMain keeps the sampled error logs of the refusal tests out of the
// test output.
func TestMain(m *testing.M) {
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// announceFields are the fields of an announce request, encoded by
// encodeAnnounce.
type announceFields struct {
	infoHash   bittorrent.InfoHash
	peerID     bittorrent.PeerID
	downloaded int64
	left       int64
	uploaded   int64
	event      uint32
	ip         [4]byte
	key        uint32
	numWant    int32
	port       uint16
	options    []byte // BEP 41 options appended after the 98 bytes
}

func encodeConnect(txID uint32) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, protocolID)
	binary.BigEndian.PutUint32(b[8:], 0)
	binary.BigEndian.PutUint32(b[12:], txID)
	return b
}

func encodeAnnounce(connID uint64, txID uint32, f announceFields) []byte {
	b := make([]byte, 98, 98+len(f.options))
	binary.BigEndian.PutUint64(b[0:], connID)
	binary.BigEndian.PutUint32(b[8:], 1)
	binary.BigEndian.PutUint32(b[12:], txID)
	copy(b[16:], f.infoHash[:])
	copy(b[36:], f.peerID[:])
	binary.BigEndian.PutUint64(b[56:], uint64(f.downloaded))
	binary.BigEndian.PutUint64(b[64:], uint64(f.left))
	binary.BigEndian.PutUint64(b[72:], uint64(f.uploaded))
	binary.BigEndian.PutUint32(b[80:], f.event)
	copy(b[84:], f.ip[:])
	binary.BigEndian.PutUint32(b[88:], f.key)
	binary.BigEndian.PutUint32(b[92:], uint32(f.numWant))
	binary.BigEndian.PutUint16(b[96:], f.port)
	return append(b, f.options...)
}

func encodeScrape(connID uint64, txID uint32, hashes ...bittorrent.InfoHash) []byte {
	b := make([]byte, 16, 16+20*len(hashes))
	binary.BigEndian.PutUint64(b[0:], connID)
	binary.BigEndian.PutUint32(b[8:], 2)
	binary.BigEndian.PutUint32(b[12:], txID)
	for _, h := range hashes {
		b = append(b, h[:]...)
	}
	return b
}

// urlDataOptions encodes s as BEP 41 URL data options of at most chunk
// bytes each, followed by an end-of-options.
func urlDataOptions(s string, chunk int) []byte {
	var b []byte
	for len(s) > 0 {
		n := min(chunk, len(s), 255)
		b = append(b, optionURLData, byte(n))
		b = append(b, s[:n]...)
		s = s[n:]
	}
	return append(b, optionEnd)
}

// decoded is a response as a client reads it.
type decoded struct {
	action   uint32
	txID     uint32
	connID   uint64 // connect
	interval uint32 // announce
	leechers uint32
	seeders  uint32
	peers    []netip.AddrPort
	files    [][3]uint32 // scrape: seeders, completed, leechers
	message  string      // error
}

// decode reads a response; peerLen is 6 or 18 for announce replies.
func decode(t *testing.T, b []byte, peerLen int) decoded {
	t.Helper()
	if len(b) < 8 {
		t.Fatalf("response of %d bytes is shorter than 8", len(b))
	}
	d := decoded{action: binary.BigEndian.Uint32(b), txID: binary.BigEndian.Uint32(b[4:])}
	body := b[8:]
	switch d.action {
	case 0:
		if len(body) != 8 {
			t.Fatalf("connect response of %d bytes, want 16", len(b))
		}
		d.connID = binary.BigEndian.Uint64(body)
	case 1:
		if len(body) < 12 || (len(body)-12)%peerLen != 0 {
			t.Fatalf("announce response of %d bytes does not hold whole %d-byte peers", len(b), peerLen)
		}
		d.interval = binary.BigEndian.Uint32(body)
		d.leechers = binary.BigEndian.Uint32(body[4:])
		d.seeders = binary.BigEndian.Uint32(body[8:])
		for p := body[12:]; len(p) > 0; p = p[peerLen:] {
			addr, _ := netip.AddrFromSlice(p[:peerLen-2])
			d.peers = append(d.peers, netip.AddrPortFrom(addr, binary.BigEndian.Uint16(p[peerLen-2:])))
		}
	case 2:
		if len(body)%12 != 0 {
			t.Fatalf("scrape response of %d bytes does not hold whole entries", len(b))
		}
		for p := body; len(p) > 0; p = p[12:] {
			d.files = append(d.files, [3]uint32{binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:]), binary.BigEndian.Uint32(p[8:])})
		}
	case 3:
		d.message = string(body)
	default:
		t.Fatalf("response with unknown action %d", d.action)
	}
	return d
}

var errBackend = errors.New("backend down at 10.0.0.7:6379")
