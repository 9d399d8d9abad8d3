package http

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
)

var update = flag.Bool("update", false, "rewrite the writer's golden files in testdata/")

func peer(id byte, addrPort string) bittorrent.Peer {
	var p bittorrent.Peer
	for i := range p.ID {
		p.ID[i] = id
	}
	p.AddrPort = netip.MustParseAddrPort(addrPort)
	return p
}

func announceFixture(announcer string, compact, noPeerID bool, peers ...bittorrent.Peer) (*bittorrent.AnnounceRequest, *bittorrent.AnnounceResponse) {
	req := &bittorrent.AnnounceRequest{
		InfoHash: testIH,
		Peer:     peer('A', announcer),
		Compact:  compact,
		NoPeerID: noPeerID,
	}
	resp := &bittorrent.AnnounceResponse{
		Complete:    5,
		Incomplete:  7,
		Downloaded:  11,
		Interval:    30 * time.Minute,
		MinInterval: 15 * time.Minute,
		Peers:       peers,
	}
	return req, resp
}

func TestWriterGolden(t *testing.T) {
	v4peers := []bittorrent.Peer{peer('a', "192.0.2.1:6881"), peer('b', "198.51.100.2:51413"), peer('c', "203.0.113.3:1")}
	v6peers := []bittorrent.Peer{peer('d', "[2001:db8::1]:6881"), peer('e', "[2001:db8::2:3]:65535")}
	ihA, ihB := testIH, bittorrent.InfoHash{}
	ihB[0] = 0xff
	tests := []struct {
		name  string
		write func(dst []byte) []byte
	}{
		{"announce-compact-ipv4", func(dst []byte) []byte {
			req, resp := announceFixture("192.0.2.100:6881", true, false, v4peers...)
			return appendAnnounce(dst, req, resp)
		}},
		{"announce-compact-ipv6", func(dst []byte) []byte {
			req, resp := announceFixture("[2001:db8::100]:6881", true, false, v6peers...)
			return appendAnnounce(dst, req, resp)
		}},
		{"announce-compact-empty", func(dst []byte) []byte {
			req, resp := announceFixture("192.0.2.100:6881", true, false)
			return appendAnnounce(dst, req, resp)
		}},
		{"announce-noncompact", func(dst []byte) []byte {
			req, resp := announceFixture("192.0.2.100:6881", false, false, v4peers...)
			return appendAnnounce(dst, req, resp)
		}},
		{"announce-noncompact-no-peer-id", func(dst []byte) []byte {
			req, resp := announceFixture("[2001:db8::100]:6881", false, true, v6peers...)
			return appendAnnounce(dst, req, resp)
		}},
		{"scrape", func(dst []byte) []byte {
			return appendScrape(dst, &bittorrent.ScrapeResponse{Files: []bittorrent.Scrape{
				{InfoHash: ihA, Complete: 1, Incomplete: 2, Downloaded: 3},
				{InfoHash: ihB, Complete: 4, Incomplete: 5, Downloaded: 6},
			}})
		}},
		{"scrape-unsorted-duplicates", func(dst []byte) []byte {
			return appendScrape(dst, &bittorrent.ScrapeResponse{Files: []bittorrent.Scrape{
				{InfoHash: ihB, Complete: 4, Incomplete: 5, Downloaded: 6},
				{InfoHash: ihA, Complete: 1, Incomplete: 2, Downloaded: 3},
				{InfoHash: ihB, Complete: 4, Incomplete: 5, Downloaded: 6},
			}})
		}},
		{"failure", func(dst []byte) []byte { return appendFailure(dst, string(bittorrent.ErrInvalidInfoHash)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.write([]byte("prefix"))
			if !bytes.HasPrefix(got, []byte("prefix")) {
				t.Fatal("the writer did not append to its destination")
			}
			got = got[len("prefix"):]
			if _, err := frontendtest.DecodeBencode(got); err != nil {
				t.Fatalf("output is not valid bencode: %v\n%q", err, got)
			}
			path := filepath.Join("testdata", tt.name+".golden")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("output differs from %s:\ngot  %q\nwant %q", path, got, want)
			}
		})
	}
}

