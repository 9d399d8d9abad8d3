package redis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Connection and topology. One go-redis client serves the three
// topologies: a single server (redis_broker), a master found through
// Sentinel (sentinel_addrs), or a Redis Cluster (cluster_addrs), whose
// client follows MOVED and ASK redirections and finds a promoted replica
// by itself. The driver's own part is the breaker (breaker.go): go-redis
// is told never to retry, since a retried update might be applied twice
// and a retry against a hung Redis waits a timeout again. A Cluster
// client retries all the same (a command or pipeline after a timeout or
// a cut connection, up to MaxRedirects times): the writes it sends are
// marked to be sent once (once.go), and the announce goes on the wire
// path.

// tlsConfig returns the TLS configuration of rediss://, or nil.
func tlsConfig(cfg Config, b broker) (*tls.Config, error) {
	if !b.tls {
		return nil, nil
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAPath != "" {
		pem, err := os.ReadFile(cfg.TLSCAPath)
		if err != nil {
			return nil, fmt.Errorf("storage/redis: redis_tls_ca_path: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("storage/redis: redis_tls_ca_path: no certificate in %s", cfg.TLSCAPath)
		}
		t.RootCAs = roots
	}
	return t, nil
}

// newClient builds the client of the configured topology. It connects to
// nothing until the first command.
func (s *PeerStore) newClient() redis.UniversalClient {
	cfg, b := s.cfg, s.broker
	opts := &redis.UniversalOptions{
		Addrs:    []string{b.addr},
		Dialer:   s.dialer(),
		Protocol: 2,
		Username: b.user, Password: b.password,
		DB: b.db,
		// go-redis never retries (see above); redirections (MOVED, ASK in
		// a reshard or a failover) are followed.
		MaxRetries:               -1,
		MaxRedirects:             8,
		DialTimeout:              cfg.RedisConnectTimeout,
		DialerRetries:            1,
		ReadTimeout:              cfg.RedisReadTimeout,
		WriteTimeout:             cfg.RedisWriteTimeout,
		PoolSize:                 cfg.MaxActive,
		MaxActiveConns:           cfg.MaxActive,
		MaxIdleConns:             cfg.MaxIdle,
		PoolTimeout:              cfg.RedisConnectTimeout,
		ConnMaxIdleTime:          5 * time.Minute,
		DisableIdentity:          true,
		SentinelPassword:         cfg.SentinelPassword,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
	switch {
	case len(cfg.ClusterAddrs) > 0:
		opts.Addrs, opts.IsClusterMode = cfg.ClusterAddrs, true
	case len(cfg.SentinelAddrs) > 0:
		opts.Addrs, opts.MasterName = cfg.SentinelAddrs, cfg.SentinelMasterName
	}
	return redis.NewUniversalClient(opts)
}

// dialer returns the dialer of every connection: TCP (or netDial, set by
// tests), then TLS with rediss://, checked against the dialled host.
func (s *PeerStore) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: s.cfg.RedisConnectTimeout, KeepAlive: 5 * time.Minute}
		dial := d.DialContext
		if s.netDial != nil {
			dial = s.netDial
		}
		c, err := dial(ctx, network, addr)
		if err != nil || s.tls == nil {
			return c, err
		}
		host, _, _ := net.SplitHostPort(addr)
		tc := s.tls.Clone()
		tc.ServerName = host
		tlsConn := tls.Client(c, tc)
		hctx, cancel := context.WithTimeout(ctx, s.cfg.RedisConnectTimeout)
		defer cancel()
		if err := tlsConn.HandshakeContext(hctx); err != nil {
			c.Close()
			return nil, err
		}
		return tlsConn, nil
	}
}

// slotRange is the hash slots one node serves, [first, last], and that
// node's address ("" outside Cluster).
type slotRange struct {
	first, last int
	addr        string
}

// slotRanges returns the slot ranges of the masters: all slots in one
// range outside Cluster.
func (s *PeerStore) slotRanges(ctx context.Context) ([]slotRange, error) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return []slotRange{{first: 0, last: 16383}}, nil
	}
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	r := make([]slotRange, len(slots))
	for i, sl := range slots {
		r[i] = slotRange{first: sl.Start, last: sl.End}
		if len(sl.Nodes) > 0 {
			r[i].addr = sl.Nodes[0].Addr
		}
	}
	return r, nil
}

// perMaster keeps the first of the ranges of each master (in order): a
// master is walked whole by SCAN, whichever of its ranges names it.
func perMaster(ranges []slotRange) []slotRange {
	seen := make(map[string]bool, len(ranges))
	out := ranges[:0:0]
	for _, r := range ranges {
		if r.addr != "" && seen[r.addr] {
			continue
		}
		seen[r.addr] = true
		out = append(out, r)
	}
	return out
}

// scanner is a client whose SCAN walks one server's keys: the client of
// a single Redis or Sentinel, or of one master of a Cluster
// (scanClient).
type scanner interface {
	ScanType(ctx context.Context, cursor uint64, match string, count int64, keyType string) *redis.ScanCmd
}

// scanClient returns the client of the server that serves slot: the
// store's own outside Cluster, that slot's master with a Cluster.
func (s *PeerStore) scanClient(ctx context.Context, slot int) (scanner, error) {
	cc, ok := s.client.(*redis.ClusterClient)
	if !ok {
		return s.client, nil
	}
	return cc.MasterForKey(ctx, s.slotShards[slot].totals)
}
