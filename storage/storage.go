// Package storage defines the PeerStore, the registry of its drivers, and
// (in storagetest) the conformance suite every driver passes.
package storage

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/registry"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// The defaults of the keys every driver has, upstream Chihaya's:
// gc_interval, peer_lifetime and prometheus_reporting_interval.
const (
	DefaultGarbageCollectionInterval   = 3 * time.Minute
	DefaultPeerLifetime                = 31 * time.Minute
	DefaultPrometheusReportingInterval = time.Second
)

// Role is where a peer stands in a swarm.
type Role uint8

// The roles of a peer.
const (
	Absent Role = iota
	Seeder
	Leecher
)

// Counts are the counts of one swarm for one address family, plus the
// torrent's completed downloads (which are not kept per family).
type Counts struct {
	Seeders   uint32
	Leechers  uint32
	Downloads uint32
}

// Add returns the sum of c and d: the counts of a swarm's two peer kinds
// together.
func (c Counts) Add(d Counts) Counts {
	return Counts{Seeders: c.Seeders + d.Seeders, Leechers: c.Leechers + d.Leechers, Downloads: c.Downloads + d.Downloads}
}

// Stats are a store's totals, by address family (indexed by
// bittorrent.AddressFamily), for the gauges.
type Stats struct {
	Swarms   [2]uint64
	Seeders  [2]uint64
	Leechers [2]uint64
}

// PeerStore keeps the swarms.
//
// The contract every driver keeps (storagetest checks it):
//
//   - A swarm is keyed by info hash; within it, peers of the two address
//     families are kept apart, and a peer is identified by its address and
//     port. Storing a peer again under the same address and port replaces
//     its peer ID and refreshes its last-seen time.
//   - A peer is a seeder or a leecher, never both: PutSeeder removes the
//     peer from the leechers, PutLeecher from the seeders.
//   - GraduateLeecher makes the peer a seeder (whether or not it was a
//     leecher) and counts one completed download for the torrent.
//   - DeletePeer removes the peer from the swarm; a peer that is not there
//     is not an error.
//   - AnnouncePeers appends to dst at most numWant peers of the announcer's
//     address family, never the announcer itself (matched by address and
//     port): for a seeder only leechers; for a leecher seeders first, then
//     leechers (with locality on, seeders first within each part of the
//     answer: the announcer's own group, the outside share, the rest). It
//     also returns the swarm's counts for that family, and the announcer's
//     current role, so that the caller can report counts that include the
//     announce it is answering. An unknown swarm gives no peers, zero
//     counts and no error.
//   - ScrapeSwarm returns the counts of a swarm for one family; an unknown
//     swarm gives zeros. ScrapeSwarms does the same for several swarms at
//     once, writing dst[i] for ihs[i] (dst has len(ihs) elements), so that
//     a driver can answer a whole scrape in one round trip.
//   - CollectGarbage removes every peer last seen before cutoff, and any
//     swarm left with neither peers nor downloads. Drivers also run it
//     periodically on their own, without holding a lock for long.
//   - Stores that implement KindKeeper keep peers of the two kinds
//     (bittorrent.PeerKind) apart, as if in two swarms that share their
//     counts: a native peer and a WebSocket peer with the same address
//     and port are two peers; AnnouncePeers hands out only peers of the
//     announcer's kind, each with its Kind set, and reports the role the
//     announcer has among its own kind; the counts AnnouncePeers and the
//     scrapes return add up both kinds (downloads included).
//   - Every method is safe for concurrent use. After Stop returns, no
//     background work remains.
//
// Errors returned are internal errors (a client sees a generic failure).
type PeerStore interface {
	PutSeeder(ih bittorrent.InfoHash, p bittorrent.Peer) error
	PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error
	GraduateLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error
	DeletePeer(ih bittorrent.InfoHash, p bittorrent.Peer) error

	AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, Counts, Role, error)
	ScrapeSwarm(ih bittorrent.InfoHash, af bittorrent.AddressFamily) (Counts, error)
	ScrapeSwarms(dst []Counts, ihs []bittorrent.InfoHash, af bittorrent.AddressFamily) error

	CollectGarbage(cutoff time.Time) error
	Stats() (Stats, error)

	// Ready reports whether the store can serve requests now (for /readyz).
	Ready(ctx context.Context) error
	// Stop ends the store's background work and releases its resources.
	Stop(ctx context.Context) error
}

// KindKeeper is implemented by the stores that keep WebSocket peers apart
// from native ones, as the PeerStore contract says. The WebSocket frontend
// only runs on such a store: on another, its peers would be handed to
// BitTorrent clients as addresses to connect to.
type KindKeeper interface {
	KeepsPeerKinds()
}

// RoundTripSharer is implemented by stores whose operations wait for a
// round trip that operations in progress together share (the Redis
// store's group commit): a caller holding several requests at once should
// make their calls concurrently. See frontend.RoundTripSharer.
type RoundTripSharer interface {
	SharesRoundTrips() bool
}

