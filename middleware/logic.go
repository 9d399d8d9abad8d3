package middleware

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/pkg/stopgroup"
	"github.com/chihaya/chihaya/storage"
)

// UpdateQueueSize is the number of swarm updates each worker holds before
// further updates are dropped (and counted). A full queue means the store
// cannot keep up at all; then shedding writes keeps replies flowing, and
// the dropped peers come back on their next announce.
const UpdateQueueSize = 8192

// Where a swarm update is applied. An in-memory store applies one in a few
// hundred nanoseconds: less than a channel send and a worker's wake-up
// cost, so the update is applied inline, in the goroutine that has just
// answered the request. A store that is slow to write (a round trip to
// Redis) would hold up that goroutine, which is the one reading the next
// requests; then updates go to the workers instead. The choice follows a
// moving average of sampled update durations, with hysteresis so that a
// single slow sample (a GC pause) does not flip it back and forth.
const (
	// updateSampleEvery: one update in this many is timed.
	updateSampleEvery = 64
	// slowUpdate and fastUpdate are the average durations above which
	// updates move to the workers, and below which they come back inline.
	slowUpdate = 20 * time.Microsecond
	fastUpdate = 5 * time.Microsecond
)

var (
	hookRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "middleware",
		Name:      "hook_refusals_total",
		Help:      "Requests a hook refused, by hook, action and reason.",
	}, []string{"hook", "action", "reason"})

	updatesDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "middleware",
		Name:      "swarm_updates_dropped_total",
		Help:      "Swarm updates dropped because the update queue was full.",
	})

	updatesFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "middleware",
		Name:      "swarm_updates_failed_total",
		Help:      "Swarm updates the store failed to apply.",
	})
)

func init() {
	prometheus.MustRegister(hookRefusals, updatesDropped, updatesFailed)
}

// chain is one generation of configured hooks; a reload swaps it whole.
type chain struct {
	pre, post []Hook
}

// update is a swarm update, copied out of the request so that the frontend
// may reuse the request as soon as AfterAnnounce returns.
type update struct {
	ih     bittorrent.InfoHash
	peer   bittorrent.Peer
	event  bittorrent.Event
	seeder bool
}

// Logic is the TrackerLogic: the prehooks in order, then the response step
// that reads the store; after the reply, the swarm update and the
// posthooks. The update is applied inline while the store is fast, and
// otherwise by workers, one per queue, each queue owning a fixed set of
// swarms so that a peer's updates are applied in the order they arrived.
// (Only when the mode changes can a peer's update queued just before
// overtake an inline one just after; the peer's next announce repairs it.)
type Logic struct {
	cfg   Config
	store storage.PeerStore
	// announcer is store when it answers and updates in one step (one
	// round trip to Redis); the update then happens before the reply.
	announcer storage.Announcer
	hooks     atomic.Pointer[chain]
	// addrs is store when it answers with less for a reply that needs
	// only the peers' addresses (compact, UDP, no_peer_id).
	addrs storage.AddrAnnouncer
	// compact is store when it can write a reply's peers in their compact
	// form, for the frontends that take them so.
	compact storage.CompactAnnouncer

	// queued is set while updates go to the workers; updateNanos is the
	// moving average of sampled update durations that decides it.
	queued      atomic.Bool
	updateNanos atomic.Int64

	seed   maphash.Seed
	queues []chan update
	// workers are the swarm-update goroutines, one per queue.
	workers *stopgroup.Group
}

var _ frontend.TrackerLogic = (*Logic)(nil)

// NewLogic builds the logic and starts its swarm-update workers. cfg must
// be validated.
func NewLogic(cfg Config, store storage.PeerStore, preHooks, postHooks []Hook) *Logic {
	l := &Logic{
		cfg:     cfg,
		store:   store,
		seed:    maphash.MakeSeed(),
		queues:  make([]chan update, runtime.GOMAXPROCS(0)),
		workers: stopgroup.New(),
	}
	l.announcer, _ = store.(storage.Announcer)
	l.addrs, _ = store.(storage.AddrAnnouncer)
	l.compact, _ = store.(storage.CompactAnnouncer)
	l.hooks.Store(&chain{pre: preHooks, post: postHooks})
	for i := range l.queues {
		l.queues[i] = make(chan update, UpdateQueueSize)
		q := l.queues[i]
		l.workers.Go(func(done <-chan struct{}) { l.work(q, done) })
	}
	return l
}

