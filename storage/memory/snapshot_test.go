package memory

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// dumpPeer is one stored peer as a test compares it.
type dumpPeer struct {
	id     bittorrent.PeerID
	stamp  uint32
	seeder bool
}

// dumpSwarm is one swarm as a test compares it: its peers by address and
// port, and its downloads.
type dumpSwarm struct {
	downloads uint32
	peers     map[netip.AddrPort]dumpPeer
}

// eachFamily calls fn for every family holding the peers of sw: the flat
// ones, or every cell.
func eachFamily(s *PeerStore, sw *swarm, fn func(l *layout, f *family)) {
	if sw.loc != nil {
		for af := range sw.loc.fam {
			for ci := range sw.loc.fam[af].cells {
				fn(&s.layouts[af], &sw.loc.fam[af].cells[ci].family)
			}
		}
		return
	}
	fn(&s.layouts[0], &sw.v4)
	if sw.v6 != nil {
		fn(&s.layouts[1], sw.v6)
	}
}

// dump reads every swarm of s out of its internal structures.
func dump(s *PeerStore) map[bittorrent.InfoHash]dumpSwarm {
	out := map[bittorrent.InfoHash]dumpSwarm{}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for ih, sw := range sh.swarms.all() {
			d := dumpSwarm{downloads: sw.downloads, peers: map[netip.AddrPort]dumpPeer{}}
			eachFamily(s, sw, func(l *layout, f *family) {
				for j := 0; j < int(f.n); j++ {
					var p bittorrent.Peer
					f.fill(l, j, &p)
					rec := f.rec(l, j)
					d.peers[p.AddrPort] = dumpPeer{id: p.ID, stamp: uint32(s.stamps.unix(l.stamp(rec), clock.Unix())), seeder: uint32(j) < f.nSeed}
				}
			})
			out[ih] = d
		}
		sh.mu.RUnlock()
	}
	return out
}

// setStamps gives every peer of s a last-seen time from stamp.
func setStamps(s *PeerStore, stamp func() uint32) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, sw := range sh.swarms.all() {
			eachFamily(s, sw, func(l *layout, f *family) {
				for j := 0; j < int(f.n); j++ {
					binary.LittleEndian.PutUint16(f.rec(l, j)[l.stampOff:], s.stamps.fromUnix(int64(stamp())))
				}
			})
		}
		sh.mu.Unlock()
	}
}

// randomPeer returns a peer from a few /24s and /64s, so that locality
// puts a swarm's peers in several cells.
func randomPeer(rng *rand.Rand) bittorrent.Peer {
	var id bittorrent.PeerID
	for i := range id {
		id[i] = byte(rng.Uint32())
	}
	port := uint16(1 + rng.IntN(4))
	if rng.IntN(4) == 0 {
		var b [16]byte
		copy(b[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0xa1, 0, byte(rng.IntN(3))})
		b[15] = byte(rng.IntN(256))
		return bittorrent.Peer{ID: id, AddrPort: netip.AddrPortFrom(netip.AddrFrom16(b), port)}
	}
	a := netip.AddrFrom4([4]byte{10, byte(1 + rng.IntN(2)), byte(1 + rng.IntN(3)), byte(rng.IntN(256))})
	return bittorrent.Peer{ID: id, AddrPort: netip.AddrPortFrom(a, port)}
}

// fillRandom puts, graduates and deletes random peers in swarms of
// random sizes, up to a few hundred peers (beyond the index threshold and
// flatMax), and leaves some swarms with downloads and no peers.
func fillRandom(t testing.TB, s *PeerStore, rng *rand.Rand, swarms int) {
	t.Helper()
	for i := 0; i < swarms; i++ {
		var ih bittorrent.InfoHash
		binary.BigEndian.PutUint64(ih[:], rng.Uint64())
		binary.BigEndian.PutUint64(ih[8:], uint64(i))
		size := []int{1, 3, 10, 40, 300}[rng.IntN(5)]
		var added []bittorrent.Peer
		for j := 0; j < size; j++ {
			p := randomPeer(rng)
			var err error
			switch rng.IntN(4) {
			case 0:
				err = s.PutSeeder(ih, p)
			case 1:
				err = s.GraduateLeecher(ih, p)
			default:
				err = s.PutLeecher(ih, p)
			}
			if err != nil {
				t.Fatal(err)
			}
			added = append(added, p)
		}
		if rng.IntN(10) == 0 {
			// Downloads only: every peer leaves.
			_ = s.GraduateLeecher(ih, added[0])
			for _, p := range added {
				_ = s.DeletePeer(ih, p)
			}
		} else if rng.IntN(3) == 0 {
			for _, p := range added[:len(added)/3] {
				_ = s.DeletePeer(ih, p)
			}
		}
	}
}

