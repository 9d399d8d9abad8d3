package operator

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Failed sign-ins and API calls with a wrong token are slowed down per
// client address: after the n-th failure in a row, the address must wait
// min(2^(n-1) seconds, maxBackoff) before its next attempt is even
// checked. Waiting is the client's: no request is held open.
const (
	maxBackoff = 5 * time.Minute
	// maxFailing bounds the addresses remembered (about 64 bytes each).
	maxFailing = 1 << 16
)

type failure struct {
	n    int
	next time.Time
}

type limiter struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[netip.Addr]failure
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, m: map[netip.Addr]failure{}}
}

// wait returns how long a must wait before its next attempt, 0 if it may
// try now.
func (l *limiter) wait(a netip.Addr) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.m[a]
	if !ok {
		return 0
	}
	return max(0, f.next.Sub(l.now()))
}

// failed records a failed attempt from a.
func (l *limiter) failed(a netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.m) >= maxFailing {
		for k, f := range l.m {
			if now.Sub(f.next) > maxBackoff {
				delete(l.m, k)
			}
		}
	}
	f := l.m[a]
	f.n++
	d := maxBackoff
	if f.n <= 16 {
		d = min(maxBackoff, time.Second<<(f.n-1))
	}
	f.next = now.Add(d)
	if len(l.m) < maxFailing || l.m[a].n > 0 {
		l.m[a] = f
	}
}

// succeeded forgets a's failures.
func (l *limiter) succeeded(a netip.Addr) {
	l.mu.Lock()
	delete(l.m, a)
	l.mu.Unlock()
}

// clientAddr is the address failures are counted under: the peer's
// address, an IPv6 one's /64.
func clientAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// bearer returns the token of an `Authorization: Bearer TOKEN` header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
