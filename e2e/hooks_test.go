package e2e

import (
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/internal/jwttest"
)

// The end-to-end checks of the hooks: each is configured in the running
// daemon, and real HTTP and UDP requests are refused or served by it.

const refusals = "chihaya_middleware_hook_refusals_total"

// hooked is example_config.yaml on free 127.0.0.1 ports with these
// prehooks, each a name and its options.
func hooked(t *testing.T, hooks ...hookCfg) map[interface{}]interface{} {
	t.Helper()
	cfg := loopbackConfig(t, "127.0.0.1")
	var list []interface{}
	for _, h := range hooks {
		list = append(list, map[interface{}]interface{}{"name": h.name, "options": h.options})
	}
	section(cfg, "chihaya")["prehooks"] = list
	return cfg
}

type hookCfg struct {
	name    string
	options map[interface{}]interface{}
}

// refused fails unless the tracker refused a, over c, with exactly want.
func refused(t *testing.T, c frontendtest.Client, a frontendtest.Announce, want string) {
	t.Helper()
	r, err := c.Announce(a)
	if err != nil {
		t.Fatal(err)
	}
	if r.Failure != want {
		t.Fatalf("refusal %q, want %q (reply %+v)", r.Failure, want, r)
	}
}

// eachProtocol runs test with a client of d over HTTP, then over UDP; n
// numbers the protocol, for ports and peer IDs of its own.
func eachProtocol(t *testing.T, d *daemontest.Daemon, test func(t *testing.T, c frontendtest.Client, n int)) {
	t.Helper()
	for n, proto := range []string{"http", "udp"} {
		test(t, dialer(d, proto)(t), n)
	}
}

// httpServed fails unless the tracker answered an announce with peers.
func httpServed(t *testing.T, resp map[string]interface{}) {
	t.Helper()
	if fr, ok := resp["failure reason"]; ok {
		t.Fatalf("announce refused: %v", fr)
	}
	if _, ok := resp["interval"].(int64); !ok {
		t.Fatalf("response %v has no interval", resp)
	}
}

// httpRefused fails unless the tracker refused with exactly want.
func httpRefused(t *testing.T, resp map[string]interface{}, want string) {
	t.Helper()
	if got, _ := resp["failure reason"].(string); got != want {
		t.Fatalf("failure reason %q, want %q (response %v)", got, want, resp)
	}
	if _, ok := resp["peers"]; ok {
		t.Fatalf("a refusal carries peers: %v", resp)
	}
}

func udpServed(t *testing.T, r udpAnnounceReply) {
	t.Helper()
	if r.errMsg != "" || r.interval == 0 {
		t.Fatalf("UDP announce refused: %+v", r)
	}
}

func udpRefused(t *testing.T, r udpAnnounceReply, want string) {
	t.Helper()
	if r.errMsg != want {
		t.Fatalf("UDP error %q, want %q (reply %+v)", r.errMsg, want, r)
	}
}

// refusedCount reads the refusals counted for a hook and reason.
func refusedCount(t *testing.T, d *daemontest.Daemon, hook, action, reason string) float64 {
	t.Helper()
	return d.Metric(t, refusals, map[string]string{"hook": hook, "action": action, "reason": reason})
}

func udpTracker(t *testing.T, d *daemontest.Daemon, local string) *udpClient {
	t.Helper()
	c := newUDPClient(t, local, d.Addr(t, "udp"))
	c.connect()
	return c
}

func TestHookTorrentApproval(t *testing.T) {
	approved, other := hash(0x11), hash(0x22)
	list := configtest.File(t, "whitelist", "# approved torrents\n"+hex.EncodeToString(approved[:])+"\n")
	const refusal = "unapproved torrent: this tracker does not track this info hash"
	d := start(t, hooked(t, hookCfg{"torrent approval", map[interface{}]interface{}{
		"whitelist_file": list,
		// Long, so that only the reload signal can bring a change in.
		"file_check_interval": "1h",
	}}))
	announce := func(ih [20]byte, n int) frontendtest.Announce {
		return frontendtest.Announce{InfoHash: ih, PeerID: id(fmt.Sprintf("-TR3000-%d", n)), Port: uint16(6881 + n), Left: 1}
	}
	eachProtocol(t, d, func(t *testing.T, c frontendtest.Client, n int) {
		frontendtest.MustAnnounce(t, c, announce(approved, n))
		refused(t, c, announce(other, n), refusal)
	})
	if n := refusedCount(t, d, "torrent approval", "announce", "unapproved_torrent"); n != 2 {
		t.Fatalf("%v refusals counted, want 2", n)
	}

	// The list file is re-read on reload.
	configtest.Rewrite(t, list, hex.EncodeToString(approved[:])+"\n"+hex.EncodeToString(other[:])+"\n")
	reloaded(t, d)
	eachProtocol(t, d, func(t *testing.T, c frontendtest.Client, n int) {
		frontendtest.MustAnnounce(t, c, announce(other, n))
	})

	// A bad file is rejected on reload and the running list kept.
	configtest.Rewrite(t, list, "not a hash\n")
	d.Reload(t)
	l := d.WaitLine(t, "torrent approval: list file not reloaded; keeping the previous list")
	if want := "whitelist_file: " + list + `:1: "not a hash" is not an info hash: want 40 hex digits`; l.Str("error") != want {
		t.Fatalf("the bad list file reported as %q, want %q", l.Str("error"), want)
	}
	eachProtocol(t, d, func(t *testing.T, c frontendtest.Client, n int) {
		frontendtest.MustAnnounce(t, c, announce(other, n))
	})
}