// newSnapStore builds a store with snapshots at path (when not empty) and
// stops it at the end of the test.
func newSnapStore(t testing.TB, path string, lc locality.Config, flatMax int, opts ...func(*Config)) *PeerStore {
	t.Helper()
	cfg := Config{}.WithDefaults()
	cfg.SnapshotPath = path
	cfg.Locality = lc
	for _, o := range opts {
		o(&cfg)
	}
	s, err := newPeerStore(cfg, flatMax)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.snap != nil {
			s.snap.final.Store(true) // not written again by the cleanup
		}
		_ = s.Stop(context.Background())
	})
	return s
}

// checkServes checks that the restored store answers from what dump
// says: stats, scrape counts, and each peer's role as an announce finds it
// (which goes through the index or cells the restore built).
func checkServes(t *testing.T, s *PeerStore, want map[bittorrent.InfoHash]dumpSwarm) {
	t.Helper()
	var st storage.Stats
	for ih, sw := range want {
		var c [2]storage.Counts
		for ap, p := range sw.peers {
			af := bittorrent.IPv4
			if !ap.Addr().Is4() {
				af = bittorrent.IPv6
			}
			if p.seeder {
				c[af].Seeders++
			} else {
				c[af].Leechers++
			}
			_, _, role, err := s.AnnouncePeers(nil, ih, false, 0, bittorrent.Peer{AddrPort: ap})
			if err != nil {
				t.Fatal(err)
			}
			if wantRole := map[bool]storage.Role{true: storage.Seeder, false: storage.Leecher}[p.seeder]; role != wantRole {
				t.Fatalf("swarm %x peer %s: role %v, want %v", ih[:4], ap, role, wantRole)
			}
		}
		for af := bittorrent.IPv4; af <= bittorrent.IPv6; af++ {
			c[af].Downloads = sw.downloads
			got, _ := s.ScrapeSwarm(ih, af)
			if got != c[af] {
				t.Fatalf("swarm %x %v: scrape %+v, want %+v", ih[:4], af, got, c[af])
			}
			if c[af].Seeders+c[af].Leechers > 0 {
				st.Swarms[af]++
			}
			st.Seeders[af] += uint64(c[af].Seeders)
			st.Leechers[af] += uint64(c[af].Leechers)
		}
	}
	if got, _ := s.Stats(); got != st {
		t.Fatalf("stats %+v, want %+v", got, st)
	}
}

func sameDump(t *testing.T, got, want map[bittorrent.InfoHash]dumpSwarm) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d swarms, want %d", len(got), len(want))
	}
	for ih, w := range want {
		g, ok := got[ih]
		if !ok {
			t.Fatalf("swarm %x missing", ih[:])
		}
		if g.downloads != w.downloads || len(g.peers) != len(w.peers) {
			t.Fatalf("swarm %x: %d downloads and %d peers, want %d and %d", ih[:], g.downloads, len(g.peers), w.downloads, len(w.peers))
		}
		for ap, p := range w.peers {
			if g.peers[ap] != p {
				t.Fatalf("swarm %x peer %s: %+v, want %+v", ih[:], ap, g.peers[ap], p)
			}
		}
	}
}

