//go:build unix

package udp

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"syscall"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
	"github.com/chihaya/chihaya/storage/storagetest"
)

// twoSteps hides the memory store's Announce and AnnounceCompact from the
// logic, which then answers with AnnouncePeers and applies the update
// after the reply (the way before either existed).
type twoSteps struct{ storage.PeerStore }

// BenchmarkHandleStore is the daemon's work per UDP datagram outside the
// kernel: the handler, the logic and the memory store, filled as in the
// UDP comparison (scripts/bench-compare.sh: 10,000 swarms of 200 peers,
// 70 % seeders), each announce a random stored peer of a random swarm
// asking for 50 peers, each scrape 10 random swarms. It reports the
// process's CPU time per datagram (cpu-ns/op), which moves less than the
// wall-clock time when other processes share the machine. store=two-steps
// hides the store's one-step announce from the logic.
func BenchmarkHandleStore(b *testing.B) {
	if testing.Short() {
		b.Skip("fills 2,000,000 peers")
	}
	const swarms, perSwarm = 10_000, 200
	s, err := memory.New(memory.Config{}.WithDefaults())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Stop(context.Background()) })
	peer := func(j int) bittorrent.Peer { return storagetest.Peer4(j) }
	seeder := func(j int) bool { return (j/swarms)%10 < 7 }
	for j := range swarms * perSwarm {
		if seeder(j) {
			err = s.PutSeeder(storagetest.InfoHash(j%swarms), peer(j))
		} else {
			err = s.PutLeecher(storagetest.InfoHash(j%swarms), peer(j))
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	for _, st := range []struct {
		name  string
		store storage.PeerStore
	}{{"store=two-steps", twoSteps{s}}, {"store=one-step", s}} {
		logic := middleware.NewLogic(middleware.Config{}.WithDefaults(), st.store, nil, nil)
		b.Cleanup(func() { _ = logic.Stop(context.Background()) })
		h := newTestHandler(b, logic, Config{})
		r := rand.New(rand.NewPCG(1, 2))
		const n = 4096
		packets, srcs := make([][]byte, n), make([]netip.AddrPort, n)
		for i := range n {
			j := r.IntN(swarms * perSwarm)
			p := peer(j)
			srcs[i] = p.AddrPort
			left := int64(1000)
			if seeder(j) {
				left = 0
			}
			packets[i] = encodeAnnounce(h.ids.Generate(p.AddrPort.Addr()), uint32(i), announceFields{infoHash: storagetest.InfoHash(j % swarms), left: left, numWant: 50, port: p.AddrPort.Port()})
		}
		scrapes := make([][]byte, n)
		for i := range n {
			ihs := make([]bittorrent.InfoHash, 10)
			for k := range ihs {
				ihs[k] = storagetest.InfoHash(r.IntN(swarms))
			}
			scrapes[i] = encodeScrape(h.ids.Generate(srcs[i].Addr()), uint32(i), ihs...)
		}
		for _, bc := range []struct {
			name    string
			packets [][]byte
		}{{"announce", packets}, {"scrape", scrapes}} {
			b.Run(st.name+"/"+bc.name, func(b *testing.B) {
				buf := make([]byte, 0, 2048)
				b.ReportAllocs()
				cpu0 := cpuNanos()
				i := 0
				for b.Loop() {
					if buf = h.handle(bc.packets[i], srcs[i], buf[:0]); buf == nil {
						b.Fatal("dropped")
					}
					i = (i + 1) % n
				}
				b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuNanos returns the process's user and system CPU time in nanoseconds.
func cpuNanos() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
