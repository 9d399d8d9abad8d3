package main

import (
	"crypto/sha1"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
)

// Event is an announce event as BEP 15 numbers it; HTTP spells the same
// events as words.
type Event uint8

// The announce events, with BEP 15's numbers.
const (
	EventNone      Event = 0
	EventCompleted Event = 1
	EventStarted   Event = 2
	EventStopped   Event = 3
)

// String returns the event as HTTP's `event` parameter spells it; a regular
// announce has none.
func (e Event) String() string {
	switch e {
	case EventCompleted:
		return "completed"
	case EventStarted:
		return "started"
	case EventStopped:
		return "stopped"
	}
	return ""
}

// EventMix gives the share of each event, in parts of the sum of the four.
type EventMix struct {
	Started, Regular, Completed, Stopped uint32
}

// DefaultEventMix is roughly what a public tracker sees: most announces are
// the periodic regular ones; starts and stops come in pairs, and a few
// downloads complete.
var DefaultEventMix = EventMix{Started: 10, Regular: 80, Completed: 5, Stopped: 5}

// WorkloadConfig describes the swarms a run announces to. Everything the
// generator sends follows from it and the seed, so that two runs (and two
// trackers) see the same requests.
type WorkloadConfig struct {
	Seed     uint64
	Torrents int
	// Peers is the size of each torrent's pool of peers.
	Peers int
	// Zipf is the exponent of the popularity of torrents: torrent of rank
	// k (from 1) is picked with weight 1/k^Zipf. 0 is uniform.
	Zipf float64
	// SeederShare is the share of a pool's peers that are seeders.
	SeederShare float64
	Events      EventMix
	NumWant     int
}

// Validate reports the first setting a workload cannot be built from, by
// its flag name.
func (c WorkloadConfig) Validate() error {
	switch {
	case c.Torrents <= 0:
		return fmt.Errorf("--torrents: must be > 0, got %d", c.Torrents)
	case c.Peers <= 0 || c.Peers > maxPeersPerTorrent:
		return fmt.Errorf("--peers: must be in 1..%d (one port each), got %d", maxPeersPerTorrent, c.Peers)
	case c.Zipf < 0 || math.IsNaN(c.Zipf):
		return fmt.Errorf("--zipf: must be >= 0, got %v", c.Zipf)
	case c.SeederShare < 0 || c.SeederShare > 1 || math.IsNaN(c.SeederShare):
		return fmt.Errorf("--seeders: must be in 0..1, got %v", c.SeederShare)
	case c.Events.Started+c.Events.Regular+c.Events.Completed+c.Events.Stopped == 0:
		return fmt.Errorf("--events: at least one share must be > 0")
	case c.NumWant < -1:
		return fmt.Errorf("--numwant: must be >= -1, got %d", c.NumWant)
	}
	return nil
}

// firstPort is the port of peer 0 of every pool. All generated peers share
// the generator's address, so a peer is told apart by its port (and its
// peer ID); ports below 1024 are avoided because some trackers refuse them.
const firstPort = 1024

// maxPeersPerTorrent keeps every port of a pool a valid port.
const maxPeersPerTorrent = 65535 - firstPort + 1

// Workload is the immutable part of a workload, shared by every worker:
// the info hashes and the popularity distribution. Draws need a Picker.
type Workload struct {
	cfg    WorkloadConfig
	hashes [][20]byte
	// cdf[k] is the probability of picking a torrent of rank <= k.
	cdf []float64
	// seederBelow compares with a peer's 32-bit mix to decide whether it
	// is a seeder, so the decision needs no floating point.
	seederBelow uint64
	// event thresholds on a draw in [0, eventTotal).
	evStarted, evRegular, evCompleted, eventTotal uint32
}

// NewWorkload builds the hashes and the popularity table for cfg.
func NewWorkload(cfg WorkloadConfig) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Workload{cfg: cfg, hashes: workloadHashes(cfg.Seed, cfg.Torrents)}
	w.cdf = make([]float64, cfg.Torrents)
	var sum float64
	for k := range w.cdf {
		sum += math.Pow(float64(k+1), -cfg.Zipf)
		w.cdf[k] = sum
	}
	for k := range w.cdf {
		w.cdf[k] /= sum
	}
	w.cdf[len(w.cdf)-1] = 1
	w.seederBelow = uint64(cfg.SeederShare * (1 << 32))
	e := cfg.Events
	w.evStarted = e.Started
	w.evRegular = w.evStarted + e.Regular
	w.evCompleted = w.evRegular + e.Completed
	w.eventTotal = w.evCompleted + e.Stopped
	return w, nil
}

