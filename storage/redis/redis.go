// Package redis is the PeerStore kept in Redis, so that several tracker
// instances behind one address share their swarms and losing an instance
// loses nothing. Every update is one Lua script, applied atomically, so
// counts stay exact whichever instance a peer talks to; an announce costs
// two round trips (the peer list, then the update), a scrape one per info
// hash. Stale peers are found through per-swarm sorted sets ordered by last
// announce and an index of swarms by their oldest announce, in bounded
// batches, so collection never blocks Redis. With Sentinel the master is
// found, and found again after a failover, through the sentinels.
//
// The key layout is described in scripts.go and docs/redis.md. Redis 7.0 or
// later is required; Redis Cluster is not supported.
package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gomodule/redigo/redis"
	log "github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

func init() {
	storage.Register(driver)
}

var driver = storage.Driver[Config]{
	Name:  "redis",
	Start: Config{}.WithDefaults(),
	New:   func(c Config) (storage.PeerStore, error) { return New(c) },
	// `chihaya validate` builds the store without starting it, so that
	// validating a configuration connects to nothing.
	Check: func(c Config) error {
		_, err := build(c)
		return err
	},
}

const (
	// gcSwarmBatch and gcPeerBatch bound the work of one collection
	// script, so that Redis serves other clients between batches.
	gcSwarmBatch = 32
	gcPeerBatch  = 500

	// downBackoff is how long after Redis failed to connect or to answer
	// in time further requests fail at once, instead of each waiting on
	// the network (a connection refused costs nothing, but a hung Redis
	// costs every request redis_read_timeout). After it, one request at a
	// time checks whether Redis is back (see admit).
	downBackoff = 250 * time.Millisecond

	// idleCheckAfter is how long a pooled connection may sit idle before it
	// is pinged on reuse, so connections that died during an outage are
	// dropped before a request uses them.
	idleCheckAfter = 10 * time.Second
)

var (
	errInvalidAddr = errors.New("storage/redis: peer has no valid address")
	errStopped     = errors.New("stopped")
	errNotMaster   = errors.New("not a master")
	// errDown is what requests fail with, at once, while Redis is down.
	errDown = errors.New("redis is not answering")
)

// PeerStore is the redis driver's storage.PeerStore.
type PeerStore struct {
	cfg    Config
	broker broker
	tls    *tls.Config
	pool   *redis.Pool

	// Key names that are not per swarm.
	indexKey, statsKey, gcKey string

	// gen is bumped whenever a connection breaks; connections dialled
	// under an older generation are dropped when next borrowed, so after a
	// restart or failover the pool empties at once instead of failing one
	// request per stale connection.
	gen atomic.Uint64
	// downUntil is 0 while Redis answers. After a failed dial or a
	// timeout it is the time (Unix ns) until which requests fail at once
	// with downErr; past it, the one request that moves it on by
	// probeWindow is let through to check whether Redis is back (admit).
	// The hot path only loads it.
	downUntil atomic.Int64
	downErr   atomic.Pointer[error]
	// probeWindow (ns) bounds how long a probe may take before another
	// request may probe: its dials (each sentinel asked in turn: AUTH and
	// the master's address; the master: AUTH, SELECT and ROLE) and its
	// command, tried twice when a connection breaks, at the configured
	// timeouts.
	probeWindow int64
	// sentinel is the index of the sentinel that last answered.
	sentinel atomic.Uint32
	// cls groups peers by locality; nil when locality is off (local.go).
	cls atomic.Pointer[locality.Classifier]
	// netDial, when set (by tests), replaces the TCP dialer.
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)

	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
}

var _ storage.PeerStore = (*PeerStore)(nil)

// genConn is a pooled connection with the generation it was dialled in.
type genConn struct {
	redis.Conn
	gen uint64
}

// DoContext lets pooled connections honour a context (Ready's).
func (c *genConn) DoContext(ctx context.Context, cmd string, args ...interface{}) (interface{}, error) {
	return redis.DoContext(c.Conn, ctx, cmd, args...)
}

// ReceiveContext completes redis.ConnWithContext.
func (c *genConn) ReceiveContext(ctx context.Context) (interface{}, error) {
	return redis.ReceiveContext(c.Conn, ctx)
}