// HandleAnnounce runs the prehooks, then fills the peers and counts.
func (l *Logic) HandleAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	resp.Interval = l.cfg.AnnounceInterval
	resp.MinInterval = l.cfg.MinAnnounceInterval
	for _, h := range l.hooks.Load().pre {
		if err := h.HandleAnnounce(ctx, req, resp); err != nil {
			return err
		}
	}
	return l.respondAnnounce(req, resp)
}

// announcerIsSeeder reports the role the announcer will have once its
// announce is applied: a `completed` event graduates it whatever its left.
func announcerIsSeeder(req *bittorrent.AnnounceRequest) bool {
	return req.Seeder() || req.Event == bittorrent.Completed
}

// respondAnnounce fills the peers and the counts. The counts include this
// very announce, which the store only sees after the reply: the store tells
// where the announcer stands now, and the counts are adjusted to where it
// will stand.
func (l *Logic) respondAnnounce(req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	seeder := announcerIsSeeder(req)
	numWant := int(req.NumWant)
	if req.Event == bittorrent.Stopped {
		numWant = 0
	}
	var peers []bittorrent.Peer
	var counts storage.Counts
	var role storage.Role
	var err error
	switch {
	case l.compact != nil && resp.CompactPeers != nil:
		peers, resp.CompactPeers, counts, role, err = l.compact.AnnounceCompact(resp.Peers[:0], resp.CompactPeers[:0], req.InfoHash, storeUpdate(req), numWant, req.Peer)
	case l.addrs != nil && (req.Compact || req.NoPeerID):
		peers, counts, role, err = l.addrs.AnnounceAddrs(resp.Peers[:0], req.InfoHash, storeUpdate(req), numWant, req.Peer, !req.NoDownloads)
	case l.announcer != nil:
		peers, counts, role, err = l.announcer.Announce(resp.Peers[:0], req.InfoHash, storeUpdate(req), numWant, req.Peer)
	default:
		peers, counts, role, err = l.store.AnnouncePeers(resp.Peers[:0], req.InfoHash, seeder, numWant, req.Peer)
	}
	if err != nil {
		return fmt.Errorf("middleware: announce peers: %w", err)
	}
	resp.Peers = peers

	switch role {
	case storage.Seeder:
		counts.Seeders = decr(counts.Seeders)
	case storage.Leecher:
		counts.Leechers = decr(counts.Leechers)
	}
	if req.Event != bittorrent.Stopped {
		if seeder {
			counts.Seeders++
		} else {
			counts.Leechers++
		}
	}
	if req.Event == bittorrent.Completed {
		counts.Downloads++
	}
	resp.Complete, resp.Incomplete, resp.Downloaded = counts.Seeders, counts.Leechers, counts.Downloads
	return nil
}

// storeUpdate is the swarm update req asks for, as apply makes it.
func storeUpdate(req *bittorrent.AnnounceRequest) storage.Update {
	switch {
	case req.Event == bittorrent.Stopped:
		return storage.UpdateDelete
	case req.Event == bittorrent.Completed:
		return storage.UpdateGraduate
	case announcerIsSeeder(req):
		return storage.UpdateSeeder
	}
	return storage.UpdateLeecher
}

func decr(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return n - 1
}

// AfterAnnounce applies or queues the swarm update (unless the store
// applied it with the answer) and runs the posthooks. Posthooks run in the
// caller's goroutine, since req and resp are only valid until this returns.
func (l *Logic) AfterAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) {
	if l.announcer == nil {
		l.applyUpdate(req)
	}
	for _, h := range l.hooks.Load().post {
		if err := h.HandleAnnounce(ctx, req, resp); err != nil {
			logrus.WithError(err).Debug("middleware: posthook failed on announce")
		}
	}
}