// checkAnnounce decodes an announce reply and compares it with what was
// written, field by field.
func checkAnnounce(t *testing.T, b []byte, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) {
	t.Helper()
	v, err := frontendtest.DecodeBencode(b)
	if err != nil {
		t.Fatalf("reply is not valid bencode: %v\n%q", err, b)
	}
	d, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("reply is a %T, not a dictionary", v)
	}
	wantInts := map[string]int64{
		"complete":     int64(resp.Complete),
		"incomplete":   int64(resp.Incomplete),
		"downloaded":   int64(resp.Downloaded),
		"interval":     int64(resp.Interval / time.Second),
		"min interval": int64(resp.MinInterval / time.Second),
	}
	for k, want := range wantInts {
		if got, ok := d[k].(int64); !ok || got != want {
			t.Errorf("%q = %v, want %d", k, d[k], want)
		}
	}
	ext := req.Peer.AddrPort.Addr().AsSlice()
	if got, _ := d["external ip"].(string); got != string(ext) {
		t.Errorf("external ip = %q, want %q", got, ext)
	}
	var got []bittorrent.Peer
	if req.Compact {
		p4, ok := d["peers"].(string)
		if !ok || len(p4)%6 != 0 {
			t.Fatalf("peers = %q, want a multiple of 6 bytes", d["peers"])
		}
		for i := 0; i < len(p4); i += 6 {
			a := netip.AddrFrom4([4]byte([]byte(p4[i : i+4])))
			got = append(got, bittorrent.Peer{AddrPort: netip.AddrPortFrom(a, binary.BigEndian.Uint16([]byte(p4[i+4:i+6])))})
		}
		if p6, ok := d["peers6"].(string); ok {
			if len(p6)%18 != 0 {
				t.Fatalf("peers6 is %d bytes, not a multiple of 18", len(p6))
			}
			for i := 0; i < len(p6); i += 18 {
				a := netip.AddrFrom16([16]byte([]byte(p6[i : i+16])))
				got = append(got, bittorrent.Peer{AddrPort: netip.AddrPortFrom(a, binary.BigEndian.Uint16([]byte(p6[i+16:i+18])))})
			}
		} else if req.Peer.AddrPort.Addr().Is6() {
			t.Error("no peers6 in the reply to an IPv6 announcer")
		}
	} else {
		list, ok := d["peers"].([]any)
		if !ok {
			t.Fatalf("peers = %T, want a list", d["peers"])
		}
		for _, e := range list {
			pd, ok := e.(map[string]any)
			if !ok {
				t.Fatalf("peer entry is a %T", e)
			}
			ip, _ := pd["ip"].(string)
			a, err := netip.ParseAddr(ip)
			if err != nil {
				t.Fatalf("peer ip %q: %v", ip, err)
			}
			port, _ := pd["port"].(int64)
			p := bittorrent.Peer{AddrPort: netip.AddrPortFrom(a, uint16(port))}
			// A peer id is sent unless no_peer_id asks otherwise or the
			// store kept none (all zeros): a missing one shows below as a
			// peer whose ID differs from the one written.
			id, hasID := pd["peer id"].(string)
			if hasID && (req.NoPeerID || id == string(make([]byte, 20))) {
				t.Errorf("peer id %x sent with no_peer_id = %v", id, req.NoPeerID)
			}
			copy(p.ID[:], id)
			got = append(got, p)
		}
	}
	// Compact replies list IPv4 peers before IPv6 ones; compare as sets in
	// that order.
	var want []bittorrent.Peer
	for _, v4 := range []bool{true, false} {
		for _, p := range resp.Peers {
			if p.AddrPort.Addr().Is4() == v4 || !req.Compact {
				if req.Compact || req.NoPeerID {
					p.ID = bittorrent.PeerID{}
				}
				if !req.Compact && !v4 {
					continue
				}
				want = append(want, p)
			}
		}
	}
	if len(got) != len(want) {
		t.Fatalf("decoded %d peers, wrote %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("peer %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestWriterRoundTrip(t *testing.T) {
	var many []bittorrent.Peer
	for i := 0; i < 50; i++ {
		many = append(many, peer(byte(i), fmt.Sprintf("10.0.%d.%d:%d", i/256, i%256, 1000+i)))
	}
	tests := []struct {
		name      string
		announcer string
		compact   bool
		noPeerID  bool
		peers     []bittorrent.Peer
	}{
		{"compact IPv4, 50 peers", "192.0.2.1:1", true, false, many},
		{"compact IPv6", "[2001:db8::1]:1", true, false, []bittorrent.Peer{peer(1, "[2001:db8::2]:2"), peer(2, "[::1]:3")}},
		{"compact mixed families", "192.0.2.1:1", true, false, []bittorrent.Peer{peer(1, "[2001:db8::2]:2"), peer(2, "192.0.2.9:3")}},
		{"non-compact IPv4", "192.0.2.1:1", false, false, many},
		{"non-compact IPv6 without peer ids", "[2001:db8::1]:1", false, true, []bittorrent.Peer{peer(1, "[2001:db8::2]:2")}},
		{"binary peer ids", "192.0.2.1:1", false, false, []bittorrent.Peer{peer('e', "192.0.2.2:2"), peer(':', "192.0.2.3:3"), peer(0, "192.0.2.4:4")}},
		{"no peers", "192.0.2.1:1", false, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp := announceFixture(tt.announcer, tt.compact, tt.noPeerID, tt.peers...)
			checkAnnounce(t, appendAnnounce(nil, req, resp), req, resp)
		})
	}
}

func TestWriterScrapeRoundTrip(t *testing.T) {
	resp := &bittorrent.ScrapeResponse{}
	for i := 0; i < 20; i++ {
		var ih bittorrent.InfoHash
		ih[0], ih[19] = byte(255-i*7), 'e'
		resp.Files = append(resp.Files, bittorrent.Scrape{InfoHash: ih, Complete: uint32(i), Incomplete: uint32(2 * i), Downloaded: 1 << 31})
	}
	want := map[string][3]int64{}
	for _, f := range resp.Files {
		want[string(f.InfoHash[:])] = [3]int64{int64(f.Complete), int64(f.Incomplete), int64(f.Downloaded)}
	}
	b := appendScrape(nil, resp)
	v, err := frontendtest.DecodeBencode(b)
	if err != nil {
		t.Fatalf("not valid bencode: %v", err)
	}
	files, ok := v.(map[string]any)["files"].(map[string]any)
	if !ok || len(files) != len(want) {
		t.Fatalf("files = %v, want %d entries", v, len(want))
	}
	for ih, counts := range want {
		f, _ := files[ih].(map[string]any)
		got := [3]int64{}
		got[0], _ = f["complete"].(int64)
		got[1], _ = f["incomplete"].(int64)
		got[2], _ = f["downloaded"].(int64)
		if got != counts {
			t.Errorf("file %x = %v, want %v", ih, got, counts)
		}
	}
}

func TestWriterAllocs(t *testing.T) {
	req, resp := announceFixture("192.0.2.1:1", true, false, peer(1, "192.0.2.2:2"), peer(2, "192.0.2.3:3"))
	sresp := &bittorrent.ScrapeResponse{Files: []bittorrent.Scrape{{InfoHash: testIH}}}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		req.Compact = !req.Compact
		buf = appendAnnounce(buf[:0], req, resp)
		buf = appendScrape(buf[:0], sresp)
		buf = appendFailure(buf[:0], "x")
	})
	if allocs != 0 {
		t.Errorf("writing replies: %v allocs, want 0", allocs)
	}
}