// New builds a store and starts its collection and reporting goroutines.
// It does not wait for Redis: while Redis is unreachable the store's
// operations and Ready fail, and they succeed again once it is back. The
// config must have its defaults applied.
func New(cfg Config) (*PeerStore, error) {
	s, err := build(cfg)
	if err != nil {
		return nil, err
	}
	storage.Every(s.done, &s.wg, cfg.GarbageCollectionInterval, s.periodicGC)
	storage.Every(s.done, &s.wg, cfg.PrometheusReportingInterval, func() {
		if st, err := s.Stats(); err == nil {
			storage.ReportStats(st)
		}
	})
	return s, nil
}

// build is New without its goroutines: everything that reads the config
// and its files, nothing that reaches Redis.
func build(cfg Config) (*PeerStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, _ := parseBroker(cfg.RedisBroker)
	s := &PeerStore{
		cfg:      cfg,
		broker:   b,
		indexKey: cfg.KeyPrefix + "swarms",
		statsKey: cfg.KeyPrefix + "stats",
		gcKey:    cfg.KeyPrefix + "gc",
		done:     make(chan struct{}),
	}
	exchange := cfg.RedisWriteTimeout + cfg.RedisReadTimeout
	sentinels := time.Duration(len(cfg.SentinelAddrs))
	s.probeWindow = int64((sentinels+1)*cfg.RedisConnectTimeout + (2*sentinels+3+2)*exchange)
	if b.tls {
		s.tls = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.TLSCAPath != "" {
			pem, err := os.ReadFile(cfg.TLSCAPath)
			if err != nil {
				return nil, fmt.Errorf("storage/redis: redis_tls_ca_path: %w", err)
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("storage/redis: redis_tls_ca_path: no certificate in %s", cfg.TLSCAPath)
			}
			s.tls.RootCAs = roots
		}
	}
	if cfg.Locality.Enabled {
		cls, err := locality.Load(cfg.Locality)
		if err != nil {
			return nil, yamlconf.Under(err, "locality")
		}
		s.cls.Store(cls)
	}
	s.pool = &redis.Pool{
		DialContext:         s.dial,
		TestOnBorrowContext: s.testOnBorrow,
		MaxIdle:             cfg.MaxIdle,
		MaxActive:           cfg.MaxActive,
		IdleTimeout:         5 * time.Minute,
		Wait:                true,
	}
	return s, nil
}

// periodicGC collects when no other instance sharing the Redis has in this
// interval: the lock expires a little before the next tick, so exactly one
// instance wins each round even if their tickers drift.
func (s *PeerStore) periodicGC() {
	hold := max(s.cfg.GarbageCollectionInterval*9/10, time.Millisecond)
	ok, err := s.do("gc", func(c redis.Conn) (interface{}, error) {
		return c.Do("SET", s.gcKey, "1", "NX", "PX", hold.Milliseconds())
	})
	if err != nil {
		log.WithError(err).Warn("storage/redis: garbage collection skipped")
		return
	}
	if ok == nil {
		return // another instance collects this round
	}
	if err := s.CollectGarbage(clock.Now().Add(-s.cfg.PeerLifetime)); err != nil {
		log.WithError(err).Warn("storage/redis: garbage collection failed")
	}
}

