package udp

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
)

var (
	testIH   = bittorrent.InfoHash{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	testPID  = bittorrent.PeerID{'-', 'T', 'R', '3', '0', '0', '0', '-', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'}
	testSrc4 = netip.MustParseAddrPort("192.0.2.1:50000")
	testSrc6 = netip.MustParseAddrPort("[2001:db8::1]:50000")
)

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name   string
		packet []byte
		wantOK bool
	}{
		{"empty", nil, false},
		{"15 bytes", make([]byte, 15), false},
		{"16 bytes", encodeConnect(7), true},
		{"longer", encodeScrape(1, 7, testIH), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			connID, action, txID, ok := parseHeader(tt.packet)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && txID != 7 {
				t.Errorf("txID = %d, want 7", txID)
			}
			if tt.name == "16 bytes" && (connID != protocolID || action != actionConnect) {
				t.Errorf("connID, action = %#x, %d", connID, action)
			}
		})
	}
}

func TestParseAnnounce(t *testing.T) {
	opts := announceOptions{maxNumWant: 100, defaultNumWant: 50}
	spoof := opts
	spoof.allowIPSpoofing = true
	valid := announceFields{infoHash: testIH, peerID: testPID, downloaded: 10, left: 20, uploaded: 30, numWant: -1, port: 6881}
	with := func(f func(*announceFields)) []byte {
		a := valid
		f(&a)
		return encodeAnnounce(1, 2, a)
	}

	tests := []struct {
		name    string
		packet  []byte
		src     netip.AddrPort
		opts    announceOptions
		wantErr error
		check   func(t *testing.T, req *bittorrent.AnnounceRequest)
	}{
		{name: "valid", packet: encodeAnnounce(1, 2, valid), src: testSrc4, opts: opts, check: func(t *testing.T, req *bittorrent.AnnounceRequest) {
			t.Helper()
			want := bittorrent.AnnounceRequest{
				InfoHash: testIH, Peer: bittorrent.Peer{ID: testPID, AddrPort: netip.MustParseAddrPort("192.0.2.1:6881")},
				Event: bittorrent.None, Compact: true, NoPeerID: true, NoDownloads: true, NumWant: 50, Downloaded: 10, Left: 20, Uploaded: 30,
				RemoteAddr: netip.MustParseAddr("192.0.2.1"),
			}
			if *req != want {
				t.Errorf("req = %+v,\nwant %+v", *req, want)
			}
		}},
		{name: "97 bytes", packet: encodeAnnounce(1, 2, valid)[:97], src: testSrc4, opts: opts, wantErr: bittorrent.ErrMalformedRequest},
		{name: "header only", packet: encodeAnnounce(1, 2, valid)[:16], src: testSrc4, opts: opts, wantErr: bittorrent.ErrMalformedRequest},
		{name: "negative downloaded", packet: with(func(a *announceFields) { a.downloaded = -1 }), src: testSrc4, opts: opts, wantErr: bittorrent.ErrInvalidDownloaded},
		{name: "negative left", packet: with(func(a *announceFields) { a.left = -1 }), src: testSrc4, opts: opts, wantErr: bittorrent.ErrInvalidLeft},
		{name: "negative uploaded", packet: with(func(a *announceFields) { a.uploaded = -5 }), src: testSrc4, opts: opts, wantErr: bittorrent.ErrInvalidUploaded},
		{name: "event 4", packet: with(func(a *announceFields) { a.event = 4 }), src: testSrc4, opts: opts, wantErr: bittorrent.ErrInvalidEvent},
		{name: "event 0xFFFFFFFF", packet: with(func(a *announceFields) { a.event = 0xFFFFFFFF }), src: testSrc4, opts: opts, wantErr: bittorrent.ErrInvalidEvent},
		{name: "port 0", packet: with(func(a *announceFields) { a.port = 0 }), src: testSrc4, opts: opts, wantErr: bittorrent.ErrInvalidPort},
		{name: "event 1 is completed", packet: with(func(a *announceFields) { a.event = 1 }), src: testSrc4, opts: opts, check: wantEvent(bittorrent.Completed)},
		{name: "event 2 is started", packet: with(func(a *announceFields) { a.event = 2 }), src: testSrc4, opts: opts, check: wantEvent(bittorrent.Started)},
		{name: "event 3 is stopped", packet: with(func(a *announceFields) { a.event = 3 }), src: testSrc4, opts: opts, check: wantEvent(bittorrent.Stopped)},
		{name: "num_want 0", packet: with(func(a *announceFields) { a.numWant = 0 }), src: testSrc4, opts: opts, check: wantNumWant(0)},
		{name: "num_want 20", packet: with(func(a *announceFields) { a.numWant = 20 }), src: testSrc4, opts: opts, check: wantNumWant(20)},
		{name: "num_want above max", packet: with(func(a *announceFields) { a.numWant = 1000 }), src: testSrc4, opts: opts, check: wantNumWant(100)},
		{name: "num_want max int32", packet: with(func(a *announceFields) { a.numWant = 1<<31 - 1 }), src: testSrc4, opts: opts, check: wantNumWant(100)},
		{name: "num_want -2 is the default", packet: with(func(a *announceFields) { a.numWant = -2 }), src: testSrc4, opts: opts, check: wantNumWant(50)},
		{name: "left 0 is a seeder", packet: with(func(a *announceFields) { a.left = 0 }), src: testSrc4, opts: opts, check: func(t *testing.T, req *bittorrent.AnnounceRequest) {
			t.Helper()
			if !req.Seeder() {
				t.Errorf("left 0 is not a seeder")
			}
		}},
		{name: "ip ignored without spoofing", packet: with(func(a *announceFields) { a.ip = [4]byte{198, 51, 100, 7} }), src: testSrc4, opts: opts, check: wantAddr("192.0.2.1:6881")},
		{name: "ip honoured with spoofing", packet: with(func(a *announceFields) { a.ip = [4]byte{198, 51, 100, 7} }), src: testSrc4, opts: spoof, check: wantAddr("198.51.100.7:6881")},
		{name: "ip 0 with spoofing is the source", packet: encodeAnnounce(1, 2, valid), src: testSrc4, opts: spoof, check: wantAddr("192.0.2.1:6881")},
		{name: "ip ignored from IPv6 even with spoofing", packet: with(func(a *announceFields) { a.ip = [4]byte{198, 51, 100, 7} }), src: testSrc6, opts: spoof, check: wantAddr("[2001:db8::1]:6881")},
		{name: "IPv6 source", packet: encodeAnnounce(1, 2, valid), src: testSrc6, opts: opts, check: wantAddr("[2001:db8::1]:6881")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req bittorrent.AnnounceRequest
			err := parseAnnounce(tt.packet, tt.src, tt.opts, &req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && tt.check != nil {
				tt.check(t, &req)
			}
		})
	}
}