// FuzzBencode writes replies built from fuzzed values and reads them back
// with the test's decoder.
func FuzzBencode(f *testing.F) {
	f.Add([]byte("0123456789012345678901234567890123456789"), true, false, uint32(5), "invalid info_hash")
	f.Add([]byte("\x06\xff\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15"), false, true, uint32(0), "")
	f.Add([]byte{}, false, false, ^uint32(0), "e:i0ed")
	f.Fuzz(func(t *testing.T, data []byte, compact, noPeerID bool, count uint32, reason string) {
		// Each 24 bytes make a peer: a family byte, then address and port.
		var peers []bittorrent.Peer
		var ihs []bittorrent.Scrape
		for i := 0; i+24 <= len(data); i += 24 {
			c := data[i : i+24]
			var p bittorrent.Peer
			copy(p.ID[:], c[4:24])
			port := binary.BigEndian.Uint16(c[1:3])
			if c[0]&1 == 0 {
				p.AddrPort = netip.AddrPortFrom(netip.AddrFrom4([4]byte(c[3:7])), port)
			} else {
				p.AddrPort = netip.AddrPortFrom(netip.AddrFrom16([16]byte(c[3:19])), port)
			}
			if p.AddrPort.Addr().Is4In6() {
				continue // frontends never hand these out
			}
			peers = append(peers, p)
			var s bittorrent.Scrape
			copy(s.InfoHash[:], c[4:24])
			s.Complete, s.Incomplete, s.Downloaded = count, count/3, uint32(port)
			ihs = append(ihs, s)
		}
		announcer := "192.0.2.1:1"
		if count&1 == 1 {
			announcer = "[2001:db8::1]:1"
		}
		req, resp := announceFixture(announcer, compact, noPeerID, peers...)
		resp.Complete, resp.Incomplete = count, ^count
		checkAnnounce(t, appendAnnounce(nil, req, resp), req, resp)

		b := appendScrape(nil, &bittorrent.ScrapeResponse{Files: ihs})
		if _, err := frontendtest.DecodeBencode(b); err != nil {
			t.Fatalf("scrape reply: %v\n%q", err, b)
		}

		v, err := frontendtest.DecodeBencode(appendFailure(nil, reason))
		if err != nil {
			t.Fatalf("failure reply: %v", err)
		}
		if got := v.(map[string]any)["failure reason"]; got != reason || len(v.(map[string]any)) != 1 {
			t.Fatalf("failure reply = %q, want only %q", v, reason)
		}
	})
}

