package udp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// FuzzParsePacket runs every parser over arbitrary datagrams and checks
// what a successful parse promises.
func FuzzParsePacket(f *testing.F) {
	f.Add(encodeConnect(1))
	f.Add(encodeAnnounce(1, 2, announceFields{infoHash: testIH, port: 6881, numWant: -1, options: urlDataOptions("/announce?jwt=a", 4)}))
	f.Add(encodeScrape(1, 2, testIH, testIH))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, txID, ok := parseHeader(b)
		if ok != (len(b) >= headerLen) {
			t.Fatalf("parseHeader ok = %v for %d bytes", ok, len(b))
		}
		if ok && txID != binary.BigEndian.Uint32(b[12:16]) {
			t.Fatalf("txID %d is not bytes 12-16", txID)
		}

		o := announceOptions{allowIPSpoofing: true, maxNumWant: 100, defaultNumWant: 50}
		for _, src := range []netip.AddrPort{testSrc4, testSrc6} {
			var req bittorrent.AnnounceRequest
			if err := parseAnnounce(b, src, o, &req); err == nil {
				switch {
				case len(b) < announceLen:
					t.Fatalf("announce of %d bytes accepted", len(b))
				case req.Peer.AddrPort.Port() == 0:
					t.Fatal("port 0 accepted")
				case req.NumWant > o.maxNumWant:
					t.Fatalf("NumWant %d above the max", req.NumWant)
				case !bytes.Equal(req.InfoHash[:], b[16:36]) || !bytes.Equal(req.Peer.ID[:], b[36:56]):
					t.Fatal("info hash or peer ID not taken from their offsets")
				case req.Peer.AddressFamily() != bittorrent.IPv4 && src.Addr().Is4():
					t.Fatal("an IPv4 client became an IPv6 peer")
				case src.Addr().Is6() && req.Peer.AddrPort.Addr() != src.Addr():
					t.Fatal("an IPv6 client's address was replaced")
				}
			}
		}

		hashes, err := parseScrape(b, 10, nil)
		if err == nil && (len(hashes) == 0 || len(hashes) > 10 || headerLen+infoHashLen*len(hashes) > len(b)) {
			t.Fatalf("parseScrape gave %d hashes for %d bytes", len(hashes), len(b))
		}
		if len(b) > announceLen {
			checkOptions(t, b[announceLen:])
		}
	})
}

// FuzzParseOptions checks the BEP 41 option parser on its own.
func FuzzParseOptions(f *testing.F) {
	f.Add(urlDataOptions("/announce?jwt=abc", 5))
	f.Add([]byte{optionNOP, optionURLData, 1, '/', 0x9, optionURLData, 1, 'x'})
	f.Add([]byte{optionURLData, 200, '/'})
	f.Fuzz(func(t *testing.T, opts []byte) {
		checkOptions(t, opts)
	})
}

func checkOptions(t *testing.T, opts []byte) {
	t.Helper()
	prefix := []byte("kept")
	got := parseOptions(opts, append([]byte(nil), prefix...))
	if !bytes.HasPrefix(got, prefix) {
		t.Fatal("parseOptions overwrote dst")
	}
	data := got[len(prefix):]
	if len(data) > len(opts) {
		t.Fatalf("%d bytes of URL data from %d bytes of options", len(data), len(opts))
	}
	path, query := splitURLData(string(data))
	if strings.Contains(path, "?") {
		t.Fatalf("path %q holds a '?'", path)
	}
	if rebuilt := path + "?" + query; query != "" && rebuilt != string(data) {
		t.Fatalf("split %q into %q and %q", data, path, query)
	}
}

// fuzzKey and fuzzNow fix the connection IDs of FuzzHandlePacket, so that
// seeds carrying a valid ID stay valid.
const (
	fuzzKey = "fuzz key"
	fuzzNow = 1_000_000
)

// FuzzHandlePacket feeds arbitrary datagrams through the whole handler and
// checks the promises made to the network: every reply carries the
// request's transaction ID and decodes, and a datagram that does not carry
// a valid connection ID never gets a reply larger than itself.
func FuzzHandlePacket(f *testing.F) {
	ids := NewConnIDGenerator([]byte(fuzzKey), DefaultMaxClockSkew)
	ids.now = func() int64 { return fuzzNow }
	id4 := ids.Generate(testSrc4.Addr())
	f.Add(encodeConnect(1), false)
	f.Add(encodeAnnounce(id4, 2, announceFields{infoHash: testIH, port: 6881, numWant: -1}), false)
	f.Add(encodeScrape(id4, 3, testIH), false)

	logic := frontendtest.NewLogic()
	cfg := Config{MaxNumWant: 20, DefaultNumWant: 10, MaxScrapeInfoHashes: 5}.WithDefaults()
	h := newHandler(context.Background(), logic, ids, frontend.NewMetrics("udp", false, actions...), &limitedLogger{}, cfg)
	buf := make([]byte, 0, 2048)

	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		src := testSrc4
		if v6 {
			src = testSrc6
		}
		reply := h.handle(b, src, buf[:0])
		if reply == nil {
			return
		}
		if len(reply) < 8 || !bytes.Equal(reply[4:8], b[12:16]) {
			t.Fatalf("reply %x does not carry the transaction ID of %x", reply, b)
		}
		connID := binary.BigEndian.Uint64(b)
		if !ids.Validate(connID, src.Addr()) && len(reply) > len(b) {
			t.Fatalf("unauthenticated %d-byte datagram got a %d-byte reply", len(b), len(reply))
		}
		peerLen := 6
		if v6 {
			peerLen = 18
		}
		decode(t, reply, peerLen)
	})
}
