package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
)

// hash and id are frontendtest's, as [20]byte for the raw clients here.
func hash(b byte) [20]byte { return frontendtest.Hash(b) }

func id(s string) [20]byte { return frontendtest.ID(s) }

func num(t *testing.T, d map[string]interface{}, key string) int64 {
	t.Helper()
	n, ok := d[key].(int64)
	if !ok {
		t.Fatalf("response %v has no integer %q", d, key)
	}
	return n
}

// TestAnnounceAndScrape runs the scenarios every frontend passes through
// the daemon (the real logic and store), over {HTTP, UDP, WebSocket} ×
// {IPv4, IPv6}, each scenario against a daemon of its own on
// example_config.yaml (with a WebSocket listener for ws).
func TestAnnounceAndScrape(t *testing.T) {
	for _, proto := range []string{"http", "udp", "ws"} {
		t.Run(proto, func(t *testing.T) {
			frontendtest.Run(t, func(t *testing.T, af bittorrent.AddressFamily) frontendtest.Dialer {
				cfg := loopbackConfig(t, frontendtest.Loopback(af))
				if proto == "ws" {
					section(section(cfg, "chihaya"), "websocket")["addr"] = frontendtest.Loopback(af) + ":0"
				}
				return dialer(start(t, cfg), proto)
			})
		})
	}
}

// dialer returns how to reach the daemon d over proto ("http", "udp",
// "ws").
func dialer(d *daemontest.Daemon, proto string) frontendtest.Dialer {
	return func(t *testing.T) frontendtest.Client {
		switch proto {
		case "udp":
			return frontendtest.UDP(t, d.Addr(t, "udp"))
		case "ws":
			return frontendtest.WebSocket(t, "ws://"+d.Addr(t, "ws")+"/announce")
		}
		return frontendtest.HTTP(t, "http://"+d.Addr(t, "http")+"/announce")
	}
}

// TestIntervalsFromTheConfig: both protocols tell clients
// example_config.yaml's announce interval.
func TestIntervalsFromTheConfig(t *testing.T) {
	d := start(t, loopbackConfig(t, "127.0.0.1"))
	for _, proto := range []string{"http", "udp"} {
		r := frontendtest.MustAnnounce(t, dialer(d, proto)(t), frontendtest.Announce{InfoHash: hash(7), PeerID: id("-TR3000-" + proto), Port: 6881, Left: 1})
		if r.Interval != 30*time.Minute {
			t.Errorf("%s: interval %v, want example_config's 30m", proto, r.Interval)
		}
	}
}

// TestHTTPPeerForms: the HTTP-only answer forms, non-compact with and
// without peer IDs (BEP 3), and the minimum interval. The memory store
// keeps peer IDs only with keep_peer_ids; without them non-compact peers
// have no `peer id`, as opentracker's do.
func TestHTTPPeerForms(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep_peer_ids=%v", keep), func(t *testing.T) { testHTTPPeerForms(t, keep) })
	}
}

func testHTTPPeerForms(t *testing.T, keepIDs bool) {
	cfg := loopbackConfig(t, "127.0.0.1")
	section(section(section(cfg, "chihaya"), "storage"), "config")["keep_peer_ids"] = keepIDs
	d := start(t, cfg)
	base := "http://" + d.Addr(t, "http")
	ih := hash(1)
	seeder := httpAnnounce{infoHash: ih, peerID: id("-TR3000-seed"), port: 50001, left: 0, event: "started"}
	leecher := httpAnnounce{infoHash: ih, peerID: id("-qB4520-leech"), port: 50002, left: 1000, event: "started"}
	httpServed(t, httpGet(t, leecher.url(base)))
	seeder.extra = "compact=0"
	var resp map[string]interface{}
	eventually.Holds(t, func() string {
		resp = httpGet(t, seeder.url(base))
		if list, _ := resp["peers"].([]interface{}); len(list) != 1 {
			return fmt.Sprintf("seeder got non-compact peers %v, want the leecher", resp["peers"])
		}
		return ""
	})
	p := resp["peers"].([]interface{})[0].(map[string]interface{})
	var wantID interface{} // absent
	if keepIDs {
		wantID = string(leecher.peerID[:])
	}
	if p["peer id"] != wantID || p["port"] != int64(50002) || p["ip"] != "127.0.0.1" {
		t.Fatalf("non-compact peer %v, want the leecher", p)
	}
	if num(t, resp, "min interval") != 900 {
		t.Fatalf("min interval %v, want example_config's 15m", resp["min interval"])
	}
	seeder.extra = "compact=0&no_peer_id=1"
	resp = httpGet(t, seeder.url(base))
	if p := resp["peers"].([]interface{})[0].(map[string]interface{}); p["peer id"] != nil {
		t.Fatalf("no_peer_id=1 still sent a peer id: %v", p)
	}
}

func TestHTTPBadInputGetsAFailureReason(t *testing.T) {
	d := start(t, loopbackConfig(t, "127.0.0.1"))
	base := "http://" + d.Addr(t, "http")
	ih := hash(2)
	good := "info_hash=" + frontendtest.EscapeBytes(ih[:]) + "&peer_id=" + frontendtest.EscapeBytes([]byte("-TR3000-abcdefghijkl")) + "&port=6881&left=1&uploaded=0&downloaded=0"
	for _, tc := range []struct {
		name, path, reason string
	}{
		{"missing info_hash", "/announce?peer_id=-TR3000-abcdefghijkl&port=1&left=0", "missing info_hash"},
		{"short info_hash", "/announce?info_hash=abc&peer_id=-TR3000-abcdefghijkl&port=1&left=0", "invalid info_hash: must be 20 bytes"},
		{"bad escape", "/announce?info_hash=%zz&peer_id=-TR3000-abcdefghijkl&port=1", "invalid query: malformed percent-escape"},
		{"missing peer_id", "/announce?info_hash=" + frontendtest.EscapeBytes(ih[:]) + "&port=1&left=0", "missing peer_id"},
		{"missing port", "/announce?info_hash=" + frontendtest.EscapeBytes(ih[:]) + "&peer_id=-TR3000-abcdefghijkl&left=0", "missing port"},
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
	f := httpGet(t, base+"/scrape?info_hash="+frontendtest.EscapeBytes(ih[:]))["files"].(map[string]interface{})[string(ih[:])].(map[string]interface{})
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
	eventually.Holds(t, func() string {
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
	eventually.Holds(t, func() string {
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