// TestSnapshotRoundTrip writes random stores (IPv4 and IPv6, seeders and
// leechers, swarms of downloads only, indexed families, locality cells)
// and restores them under the same and other locality settings: every
// peer comes back with its role, ID and last-seen time, every swarm with
// its downloads, and the restored store serves them.
func TestSnapshotRoundTrip(t *testing.T) {
	prefix := locality.Config{Enabled: true}.WithDefaults()
	topo := locality.Config{Enabled: true, TopologyFile: storagetest.TopologyFile(t), MinOutsideShare: 0.1}.WithDefaults()
	wide := locality.Config{Enabled: true, IPv4Prefix: 16, IPv6Prefix: 48, MinOutsideShare: 0.1}
	settings := []struct {
		name    string
		lc      locality.Config
		flatMax int
	}{
		{"off", locality.Config{}, defaultFlatMax},
		{"prefix", prefix, defaultFlatMax},
		{"prefix-all-cells", prefix, 0},
		{"wide-prefix", wide, defaultFlatMax},
		{"topology", topo, 0},
	}
	for si, from := range settings {
		for ti, to := range settings {
			if ti != si && ti != (si+1)%len(settings) && ti != 0 {
				continue // each setting, to itself, the next and off
			}
			t.Run(from.name+"-to-"+to.name, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(si), uint64(ti)))
				path := filepath.Join(t.TempDir(), "swarms.snap")
				a := newSnapStore(t, path, from.lc, from.flatMax)
				fillRandom(t, a, rng, 200)
				now := uint32(clock.Unix())
				setStamps(a, func() uint32 { return now - uint32(rng.IntN(600)) })
				want := dump(a)
				if err := a.snapshot(context.Background()); err != nil {
					t.Fatal(err)
				}
				b := newSnapStore(t, path, to.lc, to.flatMax)
				got := dump(b)
				sameDump(t, got, want)
				checkServes(t, b, want)
				// Grouped by the restoring store's settings.
				for i := range b.shards {
					for ih, sw := range b.shards[i].swarms.all() {
						var fams [2]uint32
						for ap := range want[ih].peers {
							if ap.Addr().Is4() {
								fams[0]++
							} else {
								fams[1]++
							}
						}
						n := max(fams[0], fams[1])
						wantCells := to.lc.Enabled && n > 0 && (to.flatMax == 0 || n > uint32(to.flatMax))
						if (sw.loc != nil) != wantCells {
							t.Fatalf("swarm %x: in cells %v, want %v", ih[:4], sw.loc != nil, wantCells)
						}
						if sw.loc != nil && sw.loc.classifier != b.classifier.Load() {
							t.Fatalf("swarm %x grouped with another classifier", ih[:4])
						}
					}
				}
			})
		}
	}
}

// TestSnapshotExpiry restores a snapshot whose peers were last seen at
// every age around peer_lifetime: the stale ones are dropped, the others
// keep their last-seen times (so they expire as if there had been no
// restart), and swarms keep their downloads even when no peer is left.
func TestSnapshotExpiry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	a := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	rng := rand.New(rand.NewPCG(1, 2))
	fillRandom(t, a, rng, 300)
	lifetime := uint32(a.cfg.PeerLifetime / time.Second)
	now := uint32(clock.Unix())
	setStamps(a, func() uint32 { return now - lifetime - 60 + uint32(rng.IntN(120)) })
	// One swarm whose peers are all stale, with downloads.
	stale := bittorrent.InfoHash{1, 2, 3}
	if err := a.GraduateLeecher(stale, randomPeer(rng)); err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(a.swarmOf(stale).v4.rec(&a.layouts[0], 0)[a.layouts[0].stampOff:], a.stamps.fromUnix(int64(now-lifetime-1)))
	if a.swarmOf(stale).v6 != nil {
		t.Fatal("want an IPv4 peer")
	}
	want := dump(a)
	if err := a.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The restore runs at least a second later in a slow run: peers that
	// crossed the cut meanwhile may go either way; none is asserted on.
	b := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	restoredAt := uint32(clock.Unix())
	got := dump(b)
	kept, dropped := 0, 0
	for ih, w := range want {
		for ap, p := range w.peers {
			age := restoredAt - p.stamp
			_, ok := got[ih].peers[ap]
			switch {
			case p.stamp >= restoredAt-lifetime+2 && !ok:
				t.Fatalf("peer %s seen %ds ago (lifetime %ds) was dropped", ap, age, lifetime)
			case p.stamp < now-lifetime && ok:
				t.Fatalf("peer %s seen %ds ago (lifetime %ds) was kept", ap, age, lifetime)
			case ok && got[ih].peers[ap] != p:
				t.Fatalf("peer %s: %+v, want %+v", ap, got[ih].peers[ap], p)
			case ok:
				kept++
			default:
				dropped++
			}
		}
		if _, ok := got[ih]; w.downloads > 0 && (!ok || got[ih].downloads != w.downloads) {
			t.Fatalf("swarm %x lost its %d downloads", ih[:], w.downloads)
		}
	}
	if kept == 0 || dropped == 0 {
		t.Fatalf("kept %d, dropped %d: want both", kept, dropped)
	}
	if got[stale].downloads != 1 || len(got[stale].peers) != 0 {
		t.Fatalf("stale swarm restored as %+v, want 1 download and no peers", got[stale])
	}
	checkServes(t, b, got)
	// They expire on schedule: a collection at their own cut removes them.
	if err := b.CollectGarbage(time.Unix(int64(restoredAt)+int64(lifetime)+120, 0)); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Stats(); st != (storage.Stats{}) {
		t.Fatalf("after collection: %+v, want no peers", st)
	}
}