// dial connects to the master: the broker's address, or the one the
// sentinels name. A failure marks Redis down. Only admitted requests get
// here (admit), so a Redis that is down is not dialled by every request.
func (s *PeerStore) dial(ctx context.Context) (redis.Conn, error) {
	gen := s.gen.Load()
	c, err := s.dialMaster(ctx)
	if err != nil {
		// A caller that gave up (a readiness probe's client hanging up)
		// says nothing about Redis.
		if !errors.Is(err, context.Canceled) {
			s.markDown(err)
		}
		return nil, err
	}
	return &genConn{Conn: c, gen: gen}, nil
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

func (s *PeerStore) dialMaster(ctx context.Context) (redis.Conn, error) {
	if len(s.cfg.SentinelAddrs) == 0 {
		return s.dialAddr(ctx, s.broker.addr, s.broker.host)
	}
	addr, err := s.askSentinels(ctx)
	if err != nil {
		return nil, err
	}
	c, err := s.dialAddr(ctx, addr, s.broker.host)
	if err != nil {
		return nil, err
	}
	// During a failover a sentinel may still name the old master, which
	// may be back as a replica: only a master is worth keeping.
	role, err := redis.Values(c.Do("ROLE"))
	if err == nil && (len(role) == 0 || string(asBytes(role[0])) != "master") {
		err = fmt.Errorf("%s: %w", addr, errNotMaster)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// dialAddr connects and authenticates to one Redis at addr; serverName is
// what its TLS certificate is checked against.
func (s *PeerStore) dialAddr(ctx context.Context, addr, serverName string) (redis.Conn, error) {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(s.cfg.RedisConnectTimeout),
		redis.DialReadTimeout(s.cfg.RedisReadTimeout),
		redis.DialWriteTimeout(s.cfg.RedisWriteTimeout),
		redis.DialTLSHandshakeTimeout(s.cfg.RedisConnectTimeout),
		redis.DialDatabase(s.broker.db),
	}
	if s.broker.password != "" {
		opts = append(opts, redis.DialPassword(s.broker.password))
		if s.broker.user != "" {
			opts = append(opts, redis.DialUsername(s.broker.user))
		}
	}
	if s.netDial != nil {
		opts = append(opts, redis.DialContextFunc(s.netDial))
	}
	if s.tls != nil {
		t := s.tls.Clone()
		t.ServerName = serverName
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(t))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RedisConnectTimeout)
	defer cancel()
	return redis.DialContext(ctx, "tcp", addr, opts...)
}

// askSentinels asks each sentinel in turn, starting with the one that
// answered last, for the master's address.
func (s *PeerStore) askSentinels(ctx context.Context) (string, error) {
	n := len(s.cfg.SentinelAddrs)
	first := int(s.sentinel.Load())
	var errs []error
	for i := 0; i < n; i++ {
		j := (first + i) % n
		addr, err := s.askSentinel(ctx, s.cfg.SentinelAddrs[j])
		if err == nil {
			s.sentinel.Store(uint32(j))
			return addr, nil
		}
		errs = append(errs, fmt.Errorf("sentinel %s: %w", s.cfg.SentinelAddrs[j], err))
	}
	return "", errors.Join(errs...)
}

func (s *PeerStore) askSentinel(ctx context.Context, sentinelAddr string) (string, error) {
	opts := []redis.DialOption{
		redis.DialConnectTimeout(s.cfg.RedisConnectTimeout),
		redis.DialReadTimeout(s.cfg.RedisReadTimeout),
		redis.DialWriteTimeout(s.cfg.RedisWriteTimeout),
		redis.DialTLSHandshakeTimeout(s.cfg.RedisConnectTimeout),
	}
	if s.cfg.SentinelPassword != "" {
		opts = append(opts, redis.DialPassword(s.cfg.SentinelPassword))
	}
	if s.tls != nil {
		host, _, _ := net.SplitHostPort(sentinelAddr)
		t := s.tls.Clone()
		t.ServerName = host
		opts = append(opts, redis.DialUseTLS(true), redis.DialTLSConfig(t))
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RedisConnectTimeout)
	defer cancel()
	c, err := redis.DialContext(ctx, "tcp", sentinelAddr, opts...)
	if err != nil {
		return "", err
	}
	defer c.Close()
	hp, err := redis.Strings(c.Do("SENTINEL", "get-master-addr-by-name", s.cfg.SentinelMasterName))
	if err != nil {
		if errors.Is(err, redis.ErrNil) {
			return "", fmt.Errorf("unknown master %q", s.cfg.SentinelMasterName)
		}
		return "", err
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("unexpected reply %q", hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// testOnBorrow drops connections from before the last breakage, and pings
// those idle for long.
func (s *PeerStore) testOnBorrow(_ context.Context, c redis.Conn, lastUsed time.Time) error {
	if gc, ok := c.(*genConn); ok && gc.gen != s.gen.Load() {
		return errors.New("stale generation")
	}
	if time.Since(lastUsed) < idleCheckAfter {
		return nil
	}
	// The connection's read timeout bounds the ping.
	_, err := c.Do("PING")
	return err
}

// do runs f on a pooled connection, counting a failure under op and
// wrapping it with the driver's name. A broken connection (EOF, reset,
// READONLY) starts a new generation, and f is then tried once more on a
// new connection, so a Redis restart or failover costs no request that
// came in after it; f must therefore be safe to apply twice. A timeout is
// never retried (a new connection to a hung Redis would wait as long
// again): it marks Redis down instead.
func (s *PeerStore) do(op string, f func(redis.Conn) (interface{}, error)) (interface{}, error) {
	reply, err := s.attempt(context.Background(), true, f)
	if err != nil {
		storage.ObserveError(op)
		return nil, fmt.Errorf("storage/redis: %s: %w", op, err)
	}
	return reply, nil
}

// doOnce is do without the retry, for updates that must not be applied
// twice: a reply lost to a broken connection may belong to an update that
// Redis did apply.
func (s *PeerStore) doOnce(op string, f func(redis.Conn) (interface{}, error)) (interface{}, error) {
	reply, err := s.attempt(context.Background(), false, f)
	if err != nil {
		storage.ObserveError(op)
		return nil, fmt.Errorf("storage/redis: %s: %w", op, err)
	}
	return reply, nil
}

// attempt runs f once, or twice when retry is set and the first
// connection broke, unless Redis is down (admit).
func (s *PeerStore) attempt(ctx context.Context, retry bool, f func(redis.Conn) (interface{}, error)) (interface{}, error) {
	select {
	case <-s.done:
		return nil, errStopped
	default:
	}
	probe, err := s.admit()
	if err != nil {
		return nil, err
	}
	reply, out, err := s.try(ctx, f)
	if out == broken && retry {
		reply, out, err = s.try(ctx, f)
	}
	if probe {
		s.settleProbe(ctx, out == answered, err)
	}
	return reply, err
}

// outcome is how one try ended.
type outcome int

const (
	answered outcome = iota // Redis replied, if only with an error reply
	broken                  // the connection broke: a new one may do
	failed                  // a timeout, or no connection at all
)

// try runs f once on a pooled connection.
func (s *PeerStore) try(ctx context.Context, f func(redis.Conn) (interface{}, error)) (interface{}, outcome, error) {
	// The pool hands out only connections of the current generation, so
	// gen, read before, is that of c unless another failure bumped it in
	// between (then this one counts as stale, which only errs on the side
	// of not marking Redis down twice for one breakage).
	gen := s.gen.Load()
	gctx, cancel := context.WithTimeout(ctx, s.cfg.RedisConnectTimeout)
	c, err := s.pool.GetContext(gctx)
	cancel()
	if err != nil {
		return nil, failed, err
	}
	defer c.Close()
	reply, err := f(c)
	if err == nil || (c.Err() == nil && !isReadOnly(err)) {
		// Only a connection made since the last breakage proves Redis is
		// back: a stale one may carry a reply sent before it hung.
		if s.downUntil.Load() != 0 && s.gen.Load() == gen {
			s.downUntil.Store(0)
		}
		return reply, answered, err
	}
	// The first failure of a generation speaks for the connections dialled
	// with it; the others fail the same way, and tell nothing new.
	first := s.gen.CompareAndSwap(gen, gen+1)
	if isTimeout(err) {
		if first {
			s.markDown(err)
		}
		return nil, failed, err
	}
	return nil, broken, err
}

// isTimeout reports a deadline passed: Redis (or the network to it) did
// not answer in time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// isReadOnly reports Redis' answer to a write sent to a replica: the
// connection is to a master that was demoted (after a network partition),
// so every connection is dropped and the master found again.
func isReadOnly(err error) bool {
	var re redis.Error
	return errors.As(err, &re) && strings.HasPrefix(string(re), "READONLY")
}

// peerMember returns p's address and port as stored in a swarm's sets
// (4 or 16 address bytes, then the port big-endian), and p's family.
func peerMember(p bittorrent.Peer, buf *[18]byte) ([]byte, bittorrent.AddressFamily, bool) {
	a := p.AddrPort.Addr()
	port := p.AddrPort.Port()
	switch {
	case a.Is4():
		a4 := a.As4()
		copy(buf[:4], a4[:])
		buf[4], buf[5] = byte(port>>8), byte(port)
		return buf[:6], bittorrent.IPv4, true
	case a.IsValid():
		a16 := a.As16()
		copy(buf[:16], a16[:])
		buf[16], buf[17] = byte(port>>8), byte(port)
		return buf[:18], bittorrent.IPv6, true
	}
	return nil, 0, false
}

// memberPeer is the inverse of peerMember.
func memberPeer(m, id []byte) (bittorrent.Peer, bool) {
	var p bittorrent.Peer
	var a netip.Addr
	switch len(m) {
	case 6:
		a = netip.AddrFrom4([4]byte(m[:4]))
	case 18:
		a = netip.AddrFrom16([16]byte(m[:16]))
	default:
		return p, false
	}
	p.AddrPort = netip.AddrPortFrom(a, uint16(m[len(m)-2])<<8|uint16(m[len(m)-1]))
	copy(p.ID[:], id)
	return p, true
}

// swarmKeys are the keys of one family of a swarm.
type swarmKeys struct {
	seeders, leechers, ids, downloads string
	hexIH                             string
	// fam is the family's key base (P H:F:), for the per-cell keys.
	fam string
}

var familyTag = [2]string{bittorrent.IPv4: "4", bittorrent.IPv6: "6"}

// The stats hash fields, by family.
var (
	seedersField  = [2]string{"seeders:4", "seeders:6"}
	leechersField = [2]string{"leechers:4", "leechers:6"}
	swarmsField   = [2]string{"swarms:4", "swarms:6"}
)

func (s *PeerStore) keys(ih bittorrent.InfoHash, af bittorrent.AddressFamily) swarmKeys {
	h := hex.EncodeToString(ih[:])
	base := s.cfg.KeyPrefix + h + ":"
	f := base + familyTag[af] + ":"
	return swarmKeys{seeders: f + "s", leechers: f + "l", ids: f + "i", downloads: base + "d", hexIH: h, fam: f}
}

// PutSeeder stores p as a seeder of ih.
func (s *PeerStore) PutSeeder(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.put("put", ih, p, true, false)
}

// PutLeecher stores p as a leecher of ih.
func (s *PeerStore) PutLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.put("put", ih, p, false, false)
}

// GraduateLeecher stores p as a seeder of ih and counts a download.
func (s *PeerStore) GraduateLeecher(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	return s.put("graduate", ih, p, true, true)
}

func (s *PeerStore) put(op string, ih bittorrent.InfoHash, p bittorrent.Peer, seeder, graduate bool) error {
	var buf [18]byte
	m, af, ok := peerMember(p, &buf)
	if !ok {
		storage.ObserveError(op)
		return errInvalidAddr
	}
	k := s.keys(ih, af)
	role, count := "l", "0"
	if seeder {
		role = "s"
	}
	do := s.do
	if graduate {
		count = "1"
		do = s.doOnce // counting a download twice would be wrong
	}
	if cls := s.cls.Load(); cls != nil {
		return s.putLocal(op, cls, k, m, p, af, role, count, do)
	}
	_, err := do(op, func(c redis.Conn) (interface{}, error) {
		return putScript.Do(c, k.seeders, k.leechers, k.ids, k.downloads, s.indexKey, s.statsKey,
			m, p.ID[:], clock.Unix(), role, familyTag[af], count, k.hexIH)
	})
	return err
}

// DeletePeer removes p from ih's swarm.
func (s *PeerStore) DeletePeer(ih bittorrent.InfoHash, p bittorrent.Peer) error {
	var buf [18]byte
	m, af, ok := peerMember(p, &buf)
	if !ok {
		return nil // never stored, so nothing to remove
	}
	k := s.keys(ih, af)
	local := s.cls.Load() != nil
	_, err := s.do("delete", func(c redis.Conn) (interface{}, error) {
		if local {
			return deleteLocalScript.Do(c, k.seeders, k.leechers, k.ids, s.statsKey, m, familyTag[af], k.fam)
		}
		return deleteScript.Do(c, k.seeders, k.leechers, k.ids, s.statsKey, m, familyTag[af])
	})
	return err
}

// announceReply is what the announce pipeline reads.
type announceReply struct {
	counts         storage.Counts
	self           []byte
	seeds, leeches []interface{}
}

// AnnouncePeers appends up to numWant peers for the announcer to dst. It
// costs one round trip of plain read commands: the counts, the announcer's
// entry, and numWant+1 random seeders (for a leecher) and leechers, one
// more than wanted so the announcer can be skipped. ZRANDMEMBER costs
// O(numWant), never O(swarm).
func (s *PeerStore) AnnouncePeers(dst []bittorrent.Peer, ih bittorrent.InfoHash, seeder bool, numWant int, announcer bittorrent.Peer) ([]bittorrent.Peer, storage.Counts, storage.Role, error) {
	var buf [18]byte
	m, af, ok := peerMember(announcer, &buf)
	if !ok {
		storage.ObserveError("announce")
		return dst, storage.Counts{}, storage.Absent, errInvalidAddr
	}
	k := s.keys(ih, af)
	numWant = max(numWant, 0)
	if cls := s.cls.Load(); cls != nil {
		return s.announceLocal(dst, cls, k, m, announcer, seeder, numWant)
	}
	var r announceReply
	_, err := s.do("announce", func(c redis.Conn) (interface{}, error) {
		r = announceReply{}
		c.Send("ZCARD", k.seeders)
		c.Send("ZCARD", k.leechers)
		c.Send("GET", k.downloads)
		c.Send("HGET", k.ids, m)
		if numWant > 0 && !seeder {
			c.Send("ZRANDMEMBER", k.seeders, numWant+1)
		}
		if numWant > 0 {
			c.Send("ZRANDMEMBER", k.leechers, numWant+1)
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
		var vals [4]interface{}
		for i := range vals {
			v, err := c.Receive()
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		r.counts = storage.Counts{Seeders: asUint32(vals[0]), Leechers: asUint32(vals[1]), Downloads: asUint32(vals[2])}
		r.self = asBytes(vals[3])
		var err error
		if numWant > 0 && !seeder {
			if r.seeds, err = redis.Values(c.Receive()); err != nil {
				return nil, err
			}
		}
		if numWant > 0 {
			if r.leeches, err = redis.Values(c.Receive()); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return dst, storage.Counts{}, storage.Absent, err
	}
	role := storage.Absent
	if len(r.self) > 0 {
		role = storage.Leecher
		if r.self[0] == 's' {
			role = storage.Seeder
		}
	}
	dst = appendPeers(dst, r.seeds, m, &numWant)
	dst = appendPeers(dst, r.leeches, m, &numWant)
	return dst, r.counts, role, nil
}

// appendPeers appends up to *want of the members, skipping the one at
// address self, and lowers *want by the number added.
func appendPeers(dst []bittorrent.Peer, members []interface{}, self []byte, want *int) []bittorrent.Peer {
	for _, v := range members {
		if *want == 0 {
			break
		}
		b := asBytes(v)
		if len(b) != len(self)+len(bittorrent.PeerID{}) || string(b[:len(self)]) == string(self) {
			continue
		}
		p, ok := memberPeer(b[:len(self)], b[len(self):])
		if !ok {
			continue
		}
		dst = append(dst, p)
		*want--
	}
	return dst
}

// ScrapeSwarm returns the counts of ih's swarm for af, in one round trip.
func (s *PeerStore) ScrapeSwarm(ih bittorrent.InfoHash, af bittorrent.AddressFamily) (storage.Counts, error) {
	if af > bittorrent.IPv6 {
		return storage.Counts{}, nil
	}
	k := s.keys(ih, af)
	var counts storage.Counts
	_, err := s.do("scrape", func(c redis.Conn) (interface{}, error) {
		c.Send("ZCARD", k.seeders)
		c.Send("ZCARD", k.leechers)
		c.Send("GET", k.downloads)
		if err := c.Flush(); err != nil {
			return nil, err
		}
		var vals [3]uint32
		for i := range vals {
			v, err := c.Receive()
			if err != nil {
				return nil, err
			}
			vals[i] = asUint32(v)
		}
		counts = storage.Counts{Seeders: vals[0], Leechers: vals[1], Downloads: vals[2]}
		return nil, nil
	})
	return counts, err
}

// ScrapeSwarms writes the counts of each of ihs for af into dst, in one
// pipelined round trip for the whole scrape.
func (s *PeerStore) ScrapeSwarms(dst []storage.Counts, ihs []bittorrent.InfoHash, af bittorrent.AddressFamily) error {
	if af > bittorrent.IPv6 {
		clear(dst[:len(ihs)])
		return nil
	}
	_, err := s.do("scrape", func(c redis.Conn) (interface{}, error) {
		for _, ih := range ihs {
			k := s.keys(ih, af)
			c.Send("ZCARD", k.seeders)
			c.Send("ZCARD", k.leechers)
			c.Send("GET", k.downloads)
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
		for i := range ihs {
			var vals [3]uint32
			for j := range vals {
				v, err := c.Receive()
				if err != nil {
					return nil, err
				}
				vals[j] = asUint32(v)
			}
			dst[i] = storage.Counts{Seeders: vals[0], Leechers: vals[1], Downloads: vals[2]}
		}
		return nil, nil
	})
	return err
}

// CollectGarbage removes the peers last seen before cutoff, in batches of
// at most gcSwarmBatch swarms and gcPeerBatch peers per script, each its
// own round trip so that other clients are served in between.
func (s *PeerStore) CollectGarbage(cutoff time.Time) error {
	start := time.Now()
	cut := cutoff.Unix()
	removed := 0
	var err error
	for {
		select {
		case <-s.done:
			err = fmt.Errorf("storage/redis: gc: %w", errStopped)
		default:
		}
		if err != nil {
			break
		}
		var reply interface{}
		reply, err = s.do("gc", func(c redis.Conn) (interface{}, error) {
			return redis.Int64s(gcScript.Do(c, s.indexKey, s.statsKey, cut, s.cfg.KeyPrefix, gcSwarmBatch, gcPeerBatch))
		})
		if err != nil {
			break
		}
		r := reply.([]int64)
		if len(r) != 2 {
			err = fmt.Errorf("storage/redis: gc: unexpected reply of %d values", len(r))
			break
		}
		removed += int(r[1])
		if r[0] == 0 {
			break
		}
	}
	storage.ObserveGC(time.Since(start).Seconds(), removed)
	return err
}

// Stats returns the totals of every swarm under key_prefix, which all
// instances sharing it report alike.
func (s *PeerStore) Stats() (storage.Stats, error) {
	reply, err := s.do("stats", func(c redis.Conn) (interface{}, error) {
		return redis.Values(c.Do("HMGET", s.statsKey,
			swarmsField[0], seedersField[0], leechersField[0],
			swarmsField[1], seedersField[1], leechersField[1]))
	})
	if err != nil {
		return storage.Stats{}, err
	}
	v := reply.([]interface{})
	var st storage.Stats
	for af := 0; af < 2 && len(v) == 6; af++ {
		st.Swarms[af] = asUint64(v[3*af])
		st.Seeders[af] = asUint64(v[3*af+1])
		st.Leechers[af] = asUint64(v[3*af+2])
	}
	return st, nil
}

// Ready pings the master. While Redis is down it fails at once, or is
// the probe that finds Redis back.
func (s *PeerStore) Ready(ctx context.Context) error {
	_, err := s.attempt(ctx, true, func(c redis.Conn) (interface{}, error) {
		return redis.DoContext(c, ctx, "PING")
	})
	if err != nil {
		return fmt.Errorf("storage/redis: ping: %w", err)
	}
	return nil
}

// Stop ends collection and reporting and closes the connections. It may
// be called more than once.
func (s *PeerStore) Stop(ctx context.Context) error {
	s.stopOnce.Do(func() { close(s.done) })
	if err := storage.WaitBackground(ctx, &s.wg); err != nil {
		return fmt.Errorf("storage/redis: stop: %w", err)
	}
	return s.pool.Close()
}

func asBytes(v interface{}) []byte {
	switch v := v.(type) {
	case []byte:
		return v
	case string:
		return []byte(v)
	}
	return nil
}

func asUint64(v interface{}) uint64 {
	switch v := v.(type) {
	case int64:
		if v > 0 {
			return uint64(v)
		}
	case []byte:
		n, _ := strconv.ParseInt(string(v), 10, 64)
		if n > 0 {
			return uint64(n)
		}
	}
	return 0
}

func asUint32(v interface{}) uint32 {
	n := asUint64(v)
	if n > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(n)
}