func benchPeers(n int, v6 bool) []bittorrent.Peer {
	peers := make([]bittorrent.Peer, n)
	for i := range peers {
		if v6 {
			peers[i] = peer(byte(i), fmt.Sprintf("[2001:db8::%x]:%d", i+1, 1000+i))
		} else {
			peers[i] = peer(byte(i), fmt.Sprintf("10.0.%d.%d:%d", i/256, i%256+1, 1000+i))
		}
	}
	return peers
}

func BenchmarkWriteAnnounce(b *testing.B) {
	for _, bc := range []struct {
		name      string
		announcer string
		compact   bool
		v6        bool
	}{
		{"compact-50", "192.0.2.1:1", true, false},
		{"compact6-50", "[2001:db8::1]:1", true, true},
		{"noncompact-50", "192.0.2.1:1", false, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req, resp := announceFixture(bc.announcer, bc.compact, false, benchPeers(50, bc.v6)...)
			buf := make([]byte, 0, 8192)
			b.ReportAllocs()
			for b.Loop() {
				buf = appendAnnounce(buf[:0], req, resp)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkWriteScrape(b *testing.B) {
	resp := &bittorrent.ScrapeResponse{}
	for i := 0; i < 10; i++ {
		var ih bittorrent.InfoHash
		ih[0] = byte(i)
		resp.Files = append(resp.Files, bittorrent.Scrape{InfoHash: ih, Complete: 100, Incomplete: 20, Downloaded: 5000})
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendScrape(buf[:0], resp)
	}
}