// smallSnapshot writes a snapshot of a few swarms of both families in
// several blocks, and returns its bytes.
func smallSnapshot(t testing.TB) []byte {
	t.Helper()
	old := blockTarget
	blockTarget = 100
	defer func() { blockTarget = old }()
	path := filepath.Join(t.TempDir(), "small.snap")
	s := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := 0; i < 4; i++ {
		ih := bittorrent.InfoHash{byte(i)}
		for j := 0; j < 3; j++ {
			p := randomPeer(rng)
			if j == 0 {
				_ = s.GraduateLeecher(ih, p)
			} else {
				_ = s.PutLeecher(ih, p)
			}
		}
	}
	_ = s.PutSeeder(bittorrent.InfoHash{9}, bittorrent.Peer{AddrPort: netip.MustParseAddrPort("[2001:db8::1]:6881")})
	if err := s.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// restoreBytes restores a snapshot held in b into a fresh store, as start
// does, and returns the error and the store's contents.
func restoreBytes(t testing.TB, b []byte) (error, map[bittorrent.InfoHash]dumpSwarm) {
	cfg := Config{}.WithDefaults()
	cfg.ShardCount = 4 // built thousands of times
	// Without the background work New starts: a restore fills the shards
	// before anything else may read them (New restores before it starts
	// collection and reporting), and so does this one.
	s := newShards(cfg, bittorrent.NativePeer)
	now := uint32(clock.Unix())
	_, _, err := s.readSnapshot(bytes.NewReader(b), int64(len(b)), snapshotCut(now, s.cfg.PeerLifetime), now)
	if err != nil {
		s.empty()
	}
	return err, dump(s)
}

// TestSnapshotCorruptionRejected changes every byte of a small snapshot
// of several blocks, in three ways each, and cuts it at every length: no
// such file is loaded, each is rejected with a reason.
func TestSnapshotCorruptionRejected(t *testing.T) {
	good := smallSnapshot(t)
	err, want := restoreBytes(t, good)
	if err != nil {
		t.Fatalf("the intact snapshot: %v", err)
	}
	if len(want) != 5 {
		t.Fatalf("the intact snapshot restored %d swarms, want 5", len(want))
	}
	if blocks := binary.LittleEndian.Uint32(good[48:]); blocks < 3 {
		t.Fatalf("%d blocks, want several", blocks)
	}
	b := make([]byte, len(good))
	for i := range good {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			copy(b, good)
			b[i] ^= x
			err, got := restoreBytes(t, b)
			if err == nil {
				t.Fatalf("byte %d ^ %#x: accepted", i, x)
			}
			if restoreResult(err) == restoreUnreadable {
				t.Fatalf("byte %d ^ %#x: %v, not classified", i, x, err)
			}
			if len(got) != 0 {
				t.Fatalf("byte %d ^ %#x: rejected (%v) but the store holds %d swarms", i, x, err, len(got))
			}
		}
	}
	for n := 0; n < len(good); n++ {
		if err, _ := restoreBytes(t, good[:n]); err == nil {
			t.Fatalf("cut to %d of %d bytes: accepted", n, len(good))
		} else if n >= len(snapshotMagic) && restoreResult(err) != restoreTruncated {
			t.Fatalf("cut to %d of %d bytes: %v, want truncated", n, len(good), err)
		}
	}
	if err, _ := restoreBytes(t, append(good[:len(good):len(good)], 0)); err == nil {
		t.Fatal("a byte appended: accepted")
	}
}

