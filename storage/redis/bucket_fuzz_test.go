package redis

import (
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// FuzzTinyReplies reads bytes as what the shared form of single-peer
// swarms reads from Redis: tiny.lua's reply followed by its two peer
// reads (as tinyAnnounce reads them), and a bucket field's HGET beside a
// plain announce (readOccupant). Whatever arrives, the readers never
// panic, never read past the input, never return more peers than asked
// for nor a role or occupant that is not one.
func FuzzTinyReplies(f *testing.F) {
	for _, s := range []string{
		"*10\r\n:2\r\n:1\r\n:1\r\n:0\r\n:0\r\n:1\r\n:0\r\n:1\r\n*2\r\n$6\r\n\x7f\x00\x00\x01\x1a\xe1\r\n$4\r\nabcd\r\n*0\r\n",
		"*10\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:1\r\n:1\r\n:0\r\n*0\r\n*0\r\n",
		"-NOSCRIPT No matching script. Please use EVAL.\r\n",
		"*10\r\n:7\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n*0\r\n*0\r\n",
		"*10\r\n:1\r\n:-5\r\n:99999999999\r\n:0\r\n:0\r\n:0\r\n:0\r\n:0\r\n*1073741824\r\n$6\r\n",
		"$11\r\n\x7f\x00\x00\x01\x1a\xe1abcds\r\n",
		"$-1\r\n",
		"$99999999999\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, mode uint8) {
		self := []byte{127, 0, 0, 1, 0x1a, 0xe1}
		r, b, err := readTiny(in)
		if len(b) > len(in) {
			t.Fatalf("readTiny left %d bytes of %d", len(b), len(in))
		}
		if err == nil {
			if r.role != storage.Absent && r.role != storage.Seeder && r.role != storage.Leecher {
				t.Fatalf("role %v", r.role)
			}
			want := 10
			var peers []bittorrent.Peer
			for range 2 {
				if peers, b, err = appendPeers(peers, b, self, &want, mode&1 == 0); err != nil {
					break
				}
			}
			if len(peers) > 10 || want < 0 || len(b) > len(in) {
				t.Fatalf("%d peers, want left %d, %d bytes left of %d", len(peers), want, len(b), len(in))
			}
		}
		fam := bittorrent.AddressFamily(mode >> 1 & 1)
		k := &swarmKeys{bucket: [2]string{"b4", "b6"}}
		o, ok, b, _ := readOccupant(in, k, fam)
		if len(b) > len(in) {
			t.Fatalf("readOccupant left %d bytes of %d", len(b), len(in))
		}
		if ok {
			if alen := map[bittorrent.AddressFamily]int{bittorrent.IPv4: 6, bittorrent.IPv6: 18}[fam]; len(o.addr) != alen {
				t.Fatalf("occupant address of %d bytes for family %v", len(o.addr), fam)
			}
			var c storage.Counts
			o.add(&c, false, storage.Absent)
			if c.Seeders+c.Leechers != 1 {
				t.Fatalf("occupant counted as %+v", c)
			}
			if ps := o.appendTo(nil, false, false, 1, true); len(ps) > 1 {
				t.Fatalf("%d peers from one occupant", len(ps))
			}
		}
	})
}
