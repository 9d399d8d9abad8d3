package frontendtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
	"github.com/chihaya/chihaya/internal/metrictest"
)

// Info hashes for which Logic misbehaves on purpose.
var (
	// PanicHash makes HandleAnnounce and HandleScrape panic.
	PanicHash = bittorrent.InfoHash{'p', 'a', 'n', 'i', 'c'}
	// InternalHash makes HandleAnnounce return ErrInternal.
	InternalHash = bittorrent.InfoHash{'i', 'n', 't', 'e', 'r', 'n', 'a', 'l'}
	// RefusedHash makes HandleAnnounce return ErrRefused.
	RefusedHash = bittorrent.InfoHash{'r', 'e', 'f', 'u', 's', 'e', 'd'}
)

// ErrRefused is the client error Logic refuses RefusedHash with.
const ErrRefused = bittorrent.ClientError("unapproved torrent")

// ErrInternal is the internal error Logic fails InternalHash with. Its
// text names an address, which a frontend must never show a client.
var ErrInternal = errors.New("frontendtest: database on fire at 10.1.2.3")

// Interval is the announce interval Logic answers with.
const Interval = 30 * time.Minute

// Logic is a small in-memory frontend.TrackerLogic, for a frontend's own
// tests: one list of peers per info hash, updated in AfterAnnounce as the
// real logic does. Its counts include the announcer as it will be once
// stored, downloads are counted on "completed", and a peer is never given
// itself nor a peer of the other address family, a seeder only leechers,
// and a stopping peer none. It records what it was
// given, so that tests can check what the frontend parsed.
type Logic struct {
	mu        sync.Mutex
	swarms    map[bittorrent.InfoHash]*swarm
	fail      error
	last      Request
	afters    int
	afterGate chan struct{}
}

type swarm struct {
	peers     []testPeer
	downloads uint32
}

type testPeer struct {
	peer   bittorrent.Peer
	seeder bool
}

// Request is what Logic recorded of the last announce.
type Request struct {
	// Announce is the request, without its Params.
	Announce bittorrent.AnnounceRequest
	// Path and Query are the raw path and query it came with, Passkey its
	// "passkey" route parameter and JWT its "jwt" parameter.
	Path, Query, Passkey, JWT string
}

var _ frontend.TrackerLogic = (*Logic)(nil)

// NewLogic returns an empty Logic.
func NewLogic() *Logic {
	return &Logic{swarms: map[bittorrent.InfoHash]*swarm{}}
}

// Fail makes every Handle* call return err, until Fail(nil).
func (l *Logic) Fail(err error) {
	l.mu.Lock()
	l.fail = err
	l.mu.Unlock()
}

// Last returns what Logic recorded of the last announce.
func (l *Logic) Last() Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// HandleAnnounce answers from the swarm as it stands.
func (l *Logic) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error {
	switch req.InfoHash {
	case PanicHash:
		panic("frontendtest: asked to panic")
	case InternalHash:
		return ErrInternal
	case RefusedHash:
		return ErrRefused
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last = Request{Announce: *req}
	l.last.Announce.Params = nil
	if p := req.Params; p != nil {
		l.last.Path, l.last.Query = p.RawPath(), p.RawQuery()
		l.last.Passkey, _ = p.RouteParam("passkey")
		l.last.JWT, _ = p.String("jwt")
	}
	if l.fail != nil {
		return l.fail
	}
	resp.Interval, resp.MinInterval = Interval, Interval/2
	if req.Event != bittorrent.Stopped {
		if req.Seeder() {
			resp.Complete++
		} else {
			resp.Incomplete++
		}
	}
	sw := l.swarms[req.InfoHash]
	if sw == nil {
		return nil
	}
	resp.Downloaded = sw.downloads
	if req.Event == bittorrent.Completed {
		resp.Downloaded++
	}
	for _, p := range sw.peers {
		if p.peer.AddressFamily() != req.Peer.AddressFamily() || p.peer.AddrPort == req.Peer.AddrPort {
			continue
		}
		if p.seeder {
			resp.Complete++
		} else {
			resp.Incomplete++
		}
		// As the real logic: a seeder is given leechers only, a stopping
		// peer nobody.
		if uint32(len(resp.Peers)) < req.NumWant && req.Event != bittorrent.Stopped && !(req.Seeder() && p.seeder) {
			resp.Peers = append(resp.Peers, p.peer)
		}
	}
	return nil
}

// AfterAnnounce stores the announcer, or removes it when it stopped.
func (l *Logic) AfterAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) {
	l.after()
	l.mu.Lock()
	defer l.mu.Unlock()
	sw := l.swarms[req.InfoHash]
	if sw == nil {
		sw = &swarm{}
		l.swarms[req.InfoHash] = sw
	}
	for i, p := range sw.peers {
		if p.peer.AddrPort == req.Peer.AddrPort {
			sw.peers = append(sw.peers[:i], sw.peers[i+1:]...)
			break
		}
	}
	if req.Event != bittorrent.Stopped {
		sw.peers = append(sw.peers, testPeer{peer: req.Peer, seeder: req.Seeder()})
	}
	if req.Event == bittorrent.Completed {
		sw.downloads++
	}
}

// HandleScrape counts each swarm's peers of the request's address family.
func (l *Logic) HandleScrape(_ context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	for _, ih := range req.InfoHashes {
		if ih == PanicHash {
			panic("frontendtest: asked to panic")
		}
		s := bittorrent.Scrape{InfoHash: ih}
		if sw := l.swarms[ih]; sw != nil {
			s.Downloaded = sw.downloads
			for _, p := range sw.peers {
				if p.peer.AddressFamily() != req.AddressFamily {
					continue
				}
				if p.seeder {
					s.Complete++
				} else {
					s.Incomplete++
				}
			}
		}
		resp.Files = append(resp.Files, s)
	}
	return nil
}

// AfterScrape only counts the call.
func (l *Logic) AfterScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) {
	l.after()
}

func (l *Logic) after() {
	l.mu.Lock()
	gate := l.afterGate
	l.mu.Unlock()
	if gate != nil {
		<-gate
	}
	l.mu.Lock()
	l.afters++
	l.mu.Unlock()
}

// HoldAfters makes every After* call wait until release is called, for
// tests of what happens while the After step runs.
func (l *Logic) HoldAfters() (release func()) {
	gate := make(chan struct{})
	l.mu.Lock()
	l.afterGate = gate
	l.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { close(gate) }) }
}

// Afters returns how many After* calls have finished.
func (l *Logic) Afters() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.afters
}

// WaitAfters returns the number of finished After* calls once it reaches
// want, or after a few seconds: the After step runs once the client has
// its reply, so a client that has read the reply may still be ahead of it.
func (l *Logic) WaitAfters(t testing.TB, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := l.Afters()
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// ErrorsCounted reads chihaya_frontend_errors_total for the named
// frontend ("http", "udp", "websocket") and reason from the default
// registry, where the frontends register their metrics.
func ErrorsCounted(frontendName, reason string) float64 {
	v, _ := metrictest.Sum("chihaya_frontend_errors_total", map[string]string{"frontend": frontendName, "reason": reason})
	return v
}