// TestSnapshotRestoreAtStart goes through the driver as the daemon does:
// a good snapshot is restored, a missing one starts empty, and a bad one
// (corrupt, truncated, newer, another store's file) starts empty, is
// counted by its reason and moved aside, never failing the start.
func TestSnapshotRestoreAtStart(t *testing.T) {
	good := smallSnapshot(t)
	newer := bytes.Clone(good)
	binary.LittleEndian.PutUint16(newer[8:], snapshotVersion+1)
	binary.LittleEndian.PutUint32(newer[60:], crc32c(newer[:60]))
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)-5] ^= 0x10
	tests := []struct {
		name   string
		file   []byte // nil: no file
		result string
		swarms int
	}{
		{"good", good, restoreOK, 5},
		{"absent", nil, restoreAbsent, 0},
		{"corrupt", corrupt, restoreCorrupt, 0},
		{"truncated", good[:len(good)-7], restoreTruncated, 0},
		{"newer", newer, restoreNewer, 0},
		{"redis-rdb", []byte("REDIS0011\xfa\tredis-ver\x057.0.15"), restoreOtherKind, 0},
		{"empty-file", []byte{}, restoreTruncated, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "swarms.snap")
			if tc.file != nil {
				if err := os.WriteFile(path, tc.file, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			before := testutil.ToFloat64(snapshotRestores.WithLabelValues(tc.result))
			s, err := storage.New("memory", []byte("snapshot_path: "+path))
			if err != nil {
				t.Fatalf("start refused: %v", err)
			}
			defer func() { _ = s.Stop(context.Background()) }()
			if got := testutil.ToFloat64(snapshotRestores.WithLabelValues(tc.result)) - before; got != 1 {
				t.Errorf("restores{result=%q} grew by %v, want 1", tc.result, got)
			}
			if got := len(dump(s.(*PeerStore))); got != tc.swarms {
				t.Errorf("%d swarms restored, want %d", got, tc.swarms)
			}
			if err := s.Ready(context.Background()); err != nil {
				t.Errorf("not ready: %v", err)
			}
			aside, _ := filepath.Glob(path + ".corrupt-*")
			bad := tc.result != restoreOK && tc.result != restoreAbsent
			if bad != (len(aside) == 1) {
				t.Errorf("moved aside: %v; want a file moved aside: %v", aside, bad)
			}
			if bad {
				if b, _ := os.ReadFile(aside[0]); !bytes.Equal(b, tc.file) {
					t.Error("the file moved aside is not the bad snapshot")
				}
			}
		})
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// TestSnapshotStopWrites checks the final snapshot at Stop, and that the
// periodic snapshot runs without one.
func TestSnapshotStopWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	cfg := Config{}.WithDefaults()
	cfg.SnapshotPath = path
	cfg.SnapshotInterval = time.Second
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ih := bittorrent.InfoHash{42}
	p := bittorrent.Peer{AddrPort: netip.MustParseAddrPort("10.0.0.1:6881")}
	if err := s.GraduateLeecher(ih, p); err != nil {
		t.Fatal(err)
	}
	// Periodic: the file appears without a stop.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no periodic snapshot after 30s with snapshot_interval 1s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	p2 := bittorrent.Peer{AddrPort: netip.MustParseAddrPort("[2001:db8::2]:6881")}
	if err := s.PutLeecher(ih, p2); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	r := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	got := dump(r)[ih]
	if got.downloads != 1 || len(got.peers) != 2 || !got.peers[p.AddrPort].seeder || got.peers[p2.AddrPort].seeder {
		t.Fatalf("restored %+v, want the seeder, the IPv6 leecher put after the last periodic snapshot, and 1 download", got)
	}
	if tmp, _ := filepath.Glob(path + ".tmp-*"); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// TestSnapshotWriteFailure: a write that fails is counted and logged, and
// the previous snapshot stays as it was.
func TestSnapshotWriteFailure(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swarms.snap")
	s := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	_ = s.PutSeeder(bittorrent.InfoHash{1}, bittorrent.Peer{AddrPort: netip.MustParseAddrPort("10.0.0.1:1")})
	if err := s.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	prev, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.PutSeeder(bittorrent.InfoHash{2}, bittorrent.Peer{AddrPort: netip.MustParseAddrPort("10.0.0.2:1")})
	before := testutil.ToFloat64(snapshotWrites.WithLabelValues("error"))

	// Abandoned half-way (a shutdown deadline).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.snapshot(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	// The directory went away.
	s.snap.path = filepath.Join(dir, "gone", "swarms.snap")
	if err := s.snapshot(context.Background()); err == nil {
		t.Fatal("a snapshot into a missing directory succeeded")
	}
	if got := testutil.ToFloat64(snapshotWrites.WithLabelValues("error")) - before; got != 2 {
		t.Fatalf("snapshot_writes_total{result=error} grew by %v, want 2", got)
	}
	if b, _ := os.ReadFile(path); !bytes.Equal(b, prev) {
		t.Fatal("the previous snapshot changed")
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*")); len(tmp) != 0 {
		t.Fatalf("temporary files left: %v", tmp)
	}
}

// TestSnapshotDirRefused: a snapshot_path that cannot be written is
// refused by New and by the checker `chihaya validate` runs.
func TestSnapshotDirRefused(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{filepath.Join(dir, "missing", "s.snap"), "storage.config.snapshot_path: directory " + filepath.Join(dir, "missing") + " is not writable: no such file or directory"},
		{filepath.Join(file, "s.snap"), "storage.config.snapshot_path: directory " + file + " is not writable: not a directory"},
		{dir, "storage.config.snapshot_path: " + dir + " is a directory; name a file in it"},
	}
	for _, tc := range tests {
		y := []byte("snapshot_path: " + tc.path)
		if _, err := storage.New("memory", y); err == nil || err.Error() != tc.want {
			t.Errorf("New: got %v\nwant %s", err, tc.want)
		}
		if err := storage.Check(context.Background(), "memory", y); err == nil || err.Error() != tc.want {
			t.Errorf("Check: got %v\nwant %s", err, tc.want)
		}
	}
	// validate neither reads nor writes the snapshot.
	path := filepath.Join(dir, "s.snap")
	if err := storage.Check(context.Background(), "memory", []byte("snapshot_path: "+path)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("validate left files: %v", entries)
	}
}