// applyUpdate applies or queues the swarm update of req.
func (l *Logic) applyUpdate(req *bittorrent.AnnounceRequest) {
	u := update{ih: req.InfoHash, peer: req.Peer, event: req.Event, seeder: announcerIsSeeder(req)}
	if l.queued.Load() {
		q := l.queues[maphash.Comparable(l.seed, req.InfoHash)%uint64(len(l.queues))]
		select {
		case q <- u:
		default:
			updatesDropped.Inc()
		}
	} else {
		l.applySampled(u)
	}
}

// HandleScrape runs the prehooks, then fills the counts of every requested
// swarm, in request order.
func (l *Logic) HandleScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) error {
	for _, h := range l.hooks.Load().pre {
		if err := h.HandleScrape(ctx, req, resp); err != nil {
			return err
		}
	}
	// The counts land in a pooled buffer big enough for any UDP scrape (74
	// hashes fit a datagram); only a bigger HTTP scrape allocates. (An
	// array on the stack escapes through the store's interface: that was
	// an 888-byte allocation a scrape.)
	var counts []storage.Counts
	buf := scrapeCounts.Get().(*[maxPooledScrape]storage.Counts)
	if len(req.InfoHashes) <= len(buf) {
		counts = buf[:len(req.InfoHashes)]
		clear(counts)
	} else {
		counts = make([]storage.Counts, len(req.InfoHashes))
	}
	err := l.store.ScrapeSwarms(counts, req.InfoHashes, req.AddressFamily)
	if err == nil {
		resp.Files = resp.Files[:0]
		for i, ih := range req.InfoHashes {
			c := counts[i]
			resp.Files = append(resp.Files, bittorrent.Scrape{InfoHash: ih, Complete: c.Seeders, Incomplete: c.Leechers, Downloaded: c.Downloads})
		}
	}
	scrapeCounts.Put(buf)
	if err != nil {
		return fmt.Errorf("middleware: scrape: %w", err)
	}
	return nil
}

// maxPooledScrape is the most hashes a scrape reads into a pooled buffer:
// as many as fit a UDP datagram.
const maxPooledScrape = 74

// scrapeCounts holds *[maxPooledScrape]storage.Counts for HandleScrape.
var scrapeCounts = sync.Pool{New: func() any { return new([maxPooledScrape]storage.Counts) }}

// AfterScrape runs the posthooks.
func (l *Logic) AfterScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) {
	for _, h := range l.hooks.Load().post {
		if err := h.HandleScrape(ctx, req, resp); err != nil {
			logrus.WithError(err).Debug("middleware: posthook failed on scrape")
		}
	}
}

func (l *Logic) work(q chan update, done <-chan struct{}) {
	for {
		select {
		case u := <-q:
			l.applySampled(u)
		case <-done:
			// Drain what was queued before the stop, then leave.
			for {
				select {
				case u := <-q:
					l.apply(u)
				default:
					return
				}
			}
		}
	}
}

// applySampled applies u, and times one update in updateSampleEvery to
// decide where the following ones are applied. The workers time theirs
// too, so that updates come back inline once the store is fast again.
func (l *Logic) applySampled(u update) {
	if rand.Uint32()%updateSampleEvery != 0 {
		l.apply(u)
		return
	}
	start := time.Now()
	l.apply(u)
	d := int64(time.Since(start))
	avg := l.updateNanos.Load()
	avg += (d - avg) / 8
	l.updateNanos.Store(avg)
	switch {
	case avg > int64(slowUpdate):
		if !l.queued.Load() {
			l.queued.Store(true)
		}
	case avg < int64(fastUpdate):
		if l.queued.Load() {
			l.queued.Store(false)
		}
	}
}

