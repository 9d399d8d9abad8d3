package redis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/storage"
)

// The breaker keeps an outage cheap. Redis can fail in two ways, treated
// alike: down or unreachable (connections refused, or a dial waiting
// redis_connect_timeout), or hung (connections accepted, nothing answers,
// every exchange waiting redis_read_timeout). The first failed dial or
// timeout marks Redis down: from then on requests fail at once, without
// touching the network, and every downBackoff one request (or Ready) is
// let through as a probe; the first that gets an answer closes the
// breaker again.

// downBackoff is how long after a failed dial or a timeout requests fail
// at once before one of them probes again.
const downBackoff = 250 * time.Millisecond

var (
	errStopped = errors.New("stopped")
	// errDown is what requests fail with, at once, while Redis is down.
	errDown = errors.New("redis is not answering")
)

// The reasons failures are counted under in
// chihaya_storage_redis_errors_total.
const (
	reasonDown        = "down"        // refused at once: Redis was found down
	reasonTimeout     = "timeout"     // no answer within the timeouts
	reasonUnreachable = "unreachable" // no connection (refused, no route, pool exhausted)
	reasonConnection  = "connection"  // the connection broke (EOF, reset)
	reasonClusterDown = "clusterdown" // CLUSTERDOWN: a slot has no master
	reasonCrossSlot   = "crossslot"   // CROSSSLOT: keys of several slots in one command
	reasonTryAgain    = "tryagain"    // TRYAGAIN: a slot is moving
	reasonMasterDown  = "masterdown"  // MASTERDOWN: a replica lost its master
	reasonReadOnly    = "readonly"    // READONLY: a write reached a replica
	reasonOOM         = "oom"         // OOM: Redis is out of memory (maxmemory)
	reasonAuth        = "auth"        // NOAUTH or WRONGPASS
	reasonReply       = "reply"       // any other error reply
)

var errorsByReason = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "chihaya",
	Subsystem: "storage",
	Name:      "redis_errors_total",
	Help:      "Failed exchanges with Redis, by reason.",
}, []string{"reason"})

func init() {
	prometheus.MustRegister(errorsByReason)
	for _, r := range []string{reasonDown, reasonTimeout, reasonUnreachable, reasonConnection,
		reasonClusterDown, reasonCrossSlot, reasonTryAgain, reasonMasterDown, reasonReadOnly,
		reasonOOM, reasonAuth, reasonReply} {
		errorsByReason.WithLabelValues(r)
	}
}

// errorReason classifies a failed exchange, and reports whether it says
// Redis is down (a failed dial or a timeout).
func errorReason(err error) (reason string, down bool) {
	var re redis.Error
	var rr replyError
	switch {
	case errors.Is(err, errDown):
		return reasonDown, false
	case errors.As(err, &re) || errors.As(err, &rr):
		msg := err.Error()
		for _, r := range []struct{ prefix, reason string }{
			{"CLUSTERDOWN", reasonClusterDown}, {"CROSSSLOT", reasonCrossSlot},
			{"TRYAGAIN", reasonTryAgain}, {"MASTERDOWN", reasonMasterDown},
			// A script naming a key of a slot that is moving, not (or no
			// longer) on this node: refused whole, as a TRYAGAIN.
			{"ERR Script attempted to access a non local key", reasonTryAgain},
			{"READONLY", reasonReadOnly}, {"OOM", reasonOOM},
			{"NOAUTH", reasonAuth}, {"WRONGPASS", reasonAuth},
		} {
			if strings.HasPrefix(msg, r.prefix) {
				return r.reason, false
			}
		}
		return reasonReply, false
	case isTimeout(err):
		return reasonTimeout, true
	case isDialError(err):
		return reasonUnreachable, true
	}
	return reasonConnection, false
}

// isTimeout reports a deadline passed: Redis (or the network to it) did
// not answer in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, redis.ErrPoolTimeout)
}

