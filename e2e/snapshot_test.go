package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/storage/memory"
)

// Snapshot tests: the memory store's swarms and download counts survive a
// restart of the daemon (issue 15).

const (
	snapSwarms   = 2000
	snapPerSwarm = 100 // 200,000 peers
)

func snapHash(i int) [20]byte {
	var h [20]byte
	copy(h[:], "snapshot-e2e")
	binary.BigEndian.PutUint32(h[16:], uint32(i))
	return h
}

// snapPeer is peer j of swarm i of the preloaded store: 9 in 10 IPv4, the
// rest IPv6, none on loopback, so that they cannot be the test's clients.
func snapPeer(i, j int) bittorrent.Peer {
	n := i*snapPerSwarm + j
	var id bittorrent.PeerID
	copy(id[:], fmt.Sprintf("-SN0001-%012d", n))
	if j%10 == 9 {
		var b [16]byte
		copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8})
		binary.BigEndian.PutUint64(b[8:], uint64(n))
		return bittorrent.Peer{ID: id, AddrPort: netip.AddrPortFrom(netip.AddrFrom16(b), 6881)}
	}
	a := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	return bittorrent.Peer{ID: id, AddrPort: netip.AddrPortFrom(a, 6881)}
}

// preload fills 200,000 peers into path directly: a memory store in this
// process, filled through its PeerStore methods, writes its snapshot when
// it stops, as the daemon's does. Announcing them one by one through the
// daemon would take minutes under the race detector; the announces that
// the daemon itself records come on top (see the test).
func preload(t *testing.T, path string) {
	t.Helper()
	cfg := memory.Config{}.WithDefaults()
	cfg.SnapshotPath = path
	s, err := memory.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < snapSwarms; i++ {
		ih := bittorrent.InfoHash(snapHash(i))
		for j := 0; j < snapPerSwarm; j++ {
			p := snapPeer(i, j)
			switch {
			case j%10 < 6:
				err = s.PutSeeder(ih, p)
			case j%10 == 6 && i%3 == 0:
				err = s.GraduateLeecher(ih, p)
			default:
				err = s.PutLeecher(ih, p)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// snapConfig is example_config.yaml with UDP on 127.0.0.1, HTTP on ::1 (so
// that the daemon sees both address families) and snapshots at path.
func snapConfig(t *testing.T, path, interval string) map[interface{}]interface{} {
	t.Helper()
	cfg := exampleConfig(t)
	c := section(cfg, "chihaya")
	c["metrics_addr"] = "127.0.0.1:0"
	section(c, "udp")["addr"] = "127.0.0.1:0"
	section(c, "http")["addr"] = "[::1]:0"
	sc := section(section(c, "storage"), "config")
	sc["snapshot_path"] = path
	sc["snapshot_interval"] = interval
	return cfg
}

// counts are a swarm's scrape counts over both families.
type counts struct{ seeders4, leechers4, seeders6, leechers6, completed int64 }

// scrapeAll scrapes every preloaded swarm over UDP (IPv4 counts) and HTTP
// on ::1 (IPv6 counts), 50 info hashes a request.
func scrapeAll(t *testing.T, d *daemontest.Daemon) []counts {
	t.Helper()
	u := udpTracker(t, d, "127.0.0.1:0")
	base := "http://" + d.Addr(t, "http")
	out := make([]counts, snapSwarms)
	for lo := 0; lo < snapSwarms; lo += 50 {
		var hs [][20]byte
		q := ""
		for i := lo; i < lo+50; i++ {
			h := snapHash(i)
			hs = append(hs, h)
			q += "&info_hash=" + frontendtest.EscapeBytes(h[:])
		}
		for k, s := range u.scrape(hs...) {
			out[lo+k].seeders4, out[lo+k].leechers4, out[lo+k].completed = int64(s.seeders), int64(s.leechers), int64(s.completed)
		}
		files := httpGet(t, base+"/scrape?"+q[1:])["files"].(map[string]interface{})
		for k, h := range hs {
			f := files[string(h[:])].(map[string]interface{})
			out[lo+k].seeders6, out[lo+k].leechers6 = f["complete"].(int64), f["incomplete"].(int64)
			if f["downloaded"].(int64) != out[lo+k].completed {
				t.Fatalf("swarm %d: downloaded %v over HTTP, %v over UDP", lo+k, f["downloaded"], out[lo+k].completed)
			}
		}
	}
	return out
}

// TestSnapshotSurvivesRestart: a daemon holding 200,000 peers, plus peers
// and completed downloads it recorded from real announces over both
// families, is stopped with SIGTERM and started again: every scrape count
// is identical, and announces get the restored peers.
func TestSnapshotSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	preload(t, path)
	cfg := snapConfig(t, path, "5m")
	d := start(t, cfg)
	if n := d.Metric(t, "chihaya_storage_snapshot_restores_total", map[string]string{"result": "ok"}); n != 1 {
		t.Fatalf("restores{result=ok} = %v, want 1", n)
	}
	if !strings.Contains(d.Log(), `"peers":200000`) {
		t.Fatalf("the restore did not log 200000 peers")
	}

	// Real announces: completed downloads over UDP (IPv4), leechers over
	// HTTP on ::1 (IPv6), into swarms that already have peers.
	u := udpTracker(t, d, "127.0.0.1:0")
	for i := 0; i < 20; i++ {
		udpServed(t, u.announce(snapHash(i), id(fmt.Sprintf("-qB4520-c%03d", i)), 0, 1, uint16(30000+i), 0, nil))
	}
	base := "http://" + d.Addr(t, "http")
	for i := 0; i < 20; i++ {
		httpServed(t, httpGet(t, httpAnnounce{infoHash: snapHash(100 + i), peerID: id(fmt.Sprintf("-TR3000-l%03d", i)), port: 40000 + i, left: 5, event: "started"}.url(base)))
	}
	want := make([]counts, snapSwarms)
	for i := range want {
		w := counts{seeders4: 60, leechers4: 30, leechers6: 10}
		if i%3 == 0 {
			w.seeders4, w.leechers4, w.completed = 70, 20, 10
		}
		if i < 20 {
			w.seeders4++
			w.completed++
		}
		if i >= 100 && i < 120 {
			w.leechers6++
		}
		want[i] = w
	}
	var before []counts
	eventually.Holds(t, func() string {
		before = scrapeAll(t, d)
		for i := range want {
			if before[i] != want[i] {
				return fmt.Sprintf("swarm %d: %+v, want %+v", i, before[i], want[i])
			}
		}
		return ""
	})

	d.Stop(t)
	if !strings.Contains(d.Log(), "chihaya stopped") {
		t.Fatal("no clean stop")
	}
	d2 := start(t, cfg)
	after := scrapeAll(t, d2)
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("swarm %d: %+v before the restart, %+v after", i, before[i], after[i])
		}
	}

	// An announce gets restored peers: of its swarm, not itself, as many
	// as it asks for.
	restored := map[string]bool{}
	for j := 0; j < snapPerSwarm; j++ {
		restored[snapPeer(7, j).AddrPort.String()] = true
	}
	u2 := udpTracker(t, d2, "127.0.0.1:0")
	r := u2.announce(snapHash(7), id("-qB4520-new"), 10, 2, 31000, 50, nil)
	udpServed(t, r)
	if len(r.peers) != 50 {
		t.Fatalf("%d peers in the answer, want 50", len(r.peers))
	}
	for _, p := range r.peers {
		if !restored[p] && !strings.HasPrefix(p, "127.0.0.1:") {
			t.Fatalf("peer %s is not one of swarm 7's", p)
		}
	}
	if int64(r.seeders) != after[7].seeders4 || int64(r.leechers) != after[7].leechers4+1 {
		t.Fatalf("announce counts %d seeders, %d leechers; the scrape had %+v (plus the announcer)", r.seeders, r.leechers, after[7])
	}
}

// TestSnapshotAfterKill: a daemon killed with SIGKILL more than one
// snapshot interval after an announce comes back with that swarm.
func TestSnapshotAfterKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	cfg := snapConfig(t, path, "1s")
	d := start(t, cfg)
	ih := hash(0x5a)
	u := udpTracker(t, d, "127.0.0.1:0")
	udpServed(t, u.announce(ih, id("-qB4520-kill"), 0, 1, 6881, 0, nil))
	// Wait for two snapshots after the announce was applied: the second
	// began after it.
	var ok0 float64
	eventually.Holds(t, func() string {
		if s := u.scrape(ih)[0]; s.seeders != 1 || s.completed != 1 {
			return fmt.Sprintf("scrape %+v: the announce is not applied yet", s)
		}
		ok0 = d.Metric(t, "chihaya_storage_snapshot_writes_total", map[string]string{"result": "ok"})
		return ""
	})
	eventually.Holds(t, func() string {
		if n := d.Metric(t, "chihaya_storage_snapshot_writes_total", map[string]string{"result": "ok"}); n < ok0+2 {
			return fmt.Sprintf("%v snapshots written since the announce, want 2", n-ok0)
		}
		return ""
	})
	d.Signal(t, syscall.SIGKILL)
	_ = d.Wait(t)

	d2 := start(t, cfg)
	u2 := udpTracker(t, d2, "127.0.0.1:0")
	if s := u2.scrape(ih)[0]; s.seeders != 1 || s.completed != 1 {
		t.Fatalf("after kill -9 and restart: scrape %+v, want the seeder and its completed download", s)
	}
	r := u2.announce(ih, id("-qB4520-next"), 10, 2, 6882, 10, nil)
	if len(r.peers) != 1 || r.peers[0] != "127.0.0.1:6881" {
		t.Fatalf("announce got %v, want the seeder announced before the kill", r.peers)
	}
}

