package middleware_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/metrictest"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
)

// recordHook is a test hook: it records the order it ran in and refuses
// announces for one info hash.
type recordHook struct {
	name    string
	trace   *[]string
	deny    bittorrent.InfoHash
	stopped atomic.Bool
}

const errDenied = bittorrent.ClientError("unapproved torrent")

func (h *recordHook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	*h.trace = append(*h.trace, h.name)
	if req.InfoHash == h.deny {
		return errDenied
	}
	return nil
}

func (h *recordHook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	*h.trace = append(*h.trace, h.name)
	return nil
}

func (h *recordHook) Stop() { h.stopped.Store(true) }

type denyConfig struct {
	X string `yaml:"x"`
}

func (denyConfig) Validate() error { return nil }

func init() {
	middleware.Register(middleware.Plugin[denyConfig]{
		Name: "test deny",
		New: func(c denyConfig) (middleware.Hook, error) {
			if c.X == "bad" {
				return nil, errors.New("deny: bad option")
			}
			return &recordHook{name: "test deny", trace: new([]string), deny: bittorrent.InfoHash{0xde}}, nil
		},
	})
}

func newStore(t *testing.T) storage.PeerStore {
	t.Helper()
	s, err := memory.New(memory.Config{KeepPeerIDs: true}.WithDefaults()) // tests compare peers whole
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func newLogic(t *testing.T, store storage.PeerStore, pre ...middleware.Hook) *middleware.Logic {
	t.Helper()
	l := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, pre, nil)
	t.Cleanup(func() { _ = l.Stop(context.Background()) })
	return l
}

func peer(last byte, port uint16) bittorrent.Peer {
	return bittorrent.Peer{ID: bittorrent.PeerID{last}, AddrPort: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, last}), port)}
}

func announce(ih bittorrent.InfoHash, p bittorrent.Peer, left uint64, ev bittorrent.Event) *bittorrent.AnnounceRequest {
	return &bittorrent.AnnounceRequest{InfoHash: ih, Peer: p, Left: left, Event: ev, NumWant: 50, Params: bittorrent.ParamsNone}
}

// do announces and applies the swarm update before returning, as a client
// that waits for its next announce would see it.
func do(t *testing.T, l *middleware.Logic, store storage.PeerStore, req *bittorrent.AnnounceRequest) *bittorrent.AnnounceResponse {
	t.Helper()
	resp := &bittorrent.AnnounceResponse{}
	if err := l.HandleAnnounce(context.Background(), req, resp); err != nil {
		t.Fatalf("announce: %v", err)
	}
	l.AfterAnnounce(context.Background(), req, resp)
	waitRole(t, store, req)
	return resp
}

