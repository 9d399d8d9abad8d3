package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/internal/eventually"
)

// TestLocalityThroughTheDaemon: with locality on, an announce is answered
// from the announcer's own subnet first, with the reserve from outside,
// over UDP (IPv4, from real source addresses) and over HTTP for IPv6
// peers (addresses given with allow_ip_spoofing), for both drivers.
// e2e/locality proves with real clients that this keeps traffic local.
func TestLocalityThroughTheDaemon(t *testing.T) {
	locality := map[interface{}]interface{}{"enabled": true, "ipv4_prefix": 24, "ipv6_prefix": 64, "min_outside_share": 0.1}
	for _, driver := range []string{"memory", "redis"} {
		t.Run(driver, func(t *testing.T) {
			var cfg map[interface{}]interface{}
			if driver == "redis" {
				srv := startRedisServer(t, "redis-server")
				cfg = redisConfig(t, map[interface{}]interface{}{"redis_broker": "redis://" + srv.Addr + "/0", "locality": locality})
			} else {
				cfg = loopbackConfig(t, "127.0.0.1")
				section(cfg, "chihaya")["storage"] = map[interface{}]interface{}{"name": "memory", "config": map[interface{}]interface{}{"locality": locality}}
			}
			section(section(cfg, "chihaya"), "http")["allow_ip_spoofing"] = true
			d := start(t, cfg)

			// Over UDP: ten seeders in each of two /24s, each from its
			// own source address.
			ih := hash(0xa1)
			for rack := 1; rack <= 2; rack++ {
				for host := 1; host <= 10; host++ {
					u := udpTracker(t, d, fmt.Sprintf("127.0.%d.%d:0", rack, host))
					udpServed(t, u.announce(ih, id(fmt.Sprintf("-LT2000-%d-%d", rack, host)), 0, 2, uint16(7000+rack*100+host), 0, nil))
				}
			}
			// The swarm updates apply once each reply is on its way: wait
			// until every seeder is counted, then check one answer (a
			// retried check could pass by chance).
			me := udpTracker(t, d, "127.0.1.100:0")
			var r udpAnnounceReply
			eventually.Holds(t, func() string {
				r = me.announce(ih, id("-LT2000-me"), 1, 2, 7999, 10, nil)
				udpServed(t, r)
				if r.seeders != 20 {
					return fmt.Sprintf("UDP: %d seeders counted, want 20", r.seeders)
				}
				return ""
			})
			if msg := checkLocal("UDP", r.peers, "127.0.1.", 9, 1); msg != "" {
				t.Fatal(msg)
			}

			// Over HTTP, IPv6 peers in two /64s.
			ih6 := hash(0xa2)
			base := "http://" + d.Addr(t, "http")
			for net := 1; net <= 2; net++ {
				for host := 1; host <= 10; host++ {
					a := httpAnnounce{infoHash: ih6, peerID: id(fmt.Sprintf("-LT2000-6-%d-%d", net, host)), port: 7000 + net*100 + host,
						event: "started", extra: fmt.Sprintf("ipv6=2001:db8:1:%d::%d", net, host)}
					httpServed(t, httpGet(t, a.url(base)))
				}
			}
			var resp map[string]interface{}
			eventually.Holds(t, func() string {
				resp = httpGet(t, httpAnnounce{infoHash: ih6, peerID: id("-LT2000-6-me"), port: 7999, left: 1, event: "started",
					extra: "numwant=10&ipv6=2001:db8:1:1::100"}.url(base))
				httpServed(t, resp)
				if n := num(t, resp, "complete"); n != 20 {
					return fmt.Sprintf("HTTP IPv6: %d seeders counted, want 20", n)
				}
				return ""
			})
			peers6, _ := resp["peers6"].(string)
			if msg := checkLocal("HTTP IPv6", compactPeers(t, peers6, 18), "[2001:db8:1:1::", 9, 1); msg != "" {
				t.Fatal(msg)
			}
		})
	}
}

// checkLocal checks an answer of own+outside peers: the first own are in
// the announcer's subnet (their addresses start with prefix), the rest are
// not. It returns what is wrong, or "".
func checkLocal(what string, peers []string, prefix string, own, outside int) string {
	if len(peers) != own+outside {
		return fmt.Sprintf("%s: %d peers %v, want %d", what, len(peers), peers, own+outside)
	}
	for i, p := range peers {
		if local := strings.HasPrefix(p, prefix); local != (i < own) {
			return fmt.Sprintf("%s: peer %d is %s; want the %d of %s* first, then %d from outside: %v", what, i, p, own, prefix, outside, peers)
		}
	}
	return ""
}
