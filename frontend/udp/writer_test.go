package udp

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
)

func peersOf(addrs ...string) []bittorrent.Peer {
	ps := make([]bittorrent.Peer, len(addrs))
	for i, a := range addrs {
		ps[i] = bittorrent.Peer{AddrPort: netip.MustParseAddrPort(a)}
	}
	return ps
}

func addrPorts(addrs ...string) []netip.AddrPort {
	aps := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		aps[i] = netip.MustParseAddrPort(a)
	}
	return aps
}

func TestWriteConnect(t *testing.T) {
	b := appendConnect(nil, 0xdeadbeef, 0x0102030405060708)
	if len(b) != connectRespLen {
		t.Fatalf("len = %d, want %d", len(b), connectRespLen)
	}
	d := decode(t, b, 0)
	if d.action != 0 || d.txID != 0xdeadbeef || d.connID != 0x0102030405060708 {
		t.Errorf("decoded %+v", d)
	}
}

func TestWriteAnnounce(t *testing.T) {
	tests := []struct {
		name      string
		af        bittorrent.AddressFamily
		resp      bittorrent.AnnounceResponse
		peerLen   int
		wantPeers []netip.AddrPort
		wantIntvl uint32
	}{
		{
			name:      "IPv4 peers, 6 bytes each",
			af:        bittorrent.IPv4,
			resp:      bittorrent.AnnounceResponse{Complete: 2, Incomplete: 5, Interval: 30 * time.Minute, Peers: peersOf("10.0.0.1:1", "192.0.2.9:65535")},
			peerLen:   6,
			wantPeers: addrPorts("10.0.0.1:1", "192.0.2.9:65535"),
			wantIntvl: 1800,
		},
		{
			name:      "IPv6 peers, 18 bytes each",
			af:        bittorrent.IPv6,
			resp:      bittorrent.AnnounceResponse{Complete: 1, Interval: 90 * time.Second, Peers: peersOf("[2001:db8::1]:6881", "[::1]:7000")},
			peerLen:   18,
			wantPeers: addrPorts("[2001:db8::1]:6881", "[::1]:7000"),
			wantIntvl: 90,
		},
		{
			name:      "peers of the other family are left out",
			af:        bittorrent.IPv4,
			resp:      bittorrent.AnnounceResponse{Peers: peersOf("[2001:db8::1]:6881", "10.0.0.1:1", "[::ffff:10.0.0.2]:2")},
			peerLen:   6,
			wantPeers: addrPorts("10.0.0.1:1"),
		},
		{
			name:    "IPv4-mapped peers are not IPv6 peers",
			af:      bittorrent.IPv6,
			resp:    bittorrent.AnnounceResponse{Peers: peersOf("[::ffff:10.0.0.2]:2", "10.0.0.1:1")},
			peerLen: 18,
		},
		{
			name:      "no peers",
			af:        bittorrent.IPv4,
			resp:      bittorrent.AnnounceResponse{Complete: 1, Incomplete: 0, Interval: time.Minute},
			peerLen:   6,
			wantIntvl: 60,
		},
		{
			name:      "negative interval clamps to 0",
			af:        bittorrent.IPv4,
			resp:      bittorrent.AnnounceResponse{Interval: -time.Second},
			peerLen:   6,
			wantIntvl: 0,
		},
		{
			name:      "huge interval clamps to max int32",
			af:        bittorrent.IPv4,
			resp:      bittorrent.AnnounceResponse{Interval: 1 << 62},
			peerLen:   6,
			wantIntvl: 1<<31 - 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendAnnounce(nil, 42, tt.af, &tt.resp)
			d := decode(t, b, tt.peerLen)
			if d.action != 1 || d.txID != 42 {
				t.Errorf("action, txID = %d, %d", d.action, d.txID)
			}
			if d.interval != tt.wantIntvl || d.seeders != tt.resp.Complete || d.leechers != tt.resp.Incomplete {
				t.Errorf("interval, seeders, leechers = %d, %d, %d; want %d, %d, %d",
					d.interval, d.seeders, d.leechers, tt.wantIntvl, tt.resp.Complete, tt.resp.Incomplete)
			}
			if !slices.Equal(d.peers, tt.wantPeers) {
				t.Errorf("peers = %v, want %v", d.peers, tt.wantPeers)
			}
		})
	}
}

func TestWriteScrape(t *testing.T) {
	resp := bittorrent.ScrapeResponse{Files: []bittorrent.Scrape{
		{Complete: 1, Downloaded: 2, Incomplete: 3},
		{},
		{Complete: 7, Downloaded: 8, Incomplete: 9},
	}}
	d := decode(t, appendScrape(nil, 5, &resp), 0)
	want := [][3]uint32{{1, 2, 3}, {0, 0, 0}, {7, 8, 9}}
	if d.action != 2 || d.txID != 5 || !slices.Equal(d.files, want) {
		t.Errorf("decoded %+v, want files %v", d, want)
	}
}

func TestWriteError(t *testing.T) {
	b := appendError(nil, 9, string(bittorrent.ErrBadConnectionID))
	d := decode(t, b, 0)
	if d.action != 3 || d.txID != 9 || d.message != string(bittorrent.ErrBadConnectionID) {
		t.Errorf("decoded %+v", d)
	}
	if len(b) != errorHeaderLen+len(bittorrent.ErrBadConnectionID) {
		t.Errorf("len = %d: the message must not be terminated or padded", len(b))
	}
}

func TestWriterAppends(t *testing.T) {
	prefix := []byte("keep")
	b := appendConnect(prefix, 1, 2)
	if string(b[:4]) != "keep" || len(b) != 4+connectRespLen {
		t.Errorf("appendConnect did not append to dst: %q", b)
	}
}

func BenchmarkWriteAnnounce(b *testing.B) {
	for _, bc := range []struct {
		name string
		af   bittorrent.AddressFamily
		base string
	}{{"IPv4", bittorrent.IPv4, "10.0.0.1"}, {"IPv6", bittorrent.IPv6, "2001:db8::1"}} {
		b.Run(bc.name, func(b *testing.B) {
			resp := bittorrent.AnnounceResponse{Complete: 10, Incomplete: 40, Interval: 30 * time.Minute}
			addr := netip.MustParseAddr(bc.base)
			for i := 0; i < 50; i++ {
				resp.Peers = append(resp.Peers, bittorrent.Peer{AddrPort: netip.AddrPortFrom(addr, uint16(6881+i))})
				addr = addr.Next()
			}
			buf := make([]byte, 0, 2048)
			b.ReportAllocs()
			for b.Loop() {
				buf = appendAnnounce(buf[:0], 1, bc.af, &resp)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}