// TestSnapshotCorruptStartsEmpty: the snapshot a daemon wrote at SIGINT,
// damaged, does not stop the next one: it starts empty, serves, counts
// and logs why, and keeps the file aside.
func TestSnapshotCorruptStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swarms.snap")
	cfg := snapConfig(t, path, "5m")
	d := start(t, cfg)
	u := udpTracker(t, d, "127.0.0.1:0")
	udpServed(t, u.announce(hash(0x33), id("-qB4520-corr"), 0, 1, 6881, 0, nil))
	eventually.Holds(t, func() string {
		if s := u.scrape(hash(0x33))[0]; s.seeders != 1 {
			return fmt.Sprintf("scrape %+v", s)
		}
		return ""
	})
	// SIGINT writes the final snapshot as SIGTERM does.
	d.Signal(t, syscall.SIGINT)
	if err := d.Wait(t); err != nil {
		t.Fatalf("exit after SIGINT: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-3] ^= 0x40 // a flipped bit in the last block
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	d2 := start(t, cfg)
	log := d2.Log()
	if !strings.Contains(log, "storage/memory: snapshot not restored; moved aside, starting empty") || !strings.Contains(log, "checksum") {
		t.Fatalf("the log does not say the snapshot was not restored and why")
	}
	if n := d2.Metric(t, "chihaya_storage_snapshot_restores_total", map[string]string{"result": "corrupt"}); n != 1 {
		t.Fatalf("restores{result=corrupt} = %v, want 1", n)
	}
	aside, _ := filepath.Glob(path + ".corrupt-*")
	if len(aside) != 1 {
		t.Fatalf("files moved aside: %v, want one", aside)
	}
	u2 := udpTracker(t, d2, "127.0.0.1:0")
	if s := u2.scrape(hash(0x33))[0]; s != (udpScrape{}) {
		t.Fatalf("scrape %+v after a corrupt snapshot, want an empty swarm", s)
	}
	udpServed(t, u2.announce(hash(0x34), id("-qB4520-new"), 10, 2, 6882, 10, nil))
}