// TestSnapshotConcurrent writes snapshots while peers come and go (run
// with -race): each snapshot is a consistent file that restores.
func TestSnapshotConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	s := newSnapStore(t, path, locality.Config{Enabled: true}.WithDefaults(), defaultFlatMax)
	done := make(chan struct{})
	errs := make(chan error, 1)
	go func() {
		defer close(errs)
		rng := rand.New(rand.NewPCG(3, 4))
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
			}
			ih := bittorrent.InfoHash{byte(rng.IntN(20))}
			p := randomPeer(rng)
			var err error
			switch i % 3 {
			case 0:
				err = s.PutLeecher(ih, p)
			case 1:
				err = s.GraduateLeecher(ih, p)
			default:
				err = s.DeletePeer(ih, p)
			}
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		if err := s.snapshot(context.Background()); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err, _ := restoreBytes(t, b); err != nil {
			t.Fatalf("snapshot %d: %v", i, err)
		}
	}
	close(done)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotSize holds the file to its budget: at most 40 bytes an IPv4
// peer at 10 peers a swarm.
func TestSnapshotSize(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarms.snap")
	s := newSnapStore(t, path, locality.Config{}, defaultFlatMax)
	const peers = 100_000
	for i := 0; i < peers; i++ {
		ih := bittorrent.InfoHash{byte(i / 10 >> 16), byte(i / 10 >> 8), byte(i / 10)}
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if err := s.PutLeecher(ih, bittorrent.Peer{AddrPort: netip.AddrPortFrom(a, 6881)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	per := float64(fi.Size()) / peers
	t.Logf("%d bytes, %.1f B/peer", fi.Size(), per)
	if per > 40 {
		t.Fatalf("%.1f bytes a peer, want at most 40", per)
	}
	if g := testutil.ToFloat64(snapshotSize); g != float64(fi.Size()) {
		t.Fatalf("snapshot_size_bytes %v, want %d", g, fi.Size())
	}
}

// TestSnapshotPeerIDs writes a store with and without peer IDs and
// restores it into one with and without: the peers, roles, stamps and
// downloads come back whole, and the IDs when both sides keep them.
func TestSnapshotPeerIDs(t *testing.T) {
	for _, from := range []bool{false, true} {
		for _, to := range []bool{false, true} {
			t.Run(fmt.Sprintf("keep_peer_ids-%v-to-%v", from, to), func(t *testing.T) {
				opt := func(keep bool) func(*Config) { return func(c *Config) { c.KeepPeerIDs = keep } }
				rng := rand.New(rand.NewPCG(3, 4))
				path := filepath.Join(t.TempDir(), "swarms.snap")
				a := newSnapStore(t, path, locality.Config{}, defaultFlatMax, opt(from))
				fillRandom(t, a, rng, 100)
				want := dump(a)
				if err := a.snapshot(context.Background()); err != nil {
					t.Fatal(err)
				}
				if !to {
					for _, sw := range want {
						for ap, p := range sw.peers {
							p.id = bittorrent.PeerID{}
							sw.peers[ap] = p
						}
					}
				}
				b := newSnapStore(t, path, locality.Config{}, defaultFlatMax, opt(to))
				sameDump(t, dump(b), want)
				checkServes(t, b, want)
			})
		}
	}
}

// TestSnapshotVersion1 restores a file written by the format before
// keep_peer_ids (testdata/snapshot/v1.snap: every record with its peer
// ID), into a store with peer IDs and one without.
func TestSnapshotVersion1(t *testing.T) {
	b, err := os.ReadFile("testdata/snapshot/v1.snap")
	if err != nil {
		t.Fatal(err)
	}
	id := func(n int) bittorrent.PeerID {
		var p bittorrent.PeerID
		copy(p[:], "-V10001-")
		binary.BigEndian.PutUint32(p[16:], uint32(n))
		return p
	}
	v4 := func(n int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}), 6881)
	}
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep_peer_ids=%v", keep), func(t *testing.T) {
			cfg := Config{}.WithDefaults()
			cfg.KeepPeerIDs = keep
			s, err := newPeerStore(cfg, defaultFlatMax)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop(context.Background()) })
			// The file's stamps are 1,800,000,001 to 1,800,000,044: read
			// 56 seconds after the last, nothing is expired, nothing is in
			// the future.
			h, rc, err := s.readSnapshot(bytes.NewReader(b), int64(len(b)), 0, 1_800_000_100)
			if err != nil {
				t.Fatal(err)
			}
			if h.version != 1 || rc.swarms != 3 || rc.peers != 44 || rc.expired != 0 {
				t.Fatalf("version %d, restored %+v; want version 1, 3 swarms, 44 peers", h.version, rc)
			}
			got := dump(s)
			wantID := func(n int) bittorrent.PeerID {
				if keep {
					return id(n)
				}
				return bittorrent.PeerID{}
			}
			want := map[bittorrent.InfoHash]map[netip.AddrPort]dumpPeer{
				{0xa}: {
					v4(1): {id: wantID(1), seeder: true}, v4(2): {id: wantID(2), seeder: true}, v4(3): {id: wantID(3)},
					netip.MustParseAddrPort("[2001:db8::4]:6882"): {id: wantID(4)},
				},
				{0xb}: {},
				{0xc}: {},
			}
			for i := range 40 {
				want[bittorrent.InfoHash{0xb}][v4(100+i)] = dumpPeer{id: wantID(100 + i)}
			}
			downloads := map[bittorrent.InfoHash]uint32{{0xa}: 3, {0xb}: 0, {0xc}: 1}
			if len(got) != len(want) {
				t.Fatalf("%d swarms, want %d", len(got), len(want))
			}
			for ih, peers := range want {
				sw := got[ih]
				if sw.downloads != downloads[ih] || len(sw.peers) != len(peers) {
					t.Fatalf("swarm %x: %d downloads, %d peers; want %d and %d", ih[:1], sw.downloads, len(sw.peers), downloads[ih], len(peers))
				}
				for ap, w := range peers {
					p, ok := sw.peers[ap]
					if !ok || p.id != w.id || p.seeder != w.seeder {
						t.Fatalf("swarm %x: peer %v restored as %+v (present %v), want %+v", ih[:1], ap, p, ok, w)
					}
				}
			}
			// dump reads stamps by today's clock; the raw ones must be
			// those of the file.
			for i := range s.shards {
				for _, sw := range s.shards[i].swarms.all() {
					eachFamily(s, sw, func(l *layout, f *family) {
						for j := 0; j < int(f.n); j++ {
							if d := l.stamp(f.rec(l, j)) - s.stamps.fromUnix(1_800_000_001); d >= 44 {
								t.Fatalf("record %d: stamp %d units after the file's first, want below 44", j, d)
							}
						}
					})
				}
			}
		})
	}
}