// isDialError reports that no connection could be made.
func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// call runs f, the one exchange of an operation with Redis, through the
// breaker: it fails at once while Redis is down (unless it is the probe),
// and a failed dial or a timeout opens the breaker. A failure is counted
// under op (unless op is "", Ready's) and by reason, and wrapped with the
// driver's name. f is run once: go-redis does not retry either, so an
// update is never applied twice.
func (s *PeerStore) call(ctx context.Context, op string, f func(context.Context) error) error {
	select {
	case <-s.done:
		return s.fail(op, errStopped)
	default:
	}
	probe, err := s.admit()
	if err != nil {
		return s.fail(op, err)
	}
	if probe {
		ctx = context.WithValue(ctx, probeKey{}, true)
	}
	err = f(ctx)
	reason, down := "", false
	if err != nil {
		reason, down = errorReason(err)
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			down = s.clusterFailure(cc, reason, down)
		}
	}
	switch {
	case probe:
		s.settleProbe(ctx, err == nil || !down, err)
	case down && ctx.Err() == nil:
		s.markDown(err)
	}
	if err != nil {
		errorsByReason.WithLabelValues(reason).Inc()
		return s.fail(op, err)
	}
	return nil
}

// probeKey marks the context of the breaker's probe (call), so that the
// announce it carries is sent alone (batch.go).
type probeKey struct{}

func isProbe(ctx context.Context) bool { return ctx.Value(probeKey{}) != nil }

// clusterFailure reacts to a failed exchange with a Cluster: a node that
// cannot be reached or a slot without a master may mean a failover, so
// the slot map is asked for again (at most every downBackoff; go-redis
// does it in the background). It reports whether Redis is to be marked
// down: only for a timeout (a hung node), since a refused connection to
// one dead node costs nothing, and the other nodes still serve.
func (s *PeerStore) clusterFailure(cc *redis.ClusterClient, reason string, down bool) bool {
	switch reason {
	case reasonTimeout, reasonUnreachable, reasonConnection, reasonClusterDown, reasonMasterDown, reasonReadOnly:
		now := time.Now().UnixNano()
		last := s.lastReload.Load()
		if now-last >= int64(downBackoff) && s.lastReload.CompareAndSwap(last, now) {
			cc.ReloadState(context.Background())
		}
	}
	return down && reason == reasonTimeout
}

// fail counts a failed operation and wraps its error.
func (s *PeerStore) fail(op string, err error) error {
	if op == "" {
		return fmt.Errorf("storage/redis: ping: %w", err)
	}
	storage.ObserveError(op)
	return fmt.Errorf("storage/redis: %s: %w", op, err)
}

// markDown makes requests fail at once with err for downBackoff.
func (s *PeerStore) markDown(err error) {
	e := fmt.Errorf("%w: %v", errDown, err)
	s.downErr.Store(&e) // before downUntil, which admit reads first
	s.downUntil.Store(time.Now().Add(downBackoff).UnixNano())
}

// admit lets a request through to Redis, or returns the error it fails
// with at once while Redis is down. While down, once downBackoff has
// passed, exactly one request is let through as a probe (the one that
// moves downUntil on by probeWindow), so that a hung Redis costs one
// request a timeout per round instead of every request; probe reports
// that this request is it, and must settle the round (settleProbe).
func (s *PeerStore) admit() (probe bool, err error) {
	until := s.downUntil.Load()
	if until == 0 {
		return false, nil
	}
	if now := time.Now().UnixNano(); now >= until && s.downUntil.CompareAndSwap(until, now+s.probeWindow) {
		return true, nil
	}
	return false, *s.downErr.Load()
}

// settleProbe ends a probe's round: Redis is up again if it answered,
// down for another downBackoff if not. A probe whose caller gave up (ctx)
// proves nothing, so the next request probes instead.
func (s *PeerStore) settleProbe(ctx context.Context, answered bool, err error) {
	switch {
	case answered:
		s.downUntil.Store(0)
	case ctx.Err() != nil && !isTimeout(err):
		s.downUntil.Store(time.Now().UnixNano())
	default:
		s.markDown(err)
	}
}