// Relayer is implemented by stores that several tracker instances share
// and that carry messages between them for the WebSocket frontend: see
// frontend.Relay, whose methods Relay has. Relay starts the relay on its
// first call and returns the same one after; Stop stops it.
type Relayer interface {
	Relay() Relay
}

// Relay is frontend.Relay, seen from the store's side.
type Relay interface {
	Instance() uint16
	Publish(to uint16, msg []byte)
	Receive(fn func(msg []byte))
}

// Reloader is implemented by stores that have files of their own (the
// locality topology) to read again when the daemon reloads on SIGUSR1 or
// SIGHUP. A reload that fails keeps what is running.
type Reloader interface {
	Reload() error
}

// Driver is what a driver registers: how its `storage.config` mapping is
// decoded, and how a store is built from it. Every driver decodes the same
// way (yamlconf.Load): strictly, over Start, then Defaults, then the
// config's Validate, whose errors name keys relative to storage.config
// ("shard_count"); the registry puts "storage.config" in front of them and
// names the driver, and the daemon adds the line.
type Driver[C yamlconf.Validator] struct {
	// Name is the `storage.name` operators write in YAML.
	Name string
	// Start is what keys left out keep: usually the defaults, so that a
	// key written as 0 reaches Validate instead of being replaced.
	Start C
	// Defaults, if set, fills keys whose default depends on others.
	Defaults func(C) C
	// New constructs the store. Its errors that are *yamlconf.Error (a
	// file a key names is missing) are placed like Validate's; others (a
	// connection refused) name the driver themselves ("storage/redis: ").
	New func(C) (PeerStore, error)
	// Check, if set, checks what New would beyond Validate without
	// constructing a store that runs: `chihaya validate` must connect to
	// nothing. Without it, Check builds the store and stops it at once.
	Check func(C) error
}

// driver is a registered Driver, its config type erased.
type driver struct {
	build func(configYAML []byte) (PeerStore, error)
	check func(configYAML []byte) error // nil: build and stop
}

var drivers = registry.New[driver]("storage driver")

// Register makes a driver available under its name. Registering a name
// twice panics.
func Register[C yamlconf.Validator](d Driver[C]) {
	if d.New == nil {
		panic("storage: Register " + d.Name + " without New")
	}
	r := driver{build: func(b []byte) (PeerStore, error) {
		cfg, err := d.Load(b)
		if err != nil {
			return nil, err
		}
		s, err := d.New(cfg)
		if yamlconf.IsConfig(err) {
			err = place(d.Name, err)
		}
		return s, err
	}}
	if d.Check != nil {
		r.check = func(b []byte) error {
			cfg, err := d.Load(b)
			if err != nil {
				return err
			}
			if err := d.Check(cfg); yamlconf.IsConfig(err) {
				return place(d.Name, err)
			} else {
				return err
			}
		}
	}
	drivers.Register(d.Name, r)
}

// Load decodes the YAML of the `storage.config` mapping as the registered
// driver does, with the same errors.
func (d Driver[C]) Load(configYAML []byte) (C, error) {
	cfg, err := yamlconf.Load(configYAML, d.Start, d.Defaults)
	return cfg, place(d.Name, err)
}

// place puts a driver's configuration error where the driver's keys are.
func place(name string, err error) error {
	return yamlconf.Under(yamlconf.Owned(err, name), "storage", "config")
}

// DriverNames lists the registered drivers, sorted.
func DriverNames() []string { return drivers.Names() }

// ErrUnknownDriver is wrapped by New when no driver has the given name.
var ErrUnknownDriver = errors.New("unknown storage driver")

// lookup finds the named driver; an unknown name is an error about
// storage.name that lists the known ones.
func lookup(name string) (driver, error) {
	d, ok := drivers.Lookup(name)
	if !ok {
		return d, yamlconf.Errorf("storage.name", "%w %q (known: %s)", ErrUnknownDriver, name, strings.Join(DriverNames(), ", "))
	}
	return d, nil
}

// Check checks the configuration of the named driver with the same errors
// New gives: with the driver's Check, or else by building the store and
// stopping it at once.
func Check(ctx context.Context, name string, configYAML []byte) error {
	d, err := lookup(name)
	if err != nil {
		return err
	}
	if d.check != nil {
		return d.check(configYAML)
	}
	s, err := d.build(configYAML)
	if err != nil {
		return err
	}
	return s.Stop(ctx)
}

// New builds the store of the named driver from the YAML of its
// `storage.config` mapping. Configuration errors are *yamlconf.Error,
// keyed from the top of the configuration ("storage.config.shard_count").
func New(name string, configYAML []byte) (PeerStore, error) {
	d, err := lookup(name)
	if err != nil {
		return nil, err
	}
	return d.build(configYAML)
}