func TestHookClientApproval(t *testing.T) {
	const refusal = "unapproved client: this tracker does not accept your BitTorrent client"
	d := start(t, hooked(t, hookCfg{"client approval", map[interface{}]interface{}{"blacklist": []interface{}{"qB"}}}))
	ih := hash(0x33)
	eachProtocol(t, d, func(t *testing.T, c frontendtest.Client, n int) {
		refused(t, c, frontendtest.Announce{InfoHash: ih, PeerID: id("-qB4520-"), Port: uint16(7001 + n), Left: 1}, refusal)
	})
	seeder := dialer(d, "http")(t)
	frontendtest.MustAnnounce(t, seeder, frontendtest.Announce{InfoHash: ih, PeerID: id("-TR3000-s"), Port: 7003})
	if n := refusedCount(t, d, "client approval", "announce", "unapproved_client"); n != 2 {
		t.Fatalf("%v refusals counted, want 2", n)
	}

	// The refused leechers never joined the swarm: a leecher served later
	// sees the seeder and itself only.
	leecher := dialer(d, "udp")(t)
	eventually.Holds(t, func() string {
		r := frontendtest.MustAnnounce(t, leecher, frontendtest.Announce{InfoHash: ih, PeerID: id("-TR3000-l"), Port: 7004, Left: 1})
		if r.Seeders != 1 || r.Leechers != 1 || len(r.Peers) != 1 || r.Peers[0].Addr.String() != "127.0.0.1:7003" {
			return fmt.Sprintf("swarm seen by a later leecher: %+v", r)
		}
		return ""
	})
}

func TestHookIntervalVariation(t *testing.T) {
	d := start(t, hooked(t, hookCfg{"interval variation", map[interface{}]interface{}{
		"modify_response_probability": 1,
		"max_increase_delta":          60,
		"modify_min_interval":         true,
	}}))
	base := "http://" + d.Addr(t, "http")
	// example_config.yaml's intervals are 30m and 15m.
	resp := httpGet(t, httpAnnounce{infoHash: hash(0x44), peerID: id("-TR3000-v"), port: 7101, left: 1}.url(base))
	httpServed(t, resp)
	add := num(t, resp, "interval") - 1800
	if add < 1 || add > 60 || num(t, resp, "min interval") != 900+add {
		t.Fatalf("interval %d, min interval %d: want 1800 and 900 plus the same 1..60", num(t, resp, "interval"), num(t, resp, "min interval"))
	}
	r := frontendtest.MustAnnounce(t, dialer(d, "udp")(t), frontendtest.Announce{InfoHash: hash(0x44), PeerID: id("-TR3000-w"), Port: 7102, Left: 1})
	if r.Interval < 1801*time.Second || r.Interval > 1860*time.Second {
		t.Fatalf("UDP interval %v, want 1801..1860s", r.Interval)
	}
}