// workloadHashes derives n info hashes from seed: SHA-1 of the seed and the
// torrent's number, so they look like real hashes and are the same for
// every run with this seed (opentracker's whitelist is built from them).
func workloadHashes(seed uint64, n int) [][20]byte {
	hs := make([][20]byte, n)
	var in [24]byte
	copy(in[:8], "chihaya!")
	binary.BigEndian.PutUint64(in[8:], seed)
	for i := range hs {
		binary.BigEndian.PutUint64(in[16:], uint64(i))
		hs[i] = sha1.Sum(in[:])
	}
	return hs
}

// Config returns the configuration the workload was built from.
func (w *Workload) Config() WorkloadConfig { return w.cfg }

// InfoHash returns torrent t's info hash; t is also its popularity rank.
func (w *Workload) InfoHash(t int) *[20]byte { return &w.hashes[t] }

// mix64 is SplitMix64's finaliser: a cheap, well-spread hash of x.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (w *Workload) peerMix(t, p int) uint64 {
	return mix64(w.cfg.Seed ^ mix64(uint64(t)<<32|uint64(p)))
}

// Seeder reports whether peer p of torrent t is a seeder. It is a property
// of the peer, so that a tracker sees each peer consistently.
func (w *Workload) Seeder(t, p int) bool {
	return w.peerMix(t, p)>>32 < w.seederBelow
}

// Port returns the port peer p of any torrent announces.
func (w *Workload) Port(p int) uint16 { return uint16(firstPort + p) }

// PeerID writes peer p of torrent t's ID into dst: an Azureus-style prefix
// (client "CB", version 0001) and 12 bytes derived from t, p and the seed.
func (w *Workload) PeerID(dst *[20]byte, t, p int) {
	copy(dst[:8], "-CB0001-")
	m := w.peerMix(t, p)
	binary.BigEndian.PutUint64(dst[8:16], m)
	binary.BigEndian.PutUint32(dst[16:20], uint32(mix64(m)))
}

// Left returns what peer p of torrent t still has to download: 0 for a
// seeder, some stable amount for a leecher.
func (w *Workload) Left(t, p int) uint64 {
	if w.Seeder(t, p) {
		return 0
	}
	return (1 + w.peerMix(t, p)%4096) << 16
}

// Announce is one generated announce.
type Announce struct {
	Torrent, Peer int
	Event         Event
	Left          uint64
	NumWant       int32
}

// Picker draws announces and scrapes from a Workload. Each worker has its
// own, seeded from the workload's seed and the worker's number, so that a
// run is reproducible without the workers sharing a lock.
type Picker struct {
	w   *Workload
	rng *rand.Rand
}

// NewPicker returns worker's picker.
func (w *Workload) NewPicker(worker int) *Picker {
	return &Picker{w: w, rng: rand.New(rand.NewPCG(w.cfg.Seed, 0x62656e6368^uint64(worker)))}
}

// Torrent draws a torrent by popularity.
func (pk *Picker) Torrent() int {
	u := pk.rng.Float64()
	cdf := pk.w.cdf
	lo, hi := 0, len(cdf)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cdf[mid] <= u {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Next draws one announce: a torrent by popularity, a peer of its pool,
// and an event. A completed announce reports nothing left, since that is
// what completing means.
func (pk *Picker) Next(a *Announce) {
	w := pk.w
	a.Torrent = pk.Torrent()
	a.Peer = int(pk.rng.Uint32N(uint32(w.cfg.Peers)))
	d := pk.rng.Uint32N(w.eventTotal)
	switch {
	case d < w.evStarted:
		a.Event = EventStarted
	case d < w.evRegular:
		a.Event = EventNone
	case d < w.evCompleted:
		a.Event = EventCompleted
	default:
		a.Event = EventStopped
	}
	a.Left = w.Left(a.Torrent, a.Peer)
	if a.Event == EventCompleted {
		a.Left = 0
	}
	a.NumWant = int32(w.cfg.NumWant)
}

// FillAnnounce is the announce that puts peer p of torrent t in its swarm:
// a start with the peer's own seeder status.
func (w *Workload) FillAnnounce(a *Announce, t, p int, numWant int32) {
	a.Torrent, a.Peer, a.Event = t, p, EventStarted
	a.Left = w.Left(t, p)
	a.NumWant = numWant
}