func wantEvent(e bittorrent.Event) func(*testing.T, *bittorrent.AnnounceRequest) {
	return func(t *testing.T, req *bittorrent.AnnounceRequest) {
		t.Helper()
		if req.Event != e {
			t.Errorf("event = %v, want %v", req.Event, e)
		}
	}
}

func wantNumWant(n uint32) func(*testing.T, *bittorrent.AnnounceRequest) {
	return func(t *testing.T, req *bittorrent.AnnounceRequest) {
		t.Helper()
		if req.NumWant != n {
			t.Errorf("NumWant = %d, want %d", req.NumWant, n)
		}
	}
}

func wantAddr(ap string) func(*testing.T, *bittorrent.AnnounceRequest) {
	return func(t *testing.T, req *bittorrent.AnnounceRequest) {
		t.Helper()
		if want := netip.MustParseAddrPort(ap); req.Peer.AddrPort != want {
			t.Errorf("peer address = %v, want %v", req.Peer.AddrPort, want)
		}
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		opts []byte
		want string
	}{
		{"none", nil, ""},
		{"end only", []byte{optionEnd}, ""},
		{"NOPs only", []byte{optionNOP, optionNOP}, ""},
		{"one URL data", urlDataOptions("/announce?jwt=abc", 255), "/announce?jwt=abc"},
		{"URL data split in chunks concatenates", urlDataOptions("/announce?jwt=abc.def&x=1", 4), "/announce?jwt=abc.def&x=1"},
		{"NOPs between chunks", []byte{optionNOP, optionURLData, 2, '/', 'a', optionNOP, optionURLData, 1, 'b', optionEnd}, "/ab"},
		{"empty URL data", []byte{optionURLData, 0, optionURLData, 2, '/', 'x'}, "/x"},
		{"no end option", []byte{optionURLData, 2, '/', 'x'}, "/x"},
		{"data after end is ignored", []byte{optionURLData, 1, '/', optionEnd, optionURLData, 1, 'x'}, "/"},
		{"unknown type ends parsing", []byte{optionURLData, 1, '/', 0x7f, optionURLData, 1, 'x'}, "/"},
		{"missing length", []byte{optionURLData, 1, '/', optionURLData}, "/"},
		{"truncated data is dropped", []byte{optionURLData, 1, '/', optionURLData, 5, 'a', 'b'}, "/"},
		{"255-byte chunk", urlDataOptions(string(bytes.Repeat([]byte{'a'}, 255)), 255), string(bytes.Repeat([]byte{'a'}, 255))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseOptions(tt.opts, nil)
			if string(got) != tt.want {
				t.Errorf("parseOptions = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitURLData(t *testing.T) {
	tests := []struct {
		name, in, path, query string
	}{
		{"empty", "", "", ""},
		{"path only", "/announce", "/announce", ""},
		{"path and query", "/announce?jwt=a", "/announce", "jwt=a"},
		{"query only", "?jwt=a", "", "jwt=a"},
		{"second question mark stays in the query", "/a?b=?c", "/a", "b=?c"},
		{"passkey path", "/0123abcd/announce", "/0123abcd/announce", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, query := splitURLData(tt.in)
			if path != tt.path || query != tt.query {
				t.Errorf("splitURLData(%q) = %q, %q; want %q, %q", tt.in, path, query, tt.path, tt.query)
			}
		})
	}
}

func TestParseScrape(t *testing.T) {
	ih := func(b byte) bittorrent.InfoHash { return bittorrent.InfoHash{b} }
	tests := []struct {
		name    string
		packet  []byte
		max     int
		want    []bittorrent.InfoHash
		wantErr error
	}{
		{name: "no hash", packet: encodeScrape(1, 2), max: 10, wantErr: bittorrent.ErrMalformedRequest},
		{name: "partial hash only", packet: append(encodeScrape(1, 2), make([]byte, 19)...), max: 10, wantErr: bittorrent.ErrMalformedRequest},
		{name: "one hash", packet: encodeScrape(1, 2, ih(1)), max: 10, want: []bittorrent.InfoHash{ih(1)}},
		{name: "three hashes in order", packet: encodeScrape(1, 2, ih(3), ih(1), ih(2)), max: 10, want: []bittorrent.InfoHash{ih(3), ih(1), ih(2)}},
		{name: "trailing bytes ignored", packet: append(encodeScrape(1, 2, ih(1)), 9, 9, 9), max: 10, want: []bittorrent.InfoHash{ih(1)}},
		{name: "capped at max", packet: encodeScrape(1, 2, ih(1), ih(2), ih(3)), max: 2, want: []bittorrent.InfoHash{ih(1), ih(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseScrape(tt.packet, tt.max, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d hashes, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("hash %d = %v, want %v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func BenchmarkParseAnnounce(b *testing.B) {
	packet := encodeAnnounce(1, 2, announceFields{infoHash: testIH, peerID: testPID, left: 1, numWant: -1, port: 6881,
		options: urlDataOptions("/announce?jwt=eyJhbGciOiJ", 255)})
	opts := announceOptions{maxNumWant: 100, defaultNumWant: 50}
	var req bittorrent.AnnounceRequest
	url := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(len(packet)))
	for b.Loop() {
		if err := parseAnnounce(packet, testSrc4, opts, &req); err != nil {
			b.Fatal(err)
		}
		url = parseOptions(packet[announceLen:], url[:0])
	}
}