func (l *Logic) apply(u update) {
	var err error
	switch {
	case u.event == bittorrent.Stopped:
		err = l.store.DeletePeer(u.ih, u.peer)
	case u.event == bittorrent.Completed:
		err = l.store.GraduateLeecher(u.ih, u.peer)
	case u.seeder:
		err = l.store.PutSeeder(u.ih, u.peer)
	default:
		err = l.store.PutLeecher(u.ih, u.peer)
	}
	if err != nil {
		updatesFailed.Inc()
		logrus.WithError(err).WithField("info_hash", u.ih.String()).Debug("middleware: swarm update failed")
	}
}

// Stop applies the updates already queued, stops the workers and the hooks.
// Updates queued after Stop are not applied; the frontends are stopped
// first, so none should come.
func (l *Logic) Stop(ctx context.Context) error {
	c := l.hooks.Load()
	defer StopHooks(c.post)
	defer StopHooks(c.pre)
	if err := l.workers.Stop(ctx); err != nil {
		return fmt.Errorf("middleware: stop: %w", err)
	}
	return nil
}

// namedHook carries the name a hook was configured under, so that its
// refusals are counted by hook.
type namedHook struct {
	name string
	Hook
}

func (h namedHook) HandleAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	err := h.Hook.HandleAnnounce(ctx, req, resp)
	if err != nil {
		h.refused(err, "announce")
	}
	return err
}

func (h namedHook) HandleScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) error {
	err := h.Hook.HandleScrape(ctx, req, resp)
	if err != nil {
		h.refused(err, "scrape")
	}
	return err
}

// expectRefusals creates the refusal series of the hook registered as
// name, at 0.
func expectRefusals(name string) {
	p, ok := hooks.Lookup(name)
	if !ok {
		return
	}
	for action, reasons := range p.reasons {
		for _, r := range reasons {
			hookRefusals.WithLabelValues(name, action, r)
		}
	}
}

func (h namedHook) refused(err error, action string) {
	var r Refusal
	var ce bittorrent.ClientError
	switch {
	case errors.As(err, &r):
		hookRefusals.WithLabelValues(h.name, action, r.Reason).Inc()
	case errors.As(err, &ce):
		hookRefusals.WithLabelValues(h.name, action, "refused").Inc()
	default:
		hookRefusals.WithLabelValues(h.name, action, "internal").Inc()
	}
}

// Stop forwards to the hook when it runs background work.
func (h namedHook) Stop() {
	if s, ok := h.Hook.(Stopper); ok {
		s.Stop()
	}
}

// Reload forwards to the hook when it reads files.
func (h namedHook) Reload() error {
	if r, ok := h.Hook.(Reloader); ok {
		return r.Reload()
	}
	return nil
}

var _ frontend.RelayProvider = (*Logic)(nil)

// Relay returns the store's relay between the instances that share it
// (storage.Relayer), started on the first call, or nil when the store is
// this process's alone.
func (l *Logic) Relay() frontend.Relay {
	if r, ok := l.store.(storage.Relayer); ok {
		if rl := r.Relay(); rl != nil {
			return rl
		}
	}
	return nil
}

var _ frontend.RoundTripSharer = (*Logic)(nil)

// SharesRoundTrips reports whether the store's operations in progress
// together share their round trips (storage.RoundTripSharer).
func (l *Logic) SharesRoundTrips() bool {
	r, ok := l.store.(storage.RoundTripSharer)
	return ok && r.SharesRoundTrips()
}

var _ frontend.Leaver = (*Logic)(nil)

// Leave removes a peer whose connection closed (a WebSocket peer leaving
// every swarm it announced in) as a `stopped` would, without the
// prehooks, and runs the posthooks. Unlike AfterAnnounce it applies the
// update with a store that answers and updates in one step too, since no
// HandleAnnounce came before.
func (l *Logic) Leave(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) {
	l.applyUpdate(req)
	for _, h := range l.hooks.Load().post {
		if err := h.HandleAnnounce(ctx, req, resp); err != nil {
			logrus.WithError(err).Debug("middleware: posthook failed on announce")
		}
	}
}