// waitRole waits until the store reflects req's update.
func waitRole(t *testing.T, store storage.PeerStore, req *bittorrent.AnnounceRequest) {
	t.Helper()
	want := storage.Leecher
	switch {
	case req.Event == bittorrent.Stopped:
		want = storage.Absent
	case req.Left == 0 || req.Event == bittorrent.Completed:
		want = storage.Seeder
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, _, role, err := store.AnnouncePeers(nil, req.InfoHash, false, 0, req.Peer)
		if err != nil {
			t.Fatal(err)
		}
		if role == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("store never showed the announcer as %v (got %v)", want, role)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCountsIncludeTheAnnouncer(t *testing.T) {
	store := newStore(t)
	l := newLogic(t, store)
	ih := bittorrent.InfoHash{1}
	a, b := peer(1, 1001), peer(2, 1002)

	type want struct{ complete, incomplete, downloaded uint32 }
	steps := []struct {
		name string
		req  *bittorrent.AnnounceRequest
		want want
	}{
		{"first leecher counts itself", announce(ih, a, 10, bittorrent.Started), want{0, 1, 0}},
		{"re-announce does not count twice", announce(ih, a, 5, bittorrent.None), want{0, 1, 0}},
		{"second peer starts as seeder", announce(ih, b, 0, bittorrent.Started), want{1, 1, 0}},
		{"leecher completes", announce(ih, a, 0, bittorrent.Completed), want{2, 0, 1}},
		{"seeder stops and is not counted", announce(ih, b, 0, bittorrent.Stopped), want{1, 0, 1}},
		{"last seeder stops", announce(ih, a, 0, bittorrent.Stopped), want{0, 0, 1}},
	}
	for _, s := range steps {
		resp := do(t, l, store, s.req)
		got := want{resp.Complete, resp.Incomplete, resp.Downloaded}
		if got != s.want {
			t.Fatalf("%s: complete/incomplete/downloaded = %v, want %v", s.name, got, s.want)
		}
		if resp.Interval != middleware.DefaultAnnounceInterval || resp.MinInterval != middleware.DefaultMinAnnounceInterval {
			t.Fatalf("%s: intervals %v/%v", s.name, resp.Interval, resp.MinInterval)
		}
	}
}

func TestPeersNeverIncludeTheAnnouncer(t *testing.T) {
	store := newStore(t)
	l := newLogic(t, store)
	ih := bittorrent.InfoHash{2}
	seeder, leecher := peer(1, 2001), peer(2, 2002)
	do(t, l, store, announce(ih, seeder, 0, bittorrent.Started))
	resp := do(t, l, store, announce(ih, leecher, 100, bittorrent.Started))
	if len(resp.Peers) != 1 || resp.Peers[0].AddrPort != seeder.AddrPort || resp.Peers[0].ID != seeder.ID {
		t.Fatalf("leecher got %v, want only the seeder", resp.Peers)
	}
	resp = do(t, l, store, announce(ih, seeder, 0, bittorrent.None))
	if len(resp.Peers) != 1 || resp.Peers[0].AddrPort != leecher.AddrPort {
		t.Fatalf("seeder got %v, want only the leecher", resp.Peers)
	}
	resp = do(t, l, store, announce(ih, leecher, 100, bittorrent.Stopped))
	if len(resp.Peers) != 0 {
		t.Fatalf("a stopping peer got %d peers, want none", len(resp.Peers))
	}
}

func TestScrapeReportsEveryHashInOrder(t *testing.T) {
	store := newStore(t)
	l := newLogic(t, store)
	known, unknown := bittorrent.InfoHash{3}, bittorrent.InfoHash{4}
	do(t, l, store, announce(known, peer(1, 3001), 0, bittorrent.Started))
	do(t, l, store, announce(known, peer(2, 3002), 7, bittorrent.Started))

	req := &bittorrent.ScrapeRequest{AddressFamily: bittorrent.IPv4, InfoHashes: []bittorrent.InfoHash{unknown, known}, Params: bittorrent.ParamsNone}
	resp := &bittorrent.ScrapeResponse{}
	if err := l.HandleScrape(context.Background(), req, resp); err != nil {
		t.Fatal(err)
	}
	want := []bittorrent.Scrape{{InfoHash: unknown}, {InfoHash: known, Complete: 1, Incomplete: 1}}
	if len(resp.Files) != 2 || resp.Files[0] != want[0] || resp.Files[1] != want[1] {
		t.Fatalf("scrape = %+v, want %+v", resp.Files, want)
	}
	req.AddressFamily = bittorrent.IPv6
	if err := l.HandleScrape(context.Background(), req, resp); err != nil {
		t.Fatal(err)
	}
	if resp.Files[1].Complete != 0 || resp.Files[1].Incomplete != 0 {
		t.Fatalf("IPv6 scrape saw IPv4 peers: %+v", resp.Files[1])
	}
}

func TestPrehooksRunInOrderAndARefusalStopsTheChain(t *testing.T) {
	store := newStore(t)
	var trace []string
	deny := bittorrent.InfoHash{0xde}
	first := &recordHook{name: "first", trace: &trace}
	second := &recordHook{name: "second", trace: &trace, deny: deny}
	third := &recordHook{name: "third", trace: &trace}
	l := newLogic(t, store, first, second, third)

	if err := l.HandleAnnounce(context.Background(), announce(bittorrent.InfoHash{5}, peer(1, 1), 1, bittorrent.None), &bittorrent.AnnounceResponse{}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(trace, ","); got != "first,second,third" {
		t.Fatalf("hooks ran as %s", got)
	}
	trace = trace[:0]
	req := announce(deny, peer(1, 1), 1, bittorrent.Started)
	err := l.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
	if !errors.Is(err, errDenied) {
		t.Fatalf("err = %v, want %v", err, errDenied)
	}
	if got := strings.Join(trace, ","); got != "first,second" {
		t.Fatalf("after a refusal hooks ran as %s", got)
	}
	// A refused announce never reaches the store.
	if c, _ := store.ScrapeSwarm(deny, bittorrent.IPv4); c != (storage.Counts{}) {
		t.Fatalf("refused announce changed the swarm: %+v", c)
	}

	if err := l.ReloadHooks(nil, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if !first.stopped.Load() || !third.stopped.Load() {
		t.Fatal("replaced hooks were not stopped")
	}
	if err := l.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{}); err != nil {
		t.Fatalf("after a reload to no hooks the old chain still refused: %v", err)
	}
}

func TestNewHooksFromConfig(t *testing.T) {
	hooks, err := middleware.NewHooks([]middleware.HookConfig{{Name: "test deny"}})
	if err != nil || len(hooks) != 1 {
		t.Fatalf("NewHooks = %v, %v", hooks, err)
	}
	before := refusals(t, "test deny")
	err = hooks[0].HandleAnnounce(context.Background(), announce(bittorrent.InfoHash{0xde}, peer(1, 1), 1, bittorrent.None), &bittorrent.AnnounceResponse{})
	if !errors.Is(err, errDenied) {
		t.Fatalf("configured hook did not refuse: %v", err)
	}
	if got := refusals(t, "test deny") - before; got != 1 {
		t.Fatalf("refusal counted %v times, want 1", got)
	}

	for _, tc := range []struct {
		name string
		cfgs []middleware.HookConfig
		want string
	}{
		{"unknown name lists the known", []middleware.HookConfig{{Name: "test deny"}, {Name: "nope"}}, `[1].name: unknown hook "nope" (known: `},
		{"missing name", []middleware.HookConfig{{}}, "[0].name: must be set"},
		{"constructor error", []middleware.HookConfig{{Name: "test deny", Options: map[string]interface{}{"x": "bad"}}}, "[0].options (test deny): deny: bad option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := middleware.NewHooks(tc.cfgs)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("registering a hook name twice did not panic")
		}
	}()
	middleware.Register(middleware.Plugin[denyConfig]{
		Name: "test deny",
		New:  func(denyConfig) (middleware.Hook, error) { return nil, nil },
	})
}

func TestStopAppliesQueuedUpdates(t *testing.T) {
	store := newStore(t)
	l := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, nil, nil)
	ih := bittorrent.InfoHash{6}
	const n = 200
	for i := 0; i < n; i++ {
		req := announce(ih, peer(byte(i), uint16(4000+i)), 1, bittorrent.Started)
		resp := &bittorrent.AnnounceResponse{}
		if err := l.HandleAnnounce(context.Background(), req, resp); err != nil {
			t.Fatal(err)
		}
		l.AfterAnnounce(context.Background(), req, resp)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := store.ScrapeSwarm(ih, bittorrent.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leechers != n {
		t.Fatalf("after Stop the store holds %d leechers, want %d", c.Leechers, n)
	}
}

func TestFastStoreIsUpdatedBeforeAfterAnnounceReturns(t *testing.T) {
	// With the memory store the update is applied inline: once
	// AfterAnnounce returns, the next announce of another peer sees it.
	store := newStore(t)
	l := newLogic(t, store)
	ih := bittorrent.InfoHash{8}
	for i := 0; i < 100; i++ {
		req := announce(ih, peer(byte(i), 6881), 1, bittorrent.Started)
		resp := &bittorrent.AnnounceResponse{}
		if err := l.HandleAnnounce(context.Background(), req, resp); err != nil {
			t.Fatal(err)
		}
		l.AfterAnnounce(context.Background(), req, resp)
		c, err := store.ScrapeSwarm(ih, bittorrent.IPv4)
		if err != nil {
			t.Fatal(err)
		}
		if c.Leechers != uint32(i+1) {
			t.Fatalf("after %d announces AfterAnnounce returned with %d leechers stored", i+1, c.Leechers)
		}
	}
}

// slowStore is a store whose leecher writes take delay, like a round trip
// to a remote store. The first write for gated blocks until gate is
// closed, and closes entered when it starts.
type slowStore struct {
	storage.PeerStore
	delay   time.Duration
	gated   bittorrent.InfoHash
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
}

func (s *slowStore) PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	if ih == s.gated {
		s.once.Do(func() {
			close(s.entered)
			<-s.gate
		})
	} else {
		time.Sleep(s.delay)
	}
	return s.PeerStore.PutLeecher(ih, p)
}

func TestSlowStoreIsUpdatedByWorkersAndOverflowIsCounted(t *testing.T) {
	mem := newStore(t)
	store := &slowStore{PeerStore: mem, delay: 200 * time.Microsecond, gated: bittorrent.InfoHash{0x99}, entered: make(chan struct{}), gate: make(chan struct{})}
	l := middleware.NewLogic(middleware.Config{}.WithDefaults(), store, nil, nil)
	t.Cleanup(func() {
		select {
		case <-store.gate:
		default:
			close(store.gate)
		}
		_ = l.Stop(context.Background())
	})
	after := func(ih bittorrent.InfoHash, p bittorrent.Peer) {
		req := announce(ih, p, 1, bittorrent.Started)
		l.AfterAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
	}

	// Enough slow writes for the sampled average to cross the threshold
	// (a few hundred would do; the sampling is random).
	const warm = 3000
	for i := 0; i < warm; i++ {
		after(bittorrent.InfoHash{1, byte(i >> 8), byte(i)}, peer(1, 6881))
	}

	// The next write blocks in the store: AfterAnnounce must return
	// anyway, the update being queued for a worker.
	returned := make(chan struct{})
	go func() {
		after(store.gated, peer(1, 1))
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		close(store.gate)
		t.Fatal("AfterAnnounce waited for a slow store's write")
	}
	select {
	case <-store.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued update never reached the store")
	}

	// Its worker is now stuck: its queue fills, and what does not fit is
	// dropped and counted.
	before := metrictest.Value(t, "chihaya_middleware_swarm_updates_dropped_total", nil)
	const extra = 10
	for i := 0; i < middleware.UpdateQueueSize+extra; i++ {
		after(store.gated, peer(2, uint16(1000+i)))
	}
	if got := metrictest.Value(t, "chihaya_middleware_swarm_updates_dropped_total", nil) - before; got != extra {
		t.Errorf("%v updates counted as dropped, want %d", got, extra)
	}

	close(store.gate)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := mem.ScrapeSwarm(store.gated, bittorrent.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if c.Leechers != 1+middleware.UpdateQueueSize {
		t.Errorf("after Stop the gated swarm holds %d leechers, want the %d updates queued", c.Leechers, 1+middleware.UpdateQueueSize)
	}
	for i := 0; i < warm; i += 500 {
		c, err := mem.ScrapeSwarm(bittorrent.InfoHash{1, byte(i >> 8), byte(i)}, bittorrent.IPv4)
		if err != nil {
			t.Fatal(err)
		}
		if c.Leechers != 1 {
			t.Errorf("warm-up swarm %d holds %d leechers, want 1", i, c.Leechers)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  middleware.Config
		want string
	}{
		{"negative interval", middleware.Config{AnnounceInterval: -time.Second, MinAnnounceInterval: time.Second}, "announce_interval: must be > 0, got -1s"},
		{"min above interval", middleware.Config{AnnounceInterval: time.Minute, MinAnnounceInterval: time.Hour}, "min_announce_interval: must not exceed announce_interval (1m0s), got 1h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.WithDefaults().Validate()
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
	if err := (middleware.Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

// refusals reads chihaya_middleware_hook_refusals_total{hook=name,action="announce"}
// from the default registry, as Prometheus would scrape it.
func refusals(t *testing.T, name string) float64 {
	t.Helper()
	return metrictest.Value(t, "chihaya_middleware_hook_refusals_total", map[string]string{"hook": name, "action": "announce"})
}

// TestStorageErrorCountedOnce: a failed store call is counted once in
// chihaya_storage_errors_total, by the driver, not again by the logic.
func TestStorageErrorCountedOnce(t *testing.T) {
	l := newLogic(t, newStore(t))
	counter := func() float64 { return metrictest.Value(t, "chihaya_storage_errors_total", nil) }
	before := counter()
	// A peer without an address: the memory driver refuses it.
	req := announce(bittorrent.InfoHash{0xe1}, bittorrent.Peer{}, 1, bittorrent.None)
	if err := l.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{}); err == nil {
		t.Fatal("an announce the store refused succeeded")
	}
	if got := counter() - before; got != 1 {
		t.Fatalf("chihaya_storage_errors_total grew by %v, want 1", got)
	}
}

// announcerStore is a store that answers an announce and applies its
// update in one call (storage.Announcer, as the Redis store does), and
// counts the updates the logic applies apart.
type announcerStore struct {
	storage.PeerStore
	announces, apart atomic.Int64
}

func (s *announcerStore) Announce(dst []bittorrent.Peer, ih bittorrent.InfoHash, u storage.Update, numWant int, p bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	s.announces.Add(1)
	dst, c, role, err := s.PeerStore.AnnouncePeers(dst, ih, u.Seeder(), numWant, p)
	if err != nil {
		return dst, c, role, err
	}
	switch u {
	case storage.UpdateDelete:
		err = s.PeerStore.DeletePeer(ih, p)
	case storage.UpdateGraduate:
		err = s.PeerStore.GraduateLeecher(ih, p)
	case storage.UpdateSeeder:
		err = s.PeerStore.PutSeeder(ih, p)
	default:
		err = s.PeerStore.PutLeecher(ih, p)
	}
	return dst, c, role, err
}

func (s *announcerStore) PutSeeder(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	s.apart.Add(1)
	return s.PeerStore.PutSeeder(ih, p)
}

func (s *announcerStore) PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	s.apart.Add(1)
	return s.PeerStore.PutLeecher(ih, p)
}

func (s *announcerStore) GraduateLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	s.apart.Add(1)
	return s.PeerStore.GraduateLeecher(ih, p)
}

func (s *announcerStore) DeletePeer(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	s.apart.Add(1)
	return s.PeerStore.DeletePeer(ih, p)
}

// TestAnnouncerStoreUpdatesWithTheAnswer: with a store that is a
// storage.Announcer, each announce is one call that answers and updates,
// the logic applies nothing after the reply, and the counts a client sees
// are the same as with a store updated after the reply.
func TestAnnouncerStoreUpdatesWithTheAnswer(t *testing.T) {
	store := &announcerStore{PeerStore: newStore(t)}
	l := newLogic(t, store)
	ih := bittorrent.InfoHash{0x13}
	seeder := announce(ih, peer(1, 6881), 0, bittorrent.Started)
	steps := []struct {
		name                  string
		req                   *bittorrent.AnnounceRequest
		complete, incomplete  uint32
		downloaded, peersSeen int
	}{
		{"a seeder starts", seeder, 1, 0, 0, 0},
		{"a leecher starts", announce(ih, peer(2, 6881), 10, bittorrent.Started), 1, 1, 0, 1},
		{"the leecher completes", announce(ih, peer(2, 6881), 0, bittorrent.Completed), 2, 0, 1, 0},
		{"the first seeder stops", announce(ih, peer(1, 6881), 0, bittorrent.Stopped), 1, 0, 1, 0},
	}
	for i, st := range steps {
		resp := &bittorrent.AnnounceResponse{}
		if err := l.HandleAnnounce(context.Background(), st.req, resp); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		l.AfterAnnounce(context.Background(), st.req, resp)
		if resp.Complete != st.complete || resp.Incomplete != st.incomplete || int(resp.Downloaded) != st.downloaded || len(resp.Peers) != st.peersSeen {
			t.Errorf("%s: complete %d incomplete %d downloaded %d peers %d, want %d %d %d %d", st.name,
				resp.Complete, resp.Incomplete, resp.Downloaded, len(resp.Peers), st.complete, st.incomplete, st.downloaded, st.peersSeen)
		}
		if n := store.announces.Load(); n != int64(i+1) {
			t.Errorf("%s: %d calls of Announce, want %d", st.name, n, i+1)
		}
	}
	if n := store.apart.Load(); n != 0 {
		t.Errorf("the logic applied %d updates apart from Announce, want none", n)
	}
}

// sharingStore is a memory store that says its operations share round
// trips, as the Redis store does.
type sharingStore struct{ storage.PeerStore }

func (sharingStore) SharesRoundTrips() bool { return true }

// TestSharesRoundTrips: the logic tells frontends whether its store's
// requests share round trips (the UDP frontend then hands it a batch's
// announces concurrently), and only when the store says so.
func TestSharesRoundTrips(t *testing.T) {
	if newLogic(t, newStore(t)).SharesRoundTrips() {
		t.Error("with the memory store: SharesRoundTrips() = true, want false")
	}
	if !newLogic(t, sharingStore{newStore(t)}).SharesRoundTrips() {
		t.Error("with a store whose round trips are shared: SharesRoundTrips() = false, want true")
	}
}

// TestScrapeDoesNotAllocate holds the scrape path at 0 allocations: a UDP
// scrape of 10 hashes through the logic and the memory store.
func TestScrapeDoesNotAllocate(t *testing.T) {
	store := newStore(t)
	l := newLogic(t, store)
	req := &bittorrent.ScrapeRequest{AddressFamily: bittorrent.IPv4, Params: bittorrent.ParamsNone}
	for i := range 10 {
		ih := bittorrent.InfoHash{byte(i)}
		req.InfoHashes = append(req.InfoHashes, ih)
		do(t, l, store, announce(ih, peer(byte(i+1), 3000), 0, bittorrent.Started))
	}
	resp := &bittorrent.ScrapeResponse{Files: make([]bittorrent.Scrape, 0, 10)}
	allocs := testing.AllocsPerRun(100, func() {
		if err := l.HandleScrape(context.Background(), req, resp); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("a scrape of 10 hashes allocates %.1f times, want 0", allocs)
	}
	if len(resp.Files) != 10 || resp.Files[9].Complete != 1 {
		t.Fatalf("scrape = %+v, want 10 swarms of one seeder each", resp.Files)
	}
}

// TestAnnounceAppliedBeforeTheReply: a client sends its next announce
// once it has the reply to the last one, perhaps on another connection
// that another goroutine serves at once. With the memory store that
// announce must find the last one applied, whether or not the after-step
// ran yet: a completed that overtook its own started left the peer a
// leecher with its snatch counted, until its next announce.
func TestAnnounceAppliedBeforeTheReply(t *testing.T) {
	store := newStore(t)
	l := newLogic(t, store)
	ih, p := bittorrent.InfoHash{0x0d, 0xe7}, peer(7, 6881)
	for _, req := range []*bittorrent.AnnounceRequest{announce(ih, p, 100, bittorrent.Started), announce(ih, p, 0, bittorrent.Completed)} {
		// The reply only: the after-step has not run.
		if err := l.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := store.ScrapeSwarm(ih, bittorrent.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if c != (storage.Counts{Seeders: 1, Downloads: 1}) {
		t.Fatalf("after started then completed, before either's after-step: %+v, want 1 seeder, 0 leechers, 1 download", c)
	}
}
