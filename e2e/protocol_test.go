package e2e

import (
	"encoding/binary"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/daemontest"
)

// families runs a test against a daemon on 127.0.0.1 and one on [::1].
func families(t *testing.T, test func(t *testing.T, d *daemontest.Daemon, host string, peerSize int)) {
	for _, f := range []struct {
		name, host string
		size       int
	}{{"IPv4", "127.0.0.1", 6}, {"IPv6", "[::1]", 18}} {
		t.Run(f.name, func(t *testing.T) {
			d := start(t, loopbackConfig(t, f.host))
			test(t, d, f.host, f.size)
		})
	}
}

// eventually retries check until it returns "" or 5 seconds pass: swarm
// updates are applied just after the reply, so a second client may need a
// moment to see the first.
func eventually(t *testing.T, check func() string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hash(b byte) (h [20]byte) {
	for i := range h {
		h[i] = b ^ byte(i)
	}
	h[0] = '%' // a byte that must be escaped
	h[1] = '+' // a byte that a form decoder would mangle
	return h
}

func id(s string) (p [20]byte) {
	copy(p[:], s)
	copy(p[len(s):], "0123456789abcdefghij")
	return p
}

func num(t *testing.T, d map[string]interface{}, key string) int64 {
	t.Helper()
	n, ok := d[key].(int64)
	if !ok {
		t.Fatalf("response %v has no integer %q", d, key)
	}
	return n
}

func TestHTTPAnnounceAndScrape(t *testing.T) {
	families(t, func(t *testing.T, d *daemontest.Daemon, host string, size int) {
		base := "http://" + d.Addr(t, "http")
		ih := hash(1)
		seeder := httpAnnounce{infoHash: ih, peerID: id("-TR3000-seed"), port: 50001, left: 0, event: "started"}
		leecher := httpAnnounce{infoHash: ih, peerID: id("-qB4520-leech"), port: 50002, left: 1000, event: "started"}

		resp := httpGet(t, seeder.url(base))
		if num(t, resp, "complete") != 1 || num(t, resp, "incomplete") != 0 {
			t.Fatalf("first seeder's own announce: %v, want complete 1 incomplete 0", resp)
		}
		if num(t, resp, "interval") != 1800 || num(t, resp, "min interval") != 900 {
			t.Fatalf("intervals %v, want example_config's 30m/15m", resp)
		}

		peersKey := "peers"
		if size == 18 {
			peersKey = "peers6"
		}
		wantSeeder := net.JoinHostPort(strings.Trim(host, "[]"), "50001")
		eventually(t, func() string {
			resp = httpGet(t, leecher.url(base))
			peers, _ := resp[peersKey].(string)
			got := compactPeers(t, peers, size)
			if len(got) != 1 || got[0] != wantSeeder {
				return "leecher got peers " + strings.Join(got, ",") + ", want " + wantSeeder
			}
			return ""
		})
		if num(t, resp, "complete") != 1 || num(t, resp, "incomplete") != 1 {
			t.Fatalf("leecher's announce counts: %v, want 1/1", resp)
		}

		// The seeder is given the leecher, never itself; non-compact gives peer IDs.
		seeder.event, seeder.extra = "", "compact=0"
		eventually(t, func() string {
			resp = httpGet(t, seeder.url(base))
			list, _ := resp["peers"].([]interface{})
			if len(list) != 1 {
				return "seeder got non-compact peers " + strings.Repeat("?", len(list))
			}
			p := list[0].(map[string]interface{})
			if p["peer id"] != string(leecher.peerID[:]) || p["port"] != int64(50002) || p["ip"] != strings.Trim(host, "[]") {
				t.Fatalf("non-compact peer %v, want the leecher", p)
			}
			return ""
		})
		seeder.extra = "compact=0&no_peer_id=1"
		resp = httpGet(t, seeder.url(base))
		if p := resp["peers"].([]interface{})[0].(map[string]interface{}); p["peer id"] != nil {
			t.Fatalf("no_peer_id=1 still sent a peer id: %v", p)
		}

		// completed counts a download; stopped removes the peer at once.
		leecher.left, leecher.event = 0, "completed"
		resp = httpGet(t, leecher.url(base))
		if num(t, resp, "complete") != 2 || num(t, resp, "incomplete") != 0 || num(t, resp, "downloaded") != 1 {
			t.Fatalf("after completed: %v, want complete 2, incomplete 0, downloaded 1", resp)
		}
		other := hash(99)
		scrapeURL := base + "/scrape?info_hash=" + urlEscape(ih[:]) + "&info_hash=" + urlEscape(other[:])
		eventually(t, func() string {
			files := httpGet(t, scrapeURL)["files"].(map[string]interface{})
			f := files[string(ih[:])].(map[string]interface{})
			if f["complete"] != int64(2) || f["incomplete"] != int64(0) || f["downloaded"] != int64(1) {
				return "scrape after completed: " + fmtMap(f)
			}
			return ""
		})
		seeder.event, seeder.extra = "stopped", ""
		resp = httpGet(t, seeder.url(base))
		if num(t, resp, "complete") != 1 {
			t.Fatalf("a stopping seeder was still counted: %v", resp)
		}
		eventually(t, func() string {
			f := httpGet(t, scrapeURL)["files"].(map[string]interface{})[string(ih[:])].(map[string]interface{})
			if f["complete"] != int64(1) {
				return "scrape after stopped: " + fmtMap(f)
			}
			return ""
		})
	})
}

func urlEscape(b []byte) string {
	const hexdig = "0123456789ABCDEF"
	var sb strings.Builder
	for _, c := range b {
		sb.WriteByte('%')
		sb.WriteByte(hexdig[c>>4])
		sb.WriteByte(hexdig[c&15])
	}
	return sb.String()
}

func fmtMap(m map[string]interface{}) string {
	var parts []string
	for k, v := range m {
		switch v := v.(type) {
		case int64:
			parts = append(parts, k+"="+itoa(v))
		default:
			parts = append(parts, k+"=?")
		}
	}
	return strings.Join(parts, " ")
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	if neg {
		b = append([]byte{'-'}, b...)
	}
	return string(b)
}

func TestHTTPBadInputGetsAFailureReason(t *testing.T) {
	d := start(t, loopbackConfig(t, "127.0.0.1"))
	base := "http://" + d.Addr(t, "http")
	ih := hash(2)
	good := "info_hash=" + urlEscape(ih[:]) + "&peer_id=" + urlEscape([]byte("-TR3000-abcdefghijkl")) + "&port=6881&left=1&uploaded=0&downloaded=0"
	for _, tc := range []struct {
		name, path, reason string
	}{
		{"missing info_hash", "/announce?peer_id=-TR3000-abcdefghijkl&port=1&left=0", "missing info_hash"},
		{"short info_hash", "/announce?info_hash=abc&peer_id=-TR3000-abcdefghijkl&port=1&left=0", "invalid info_hash: must be 20 bytes"},
		{"bad escape", "/announce?info_hash=%zz&peer_id=-TR3000-abcdefghijkl&port=1", "invalid query: malformed percent-escape"},
		{"missing peer_id", "/announce?info_hash=" + urlEscape(ih[:]) + "&port=1&left=0", "missing peer_id"},
		{"missing port", "/announce?info_hash=" + urlEscape(ih[:]) + "&peer_id=-TR3000-abcdefghijkl&left=0", "missing port"},
		{"port zero", "/announce?" + strings.Replace(good, "port=6881", "port=0", 1), "invalid port: must be 1-65535"},
		{"port too large", "/announce?" + strings.Replace(good, "port=6881", "port=65536", 1), "invalid port: must be 1-65535"},
		{"negative numwant", "/announce?" + good + "&numwant=-5", "invalid numwant: must be a non-negative integer"},
		{"bad event", "/announce?" + good + "&event=resumed", "invalid event: must be started, stopped, completed or empty"},
		{"scrape without hash", "/scrape", "full scrape is disabled: give at least one info_hash"},
		{"unknown route", "/nope", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := httpGet(t, base+tc.path)
			reason, ok := resp["failure reason"].(string)
			if !ok || len(resp) != 1 {
				t.Fatalf("response %v is not a lone failure reason", resp)
			}
			if tc.reason != "" && reason != tc.reason {
				t.Fatalf("failure reason %q, want %q", reason, tc.reason)
			}
		})
	}
	if n := d.Metric(t, "chihaya_frontend_errors_total", map[string]string{"frontend": "http", "reason": "invalid_port"}); n != 2 {
		t.Fatalf("invalid_port errors counted %v times, want 2", n)
	}
	// None of it touched the swarm.
	f := httpGet(t, base+"/scrape?info_hash="+urlEscape(ih[:]))["files"].(map[string]interface{})[string(ih[:])].(map[string]interface{})
	if f["complete"] != int64(0) || f["incomplete"] != int64(0) {
		t.Fatalf("bad announces changed the swarm: %v", f)
	}

	// Junk on a raw TCP connection gets no HTML and does not hurt the listener.
	conn, err := net.DialTimeout("tcp", d.Addr(t, "http"), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = conn.Write([]byte("\x00\x01\x02 garbage \r\n\r\n"))
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	conn.Close()
	if strings.Contains(strings.ToLower(string(buf[:n])), "<html") {
		t.Fatalf("junk got an HTML answer: %q", buf[:n])
	}
	resp := httpGet(t, base+"/announce?"+good)
	if _, failed := resp["failure reason"]; failed {
		t.Fatalf("a good announce after junk failed: %v", resp)
	}
}

func TestUDPAnnounceAndScrape(t *testing.T) {
	families(t, func(t *testing.T, d *daemontest.Daemon, host string, size int) {
		tracker := d.Addr(t, "udp")
		local := net.JoinHostPort(strings.Trim(host, "[]"), "0")
		seeder, leecher := newUDPClient(t, local, tracker), newUDPClient(t, local, tracker)
		seeder.connect()
		leecher.connect()
		ih := hash(3)
		const started, completed, stopped = 2, 1, 3

		r := seeder.announce(ih, id("-TR3000-udpseed"), 0, started, 40001, -1, nil)
		if r.errMsg != "" || r.seeders != 1 || r.leechers != 0 || r.interval != 1800 {
			t.Fatalf("seeder's announce: %+v", r)
		}
		want := net.JoinHostPort(strings.Trim(host, "[]"), "40001")
		eventually(t, func() string {
			r = leecher.announce(ih, id("-qB4520-udpleech"), 500, started, 40002, 50, nil)
			if len(r.peers) != 1 || r.peers[0] != want {
				return "UDP leecher got " + strings.Join(r.peers, ",") + ", want " + want
			}
			return ""
		})
		if r.seeders != 1 || r.leechers != 1 {
			t.Fatalf("leecher's counts %+v, want 1/1", r)
		}

		// BEP 41 URL data is accepted (a NOP, a URL, then the end).
		opts := append([]byte{1, 2, byte(len("/announce?jwt=abc"))}, "/announce?jwt=abc"...)
		opts = append(opts, 0)
		r = leecher.announce(ih, id("-qB4520-udpleech"), 0, completed, 40002, 50, opts)
		if r.errMsg != "" || r.seeders != 2 || r.leechers != 0 {
			t.Fatalf("completed with URL data: %+v", r)
		}
		eventually(t, func() string {
			s := seeder.scrape(ih, hash(98))
			if s[0] != (udpScrape{seeders: 2, completed: 1}) || s[1] != (udpScrape{}) {
				return "UDP scrape " + itoa(int64(s[0].seeders)) + "/" + itoa(int64(s[0].completed)) + "/" + itoa(int64(s[0].leechers))
			}
			return ""
		})
		r = seeder.announce(ih, id("-TR3000-udpseed"), 0, stopped, 40001, -1, nil)
		if r.seeders != 1 || len(r.peers) != 0 {
			t.Fatalf("stopped: %+v", r)
		}
	})
}

func TestUDPRefusesWhatIsNotAuthenticated(t *testing.T) {
	d := start(t, loopbackConfig(t, "127.0.0.1"))
	c := newUDPClient(t, "127.0.0.1:0", d.Addr(t, "udp"))

	// An announce with a made-up connection ID gets no reply larger than itself.
	c.cid = 0xdeadbeefcafe
	pkt := binary.BigEndian.AppendUint64(nil, c.cid)
	pkt = binary.BigEndian.AppendUint32(pkt, 2)
	pkt = binary.BigEndian.AppendUint32(pkt, 7)
	pkt = append(pkt, make([]byte, 20)...)
	if reply := c.roundTrip(pkt, 500*time.Millisecond); len(reply) > len(pkt) {
		t.Fatalf("a forged connection ID got a %d-byte reply to a %d-byte packet", len(reply), len(pkt))
	}

	// A burst of garbage from another socket does not stop the listener.
	// (From the same socket, the replies to the garbage would fill this
	// test client's receive buffer and crowd out the answer it waits for.)
	flood := newUDPClient(t, "127.0.0.1:0", d.Addr(t, "udp"))
	for i := 0; i < 3000; i++ {
		junk := make([]byte, i%120)
		for j := range junk {
			junk[j] = byte(i * j)
		}
		if _, err := flood.conn.Write(junk); err != nil {
			t.Fatal(err)
		}
	}
	c.connect()
	if s := c.scrape(hash(4)); s[0] != (udpScrape{}) {
		t.Fatalf("scrape after garbage: %+v", s)
	}
	if n := d.Metric(t, "chihaya_frontend_errors_total", map[string]string{"frontend": "udp"}); n < 1000 {
		t.Fatalf("garbage counted %v times, want most of 3000", n)
	}
}

func TestHTTPAndUDPShareTheSwarm(t *testing.T) {
	d := start(t, loopbackConfig(t, "127.0.0.1"))
	ih := hash(5)
	httpGet(t, httpAnnounce{infoHash: ih, peerID: id("-TR3000-http"), port: 45001, event: "started"}.url("http://"+d.Addr(t, "http")))
	c := newUDPClient(t, "127.0.0.1:0", d.Addr(t, "udp"))
	c.connect()
	eventually(t, func() string {
		r := c.announce(ih, id("-qB4520-udp"), 10, 2, 45002, 10, nil)
		if len(r.peers) != 1 || r.peers[0] != "127.0.0.1:45001" {
			return "UDP leecher did not get the HTTP seeder: " + strings.Join(r.peers, ",")
		}
		return ""
	})
}

func TestGracefulShutdown(t *testing.T) {
	d := start(t, loopbackConfig(t, "127.0.0.1"))
	// Readiness turns on once every listener is up, just after the last
	// "listening" line.
	eventually(t, func() string {
		resp, err := http.Get("http://" + d.Addr(t, "metrics") + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "/readyz = " + resp.Status
		}
		return ""
	})
	d.Signal(t, syscall.SIGTERM)
	if code := d.ExitCode(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