func TestHookRateLimit(t *testing.T) {
	// One announce, then one every 1000 seconds: the second is refused.
	const refusal = "rate limited: retry in 1000s"
	limit := hookCfg{"rate limit", map[interface{}]interface{}{"announces_per_second": 0.001, "scrapes_per_second": 0.001}}

	t.Run("per client address", func(t *testing.T) {
		d := start(t, hooked(t, limit))
		base := "http://" + d.Addr(t, "http")
		a := httpAnnounce{infoHash: hash(0x55), peerID: id("-TR3000-r"), port: 7201, left: 1}
		httpServed(t, httpGet(t, a.url(base)))
		httpRefused(t, httpGet(t, a.url(base)), refusal)
		// UDP from the same address shares its budget; from another
		// address it has its own.
		udpRefused(t, udpTracker(t, d, "127.0.0.1:0").announce(hash(0x55), id("-TR3000-s"), 1, 2, 7202, 10, nil), refusal)
		other := udpTracker(t, d, "127.0.0.2:0")
		udpServed(t, other.announce(hash(0x55), id("-TR3000-t"), 1, 2, 7203, 10, nil))
		udpRefused(t, other.announce(hash(0x55), id("-TR3000-t"), 1, 2, 7203, 10, nil), refusal)
		if n := refusedCount(t, d, "rate limit", "announce", "rate_limited"); n != 3 {
			t.Fatalf("%v announce refusals counted, want 3", n)
		}
		// A reload does not refill the budgets.
		reloaded(t, d)
		httpRefused(t, httpGet(t, a.url(base)), refusal)

		// Scrapes have their own budget.
		sc := base + "/scrape?info_hash=" + frontendtest.EscapeBytes(func() []byte { h := hash(0x55); return h[:] }())
		if resp := httpGet(t, sc); resp["failure reason"] != nil {
			t.Fatalf("first scrape refused: %v", resp)
		}
		httpRefused(t, httpGet(t, sc), refusal)
		if n := refusedCount(t, d, "rate limit", "scrape", "rate_limited"); n != 1 {
			t.Fatalf("%v scrape refusals counted, want 1", n)
		}
	})

	t.Run("behind a trusted proxy", func(t *testing.T) {
		cfg := hooked(t, limit)
		h := section(section(cfg, "chihaya"), "http")
		h["real_ip_header"] = "X-Real-IP"
		h["trusted_proxies"] = []interface{}{"127.0.0.1/32"}
		d := start(t, cfg)
		base := "http://" + d.Addr(t, "http")
		a := httpAnnounce{infoHash: hash(0x66), peerID: id("-TR3000-p"), port: 7301, left: 1}
		alice, bob := map[string]string{"X-Real-IP": "192.0.2.10"}, map[string]string{"X-Real-IP": "2001:db8:1:2::10"}
		httpServed(t, httpGetFrom(t, a.url(base), alice))
		httpRefused(t, httpGetFrom(t, a.url(base), alice), refusal)
		httpServed(t, httpGetFrom(t, a.url(base), bob))
		// Another address in bob's /64 is the same client.
		httpRefused(t, httpGetFrom(t, a.url(base), map[string]string{"X-Real-IP": "2001:db8:1:2::99"}), refusal)
	})
}

// reloaded reloads the daemon and waits for it to log that it reloaded
// its configuration.
func reloaded(t *testing.T, d *daemontest.Daemon) {
	t.Helper()
	d.Reload(t)
	d.WaitLine(t, "configuration reloaded")
}

func TestHookJWT(t *testing.T) {
	issuer := jwttest.New(t, jwttest.ES256, "https://registry.example", "https://tracker.example", "registry-1")
	d := start(t, hooked(t, hookCfg{"jwt", map[interface{}]interface{}{
		"issuer":                  issuer.Issuer,
		"audience":                issuer.Audience,
		"jwk_set_url":             issuer.KeysURL,
		"jwk_set_update_interval": "5m",
	}}))
	token := func(ih [20]byte, exp time.Time) string { return issuer.Token(t, ih, exp) }
	ih := hash(0x77)
	valid, expired := token(ih, time.Now().Add(time.Hour)), token(ih, time.Now().Add(-time.Hour))
	// Over UDP the token travels in BEP 41 URL data, longer than one
	// option holds.
	if len(valid) <= 255 {
		t.Fatalf("token of %d bytes fits one option; the split is not exercised", len(valid))
	}
	announce := func(ih [20]byte, n int, token string) frontendtest.Announce {
		a := frontendtest.Announce{InfoHash: ih, PeerID: id(fmt.Sprintf("-TR3000-j%d", n)), Port: uint16(7401 + n), Left: 1}
		if token != "" {
			a.Params = "jwt=" + token
		}
		return a
	}
	eachProtocol(t, d, func(t *testing.T, c frontendtest.Client, n int) {
		frontendtest.MustAnnounce(t, c, announce(ih, n, valid))
		refused(t, c, announce(ih, n, expired), "unapproved request: jwt expired")
		refused(t, c, announce(ih, n, ""), "unapproved request: missing jwt")
	})
	// A token for another torrent does not open this one.
	refused(t, dialer(d, "http")(t), announce(hash(0x78), 0, valid), "unapproved request: jwt is not for this info hash")

	for reason, want := range map[string]float64{"expired": 2, "missing_jwt": 2, "wrong_infohash": 1} {
		if n := refusedCount(t, d, "jwt", "announce", reason); n != want {
			t.Errorf("%v %s refusals counted, want %v", n, reason, want)
		}
	}
	if n := d.Metric(t, "chihaya_middleware_jwt_key_set_fetches_total", map[string]string{"result": "ok"}); n < 1 {
		t.Errorf("%v successful key set fetches counted, want at least 1", n)
	}

	// The key server goes down, then the operator reloads the daemon: the
	// hook, unchanged, keeps the keys it has, and valid tokens still pass.
	issuer.Down()
	reloaded(t, d)
	eachProtocol(t, d, func(t *testing.T, c frontendtest.Client, n int) {
		frontendtest.MustAnnounce(t, c, announce(ih, n, valid))
	})
}