// TestSnapshotAcrossLifetimeChange restarts with another peer_lifetime,
// and so another stamp unit: each peer keeps its last-seen time to the
// coarser unit, those older than the new lifetime are dropped at restore,
// and a collection removes exactly those last seen before its cutoff,
// never one seen after it (a peer seen at the end of an 8-second unit,
// restored with 1-second units, is not taken as seen at its start).
func TestSnapshotAcrossLifetimeChange(t *testing.T) {
	day := func(c *Config) { c.PeerLifetime, c.GarbageCollectionInterval = 24*time.Hour, 10*time.Minute }
	for _, tc := range []struct {
		name     string
		from, to func(*Config)
		ages     []int64 // seconds before now, one peer each
		kept     int     // after the restore
	}{
		{"31m to a day", func(*Config) {}, day, []int64{10, 20 * 60, 30 * 60}, 3},
		{"a day to 31m", day, func(*Config) {}, []int64{10, 20 * 60, 5 * 3600, 20 * 3600}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "swarms.snap")
			a := newSnapStore(t, path, locality.Config{}, defaultFlatMax, tc.from)
			ih := bittorrent.InfoHash{9}
			// Last-seen times at the last second of an 8-second unit.
			now := wallUnix()
			seen := make([]int64, len(tc.ages))
			for i, ageSec := range tc.ages {
				seen[i] = now - ageSec - 16
				seen[i] -= (seen[i] + steadyOffset() + 1) % 8
				p := storagetest.Peer4(i)
				if err := a.PutLeecher(ih, p); err != nil {
					t.Fatal(err)
				}
				age(t, a, ih, p, time.Unix(seen[i], 0))
			}
			if err := a.snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			b := newSnapStore(t, path, locality.Config{}, defaultFlatMax, tc.to)
			unit := max(int64(1)<<a.stamps.shift, int64(1)<<b.stamps.shift)
			got := dump(b)[ih].peers
			if len(got) != tc.kept {
				t.Fatalf("restored %d peers, want %d", len(got), tc.kept)
			}
			for i := range tc.kept {
				p, ok := got[storagetest.Peer4(i).AddrPort]
				if !ok {
					t.Fatalf("peer last seen at %d not restored", seen[i])
				}
				if d := int64(p.stamp) - seen[i]; d <= -unit || d >= unit {
					t.Errorf("peer last seen at %d restored as seen at %d (units of %ds)", seen[i], p.stamp, unit)
				}
			}
			// Just after the second peer was last seen, then just before.
			for _, c := range []struct {
				cut  int64
				left int
			}{{seen[1] - 1, 2}, {seen[1] + 8, 1}} {
				if err := b.CollectGarbage(time.Unix(c.cut, 0)); err != nil {
					t.Fatal(err)
				}
				if n := len(dump(b)[ih].peers); n != c.left {
					t.Fatalf("a collection of the peers last seen before %d (%ds after the second peer) left %d, want %d", c.cut, c.cut-seen[1], n, c.left)
				}
			}
		})
	}
}
