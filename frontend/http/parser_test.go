package http

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/query"
)

// A 20-byte info hash and peer ID, raw and percent-encoded the way clients
// send them (every byte escaped, or mixed).
var (
	testIH        = bittorrent.InfoHash{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf1, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x12, 0x34, 0x56, 0x78, 0x9a}
	testIHEscaped = "%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9A"
	testPeerID    = bittorrent.PeerID{'-', 'T', 'R', '3', '0', '0', '0', '-', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'}
	testPeerIDEsc = "-TR3000-abcdefghijkl"
)

func testParser(t testing.TB, mod func(*Config)) *parser {
	t.Helper()
	cfg := Config{Addr: "127.0.0.1:0"}
	if mod != nil {
		mod(&cfg)
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := newParser(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// announceQuery builds a valid announce query with the given changes: a
// value of "-" removes the key.
func announceQuery(changes ...string) string {
	params := [][2]string{
		{"info_hash", testIHEscaped},
		{"peer_id", testPeerIDEsc},
		{"port", "6881"},
		{"uploaded", "10"},
		{"downloaded", "20"},
		{"left", "30"},
	}
	for i := 0; i+1 < len(changes); i += 2 {
		k, v := changes[i], changes[i+1]
		found := false
		for j := range params {
			if params[j][0] == k {
				params[j][1] = v
				found = true
			}
		}
		if !found {
			params = append(params, [2]string{k, v})
		}
	}
	var parts []string
	for _, p := range params {
		if p[1] == "-" {
			continue
		}
		parts = append(parts, p[0]+"="+p[1])
	}
	return strings.Join(parts, "&")
}

var src4 = netip.MustParseAddr("192.0.2.7")

func TestParseAnnounce(t *testing.T) {
	base := bittorrent.AnnounceRequest{
		InfoHash:   testIH,
		Peer:       bittorrent.Peer{ID: testPeerID, AddrPort: netip.AddrPortFrom(src4, 6881)},
		Compact:    true,
		NumWant:    DefaultDefaultNumWant,
		Uploaded:   10,
		Downloaded: 20,
		Left:       30,
	}
	with := func(mod func(r *bittorrent.AnnounceRequest)) bittorrent.AnnounceRequest {
		r := base
		mod(&r)
		return r
	}
	tests := []struct {
		name     string
		query    string
		spoofing bool
		src      netip.Addr
		want     bittorrent.AnnounceRequest
		err      error
	}{
		{name: "minimal", query: announceQuery(), want: base},
		{name: "literal info_hash bytes", query: announceQuery("info_hash", "aaaaaaaaaaaaaaaaaaaa"), want: with(func(r *bittorrent.AnnounceRequest) { copy(r.InfoHash[:], "aaaaaaaaaaaaaaaaaaaa") })},
		{name: "plus is a space in peer_id", query: announceQuery("peer_id", "-TR3000-abcdefghijk+"), want: with(func(r *bittorrent.AnnounceRequest) { r.Peer.ID[19] = ' ' })},
		{name: "uploaded and downloaded default to 0", query: announceQuery("uploaded", "-", "downloaded", "-"), want: with(func(r *bittorrent.AnnounceRequest) { r.Uploaded, r.Downloaded = 0, 0 })},
		{name: "seeder", query: announceQuery("left", "0"), want: with(func(r *bittorrent.AnnounceRequest) { r.Left = 0 })},
		{name: "largest left", query: announceQuery("left", "18446744073709551615"), want: with(func(r *bittorrent.AnnounceRequest) { r.Left = 1<<64 - 1 })},
		{name: "event started", query: announceQuery("event", "started"), want: with(func(r *bittorrent.AnnounceRequest) { r.Event = bittorrent.Started })},
		{name: "event stopped", query: announceQuery("event", "stopped"), want: with(func(r *bittorrent.AnnounceRequest) { r.Event = bittorrent.Stopped })},
		{name: "event completed escaped", query: announceQuery("event", "%63ompleted"), want: with(func(r *bittorrent.AnnounceRequest) { r.Event = bittorrent.Completed })},
		{name: "event empty", query: announceQuery("event", ""), want: base},
		{name: "event paused (a BEP 21 partial seed)", query: announceQuery("event", "paused"), want: base},
		{name: "compact=0", query: announceQuery("compact", "0"), want: with(func(r *bittorrent.AnnounceRequest) { r.Compact = false })},
		{name: "compact=1", query: announceQuery("compact", "1"), want: base},
		{name: "no_peer_id=1", query: announceQuery("compact", "0", "no_peer_id", "1"), want: with(func(r *bittorrent.AnnounceRequest) { r.Compact, r.NoPeerID = false, true })},
		{name: "numwant", query: announceQuery("numwant", "7"), want: with(func(r *bittorrent.AnnounceRequest) { r.NumWant = 7 })},
		{name: "numwant zero", query: announceQuery("numwant", "0"), want: with(func(r *bittorrent.AnnounceRequest) { r.NumWant = 0 })},
		{name: "numwant capped", query: announceQuery("numwant", "1000"), want: with(func(r *bittorrent.AnnounceRequest) { r.NumWant = DefaultMaxNumWant })},
		{name: "numwant huge is capped", query: announceQuery("numwant", "99999999999999999999999"), want: with(func(r *bittorrent.AnnounceRequest) { r.NumWant = DefaultMaxNumWant })},
		{name: "first of repeated keys counts", query: announceQuery("port", "6881&port=1"), want: base},
		{name: "unknown keys ignored", query: announceQuery("key", "abc", "trackerid", "x", "supportcrypto", "1"), want: base},
		{name: "ip ignored without spoofing", query: announceQuery("ip", "198.51.100.1"), want: base},
		{name: "invalid ip ignored without spoofing", query: announceQuery("ip", "nonsense"), want: base},
		{name: "ip spoofed", query: announceQuery("ip", "198.51.100.1"), spoofing: true, want: with(func(r *bittorrent.AnnounceRequest) {
			r.Peer.AddrPort = netip.MustParseAddrPort("198.51.100.1:6881")
		})},
		{name: "ipv6 spoofed, escaped colons", query: announceQuery("ipv6", "2001%3adb8%3A%3A1"), spoofing: true, want: with(func(r *bittorrent.AnnounceRequest) {
			r.Peer.AddrPort = netip.MustParseAddrPort("[2001:db8::1]:6881")
		})},
		{name: "ipv4 preferred for an IPv4 client", query: announceQuery("ipv6", "2001:db8::1", "ipv4", "198.51.100.2"), spoofing: true, want: with(func(r *bittorrent.AnnounceRequest) {
			r.Peer.AddrPort = netip.MustParseAddrPort("198.51.100.2:6881")
		})},
		{name: "ipv6 preferred for an IPv6 client", query: announceQuery("ipv4", "198.51.100.2", "ipv6", "2001:db8::1"), spoofing: true, src: netip.MustParseAddr("2001:db8::9"), want: with(func(r *bittorrent.AnnounceRequest) {
			r.Peer.AddrPort = netip.MustParseAddrPort("[2001:db8::1]:6881")
		})},
		{name: "mapped spoofed ip unmapped", query: announceQuery("ip", "::ffff:198.51.100.3"), spoofing: true, want: with(func(r *bittorrent.AnnounceRequest) {
			r.Peer.AddrPort = netip.MustParseAddrPort("198.51.100.3:6881")
		})},
		{name: "IPv6 source", query: announceQuery(), src: netip.MustParseAddr("2001:db8::9"), want: with(func(r *bittorrent.AnnounceRequest) {
			r.Peer.AddrPort = netip.MustParseAddrPort("[2001:db8::9]:6881")
		})},

		{name: "invalid spoofed ip", query: announceQuery("ip", "nonsense"), spoofing: true, err: bittorrent.ErrInvalidIP},
		{name: "unspecified spoofed ip", query: announceQuery("ip", "0.0.0.0"), spoofing: true, err: bittorrent.ErrInvalidIP},
		{name: "ipv4 holding an IPv6 address", query: announceQuery("ipv4", "2001:db8::1"), spoofing: true, err: bittorrent.ErrInvalidIP},
		{name: "ipv6 holding an IPv4 address", query: announceQuery("ipv6", "198.51.100.1"), spoofing: true, src: netip.MustParseAddr("2001:db8::9"), err: bittorrent.ErrInvalidIP},
		{name: "missing info_hash", query: announceQuery("info_hash", "-"), err: bittorrent.ErrMissingInfoHash},
		{name: "short info_hash", query: announceQuery("info_hash", testIHEscaped[3:]), err: bittorrent.ErrInvalidInfoHash},
		{name: "long info_hash", query: announceQuery("info_hash", testIHEscaped+"%00"), err: bittorrent.ErrInvalidInfoHash},
		{name: "empty info_hash", query: announceQuery("info_hash", ""), err: bittorrent.ErrInvalidInfoHash},
		{name: "hex info_hash is 40 bytes", query: announceQuery("info_hash", testIH.String()), err: bittorrent.ErrInvalidInfoHash},
		{name: "missing peer_id", query: announceQuery("peer_id", "-"), err: bittorrent.ErrMissingPeerID},
		{name: "short peer_id", query: announceQuery("peer_id", "-TR3000-"), err: bittorrent.ErrInvalidPeerID},
		{name: "missing port", query: announceQuery("port", "-"), err: bittorrent.ErrMissingPort},
		{name: "port zero", query: announceQuery("port", "0"), err: bittorrent.ErrInvalidPort},
		{name: "port too large", query: announceQuery("port", "65536"), err: bittorrent.ErrInvalidPort},
		{name: "port negative", query: announceQuery("port", "-1"), err: bittorrent.ErrInvalidPort},
		{name: "port garbage", query: announceQuery("port", "http"), err: bittorrent.ErrInvalidPort},
		{name: "port empty", query: announceQuery("port", ""), err: bittorrent.ErrInvalidPort},
		{name: "missing left", query: announceQuery("left", "-"), err: bittorrent.ErrMissingLeft},
		{name: "empty left", query: announceQuery("left", ""), err: bittorrent.ErrInvalidLeft},
		{name: "negative left", query: announceQuery("left", "-5"), err: bittorrent.ErrInvalidLeft},
		{name: "left overflow", query: announceQuery("left", "18446744073709551616"), err: bittorrent.ErrInvalidLeft},
		{name: "uploaded garbage", query: announceQuery("uploaded", "1.5"), err: bittorrent.ErrInvalidUploaded},
		{name: "downloaded garbage", query: announceQuery("downloaded", "x"), err: bittorrent.ErrInvalidDownloaded},
		{name: "numwant negative", query: announceQuery("numwant", "-1"), err: bittorrent.ErrInvalidNumWant},
		{name: "numwant garbage", query: announceQuery("numwant", "lots"), err: bittorrent.ErrInvalidNumWant},
		{name: "numwant empty", query: announceQuery("numwant", ""), err: bittorrent.ErrInvalidNumWant},
		{name: "unknown event", query: announceQuery("event", "resumed"), err: bittorrent.ErrInvalidEvent},
		{name: "empty query", query: "", err: bittorrent.ErrMissingInfoHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParser(t, func(c *Config) { c.AllowIPSpoofing = tt.spoofing })
			src := tt.src
			if !src.IsValid() {
				src = src4
			}
			var v query.Values
			if err := v.Parse("/announce", tt.query); err != nil {
				t.Fatalf("query.Parse(%q): %v", tt.query, err)
			}
			var got bittorrent.AnnounceRequest
			err := p.parseAnnounce(&v, src, &got)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("parseAnnounce(%q) error = %v, want %v", tt.query, err, tt.err)
			}
			if err != nil {
				return
			}
			got.Params = nil
			if got.RemoteAddr != src {
				t.Errorf("parseAnnounce(%q): RemoteAddr %v, want the connection's %v", tt.query, got.RemoteAddr, src)
			}
			got.RemoteAddr = netip.Addr{}
			if got != tt.want {
				t.Errorf("parseAnnounce(%q) =\n%+v\nwant\n%+v", tt.query, got, tt.want)
			}
		})
	}
}

func TestParseScrape(t *testing.T) {
	ih := func(b byte) bittorrent.InfoHash {
		var h bittorrent.InfoHash
		for i := range h {
			h[i] = b
		}
		return h
	}
	esc := func(b byte) string {
		return strings.Repeat("%"+strings.ToUpper(string("0123456789abcdef"[b>>4])+string("0123456789abcdef"[b&15])), 20)
	}
	tests := []struct {
		name  string
		query string
		src   netip.Addr
		want  []bittorrent.InfoHash
		af    bittorrent.AddressFamily
		err   error
	}{
		{name: "one", query: "info_hash=" + esc(1), want: []bittorrent.InfoHash{ih(1)}},
		{name: "sorted", query: "info_hash=" + esc(3) + "&info_hash=" + esc(1) + "&info_hash=" + esc(2), want: []bittorrent.InfoHash{ih(1), ih(2), ih(3)}},
		{name: "deduplicated", query: "info_hash=" + esc(2) + "&info_hash=" + esc(1) + "&info_hash=" + esc(2), want: []bittorrent.InfoHash{ih(1), ih(2)}},
		{name: "other keys ignored", query: "passkey=x&info_hash=" + esc(1), want: []bittorrent.InfoHash{ih(1)}},
		{name: "IPv6 client", query: "info_hash=" + esc(1), src: netip.MustParseAddr("2001:db8::1"), want: []bittorrent.InfoHash{ih(1)}, af: bittorrent.IPv6},
		{name: "at the cap", query: strings.Repeat("info_hash="+esc(1)+"&", 3), want: []bittorrent.InfoHash{ih(1)}},
		{name: "over the cap", query: strings.Repeat("info_hash="+esc(1)+"&", 4), err: bittorrent.ErrTooManyInfoHashes},
		{name: "none", query: "", err: bittorrent.ErrFullScrapeDisabled},
		{name: "none, other keys", query: "a=b", err: bittorrent.ErrFullScrapeDisabled},
		{name: "short info_hash", query: "info_hash=abc", err: bittorrent.ErrInvalidInfoHash},
		{name: "one bad among good", query: "info_hash=" + esc(1) + "&info_hash=", err: bittorrent.ErrInvalidInfoHash},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParser(t, func(c *Config) { c.MaxScrapeInfoHashes = 3 })
			src := tt.src
			if !src.IsValid() {
				src = src4
			}
			var v query.Values
			if err := v.Parse("/scrape", tt.query); err != nil {
				t.Fatal(err)
			}
			var got bittorrent.ScrapeRequest
			err := p.parseScrape(&v, src, &got)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("parseScrape error = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if len(got.InfoHashes) != len(tt.want) {
				t.Fatalf("info hashes = %v, want %v", got.InfoHashes, tt.want)
			}
			for i := range got.InfoHashes {
				if got.InfoHashes[i] != tt.want[i] {
					t.Errorf("info hash %d = %v, want %v", i, got.InfoHashes[i], tt.want[i])
				}
			}
			if got.AddressFamily != tt.af {
				t.Errorf("address family = %v, want %v", got.AddressFamily, tt.af)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct {
		name    string
		header  string
		trusted []string
		remote  string
		values  []string
		want    string
		err     error
	}{
		{name: "IPv4", remote: "192.0.2.1:5000", want: "192.0.2.1"},
		{name: "IPv6", remote: "[2001:db8::1]:5000", want: "2001:db8::1"},
		{name: "IPv4-mapped is unmapped", remote: "[::ffff:192.0.2.1]:5000", want: "192.0.2.1"},
		{name: "zone dropped", remote: "[fe80::1%eth0]:5000", want: "fe80::1"},
		{name: "garbage remote", remote: "nonsense", err: bittorrent.ErrUnknownAddress},
		{name: "header ignored when not configured", remote: "192.0.2.1:5000", values: []string{"198.51.100.1"}, want: "192.0.2.1"},
		{name: "header from anyone when no trusted list", header: "X-Real-IP", remote: "192.0.2.1:5000", values: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "header from a trusted proxy", header: "x-real-ip", trusted: []string{"192.0.2.0/24"}, remote: "192.0.2.1:5000", values: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "header from a trusted single address", header: "X-Real-IP", trusted: []string{"192.0.2.1"}, remote: "192.0.2.1:5000", values: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "header from an untrusted sender ignored", header: "X-Real-IP", trusted: []string{"10.0.0.0/8"}, remote: "192.0.2.1:5000", values: []string{"198.51.100.1"}, want: "192.0.2.1"},
		{name: "mapped sender matched as IPv4", header: "X-Real-IP", trusted: []string{"192.0.2.0/24"}, remote: "[::ffff:192.0.2.1]:5000", values: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "forwarded-for uses the last entry", header: "X-Forwarded-For", remote: "192.0.2.1:5000", values: []string{"203.0.113.9, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "forwarded-for, last header line", header: "X-Forwarded-For", remote: "192.0.2.1:5000", values: []string{"203.0.113.9", "198.51.100.1"}, want: "198.51.100.1"},
		{name: "header with a port", header: "X-Real-IP", remote: "192.0.2.1:5000", values: []string{"[2001:db8::5]:80"}, want: "2001:db8::5"},
		{name: "header missing falls back to the connection", header: "X-Real-IP", remote: "192.0.2.1:5000", want: "192.0.2.1"},
		{name: "header garbage", header: "X-Real-IP", remote: "192.0.2.1:5000", values: []string{"nonsense"}, err: bittorrent.ErrUnknownAddress},
		{name: "header unspecified", header: "X-Real-IP", remote: "192.0.2.1:5000", values: []string{"0.0.0.0"}, err: bittorrent.ErrUnknownAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParser(t, func(c *Config) { c.RealIPHeader, c.TrustedProxies = tt.header, tt.trusted })
			// The request head as a client would send it, read by the
			// server's own parser: every value of the header is a line.
			head := "GET /announce HTTP/1.1\r\nHost: x\r\n"
			name := tt.header
			if name == "" {
				name = "X-Real-Ip"
			}
			for _, v := range tt.values {
				head += canonical(name) + ": " + v + "\r\n"
			}
			var r request
			if err := parseHead([]byte(head+"\r\n"), strings.ToLower(tt.header), &r); err != nil {
				t.Fatal(err)
			}
			remote, _ := netip.ParseAddrPort(tt.remote)
			got, err := p.clientAddr(remote, r.realIP, r.haveRealIP)
			if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Fatalf("clientAddr error = %v, want %v", err, tt.err)
			}
			if err == nil && got.String() != tt.want {
				t.Errorf("clientAddr = %v, want %v", got, tt.want)
			}
		})
	}
}

// canonical spells header names as net/http stores them.
func canonical(s string) string {
	b := []byte(strings.ToLower(s))
	for i := range b {
		if i == 0 || b[i-1] == '-' {
			b[i] = strings.ToUpper(string(b[i]))[0]
		}
	}
	return string(b)
}

func TestParseAllocs(t *testing.T) {
	p := testParser(t, nil)
	var v query.Values
	aq := announceQuery("event", "started", "numwant", "50", "compact", "1", "key", "a1b2c3")
	sq := "info_hash=" + testIHEscaped + "&info_hash=aaaaaaaaaaaaaaaaaaaa"
	var ar bittorrent.AnnounceRequest
	sr := bittorrent.ScrapeRequest{InfoHashes: make([]bittorrent.InfoHash, 0, 8)}
	_ = v.Parse("/announce", aq)
	allocs := testing.AllocsPerRun(100, func() {
		if err := v.Parse("/announce", aq); err != nil {
			t.Fatal(err)
		}
		ar = bittorrent.AnnounceRequest{}
		if err := p.parseAnnounce(&v, src4, &ar); err != nil {
			t.Fatal(err)
		}
		if err := v.Parse("/scrape", sq); err != nil {
			t.Fatal(err)
		}
		if err := p.parseScrape(&v, src4, &sr); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("parsing an announce and a scrape: %v allocs, want 0", allocs)
	}
}

func FuzzParseAnnounce(f *testing.F) {
	f.Add(announceQuery(), false)
	f.Add(announceQuery("event", "started", "numwant", "99999999999", "compact", "0", "no_peer_id", "1"), false)
	f.Add(announceQuery("ip", "198.51.100.1", "ipv6", "2001:db8::1"), true)
	f.Add(announceQuery("port", "65536"), false)
	f.Add("info_hash=%zz", false)
	f.Add("", true)
	p := testParser(f, nil)
	ps := testParser(f, func(c *Config) { c.AllowIPSpoofing = true })
	f.Fuzz(func(t *testing.T, q string, spoofing bool) {
		pp := p
		if spoofing {
			pp = ps
		}
		var v query.Values
		if err := v.Parse("/announce", q); err != nil {
			if !errors.Is(err, bittorrent.ErrInvalidEscape) {
				t.Fatalf("query.Parse error %v is not ErrInvalidEscape", err)
			}
			return
		}
		var req bittorrent.AnnounceRequest
		err := pp.parseAnnounce(&v, src4, &req)
		if err != nil {
			var ce bittorrent.ClientError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a ClientError", err)
			}
			return
		}
		if req.NumWant > DefaultMaxNumWant {
			t.Errorf("NumWant %d above the cap", req.NumWant)
		}
		if req.Peer.AddrPort.Port() == 0 || !req.Peer.AddrPort.Addr().IsValid() {
			t.Errorf("accepted peer with address %v", req.Peer.AddrPort)
		}
		if req.Peer.AddrPort.Addr().Is4In6() {
			t.Errorf("accepted an IPv4-mapped address %v", req.Peer.AddrPort)
		}
		if !spoofing && req.Peer.AddrPort.Addr() != src4 {
			t.Errorf("address %v is not the source without spoofing", req.Peer.AddrPort)
		}
	})
}

func FuzzParseScrape(f *testing.F) {
	f.Add("info_hash=" + testIHEscaped)
	f.Add("info_hash=" + testIHEscaped + "&info_hash=aaaaaaaaaaaaaaaaaaaa&info_hash=" + testIHEscaped)
	f.Add(strings.Repeat("info_hash=aaaaaaaaaaaaaaaaaaaa&", 60))
	f.Add("info_hash=short")
	f.Add("")
	p := testParser(f, nil)
	f.Fuzz(func(t *testing.T, q string) {
		var v query.Values
		if err := v.Parse("/scrape", q); err != nil {
			return
		}
		var req bittorrent.ScrapeRequest
		err := p.parseScrape(&v, src4, &req)
		if err != nil {
			var ce bittorrent.ClientError
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is not a ClientError", err)
			}
			return
		}
		if n := len(req.InfoHashes); n == 0 || n > DefaultMaxScrapeInfoHashes {
			t.Errorf("%d info hashes accepted", n)
		}
		for i := 1; i < len(req.InfoHashes); i++ {
			if compareInfoHash(req.InfoHashes[i-1], req.InfoHashes[i]) >= 0 {
				t.Fatalf("info hashes not sorted and unique: %v", req.InfoHashes)
			}
		}
	})
}

func BenchmarkParseAnnounce(b *testing.B) {
	p := testParser(b, nil)
	q := announceQuery("event", "started", "numwant", "50", "compact", "1", "key", "a1b2c3", "supportcrypto", "1")
	var v query.Values
	var req bittorrent.AnnounceRequest
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Parse("/announce", q); err != nil {
			b.Fatal(err)
		}
		req = bittorrent.AnnounceRequest{}
		if err := p.parseAnnounce(&v, src4, &req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseScrape(b *testing.B) {
	p := testParser(b, nil)
	var parts []string
	for i := 0; i < 10; i++ {
		parts = append(parts, "info_hash="+testIHEscaped[:len(testIHEscaped)-3]+"%"+string("0123456789"[i])+"0")
	}
	q := strings.Join(parts, "&")
	var v query.Values
	req := bittorrent.ScrapeRequest{InfoHashes: make([]bittorrent.InfoHash, 0, DefaultMaxScrapeInfoHashes)}
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Parse("/scrape", q); err != nil {
			b.Fatal(err)
		}
		if err := p.parseScrape(&v, src4, &req); err != nil {
			b.Fatal(err)
		}
	}
}
