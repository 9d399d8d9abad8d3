// Package redis is the PeerStore kept in Redis, so that several tracker
// instances behind one address share their swarms and losing an instance
// loses nothing. It runs on a single Redis, on a master found through
// Sentinel, or on a Redis Cluster, through one go-redis client.
//
// An announce is one round trip: one script applies its update and reads
// the counts it answers with, atomically, and plain HRANDFIELD reads in
// the same pipeline draw its peers in O(numwant). All the keys of a swarm
// share one hash tag, so on a Cluster each announce runs on one slot of
// one node; the totals are one hash off the announce's path, which each
// tracker sends its changes to with its next read of them (totals.go).
// The key layout is described in codec.go and docs/redis.md. Redis 7.0 or
// later is required.
//
// The package's files: conn.go (the client of each topology), breaker.go
// (the outage behaviour), codec.go (keys, stored values, raw replies),
// scripts.go and lua/ (the scripts), store.go (the PeerStore methods),
// follow.go (an announce again after a Cluster's redirection),
// batch.go (announces in progress together share a round trip), resp.go
// (those round trips in RESP on connections of the driver's own), gc.go
// (collection), totals.go (the totals and their recount), local.go
// (locality).
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/stopgroup"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/locality"
)

// goRedisLog sends go-redis' own log lines to the daemon's log, at debug
// level: the driver counts and logs the failures they are about. go-redis
// has one logger for the whole process, so it also carries the lines of
// other go-redis clients (the eventstream hook's): they are not named as
// this driver's.
type goRedisLog struct{}

func (goRedisLog) Printf(_ context.Context, format string, v ...interface{}) {
	logrus.Debugf("go-redis: "+format, v...)
}

func init() {
	redis.SetLogger(goRedisLog{})
	storage.Register(driver)
}

var driver = storage.Driver[Config]{
	Name:  "redis",
	Start: Config{}.WithDefaults(),
	New:   func(c Config) (storage.PeerStore, error) { return New(c) },
	// `chihaya validate` builds the store without starting it, so that
	// validating a configuration connects to nothing.
	Check: func(c Config) error {
		s, err := build(c)
		if err != nil {
			return err
		}
		return s.client.Close()
	},
}

// PeerStore is the redis driver's storage.PeerStore.
type PeerStore struct {
	cfg    Config
	broker broker
	tls    *tls.Config
	client redis.UniversalClient

	// oneShard is the only shard outside Cluster, and on every topology
	// the totals (Pn); slotShards the shard of each hash slot with a
	// Cluster (nil outside), and slotTag the tags their keys carry.
	oneShard   shard
	slotShards *[16384]shard
	slotTag    *[16384]string

	// downUntil is 0 while Redis answers. After a failed dial or a
	// timeout it is the time (Unix ns) until which requests fail at once
	// with downErr; past it, the one request that moves it on by
	// probeWindow is let through to check whether Redis is back (admit).
	// The hot path only loads it.
	downUntil atomic.Int64
	downErr   atomic.Pointer[error]
	// probeWindow (ns) bounds how long a probe may take before another
	// request may probe: a dial and an exchange (Sentinel: a question to
	// each sentinel first), at the configured timeouts.
	probeWindow int64
	// lastReload (Unix ns) is when a Cluster's slot map was last asked
	// for again after a failure (clusterFailure).
	lastReload atomic.Int64

	// tiny is the shared form of tiny swarms, nil with locality or a
	// Cluster (bucket.go).
	tiny *tinyForm
	// classifier groups peers by locality; nil when locality is off (local.go).
	classifier atomic.Pointer[locality.Classifier]
	// web is what the store knows of WebSocket peers (kinds.go).
	web webState
	// netDial, when set (by tests), replaces the TCP dialer.
	netDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// batch groups the announces in progress into shared pipelines
	// (batch.go); wire does the same for the announces of the wire path
	// (resp.go), on connections dialled with wireOpt (nil on a Cluster,
	// whose masters each have their own: nodeBatches).
	batch   batcher
	wire    batcher
	wireOpt *redis.Options
	// roundTrips counts the batches sent (tests read it).
	roundTrips atomic.Int64
	// pending are the changes to the totals made by plain announces and
	// collection, not yet sent (totals.go).
	pending pendingTotals
	// slotTotals is what the store knows of a Cluster's slots' totals
	// (totals.go).
	slotTotals slotTotalsState
	// cut is the recount cut the store knows of (totals.go).
	cut totalsCut
	// nodeBatches are the group commits of a Cluster's masters, by their
	// client (batch.go).
	nodeBatches sync.Map
	// switches counts the switches of a Sentinel's master announced by
	// the sentinels, watched through sentinelSubs (failover.go).
	switches        atomic.Int64
	sentinelSubs    []*redis.PubSub
	sentinelClients []*redis.SentinelClient

	// loops are collection and reporting; done is closed by Stop.
	loops *stopgroup.Group
	done  <-chan struct{}
}

var (
	_ storage.PeerStore = (*PeerStore)(nil)
	_ storage.Announcer = (*PeerStore)(nil)
)

// New builds a store and starts its collection and reporting goroutines.
// It does not wait for Redis: while Redis is unreachable the store's
// operations and Ready fail, and they succeed again once it is back. The
// config must have its defaults applied.
func New(cfg Config) (*PeerStore, error) {
	s, err := build(cfg)
	if err != nil {
		return nil, err
	}
	return s, s.start()
}

// start checks the topology and starts the goroutines of a built store.
func (s *PeerStore) start() error {
	cfg := s.cfg
	if err := s.checkTopology(); err != nil {
		s.client.Close()
		return err
	}
	s.watchSwitches()
	s.loops.Every(cfg.GarbageCollectionInterval, s.periodicGC)
	s.loops.Every(cfg.PrometheusReportingInterval, func() {
		if st, err := s.Stats(); err == nil {
			storage.ReportStats(st)
		}
		s.lookForWeb()
	})
	return nil
}

// build is New without its goroutines: everything that reads the config
// and its files, nothing that reaches Redis.
func build(cfg Config) (*PeerStore, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b, _ := parseBroker(cfg.RedisBroker)
	s := &PeerStore{cfg: cfg, broker: b, loops: stopgroup.New()}
	s.done = s.loops.Done()
	var err error
	exchange := cfg.RedisWriteTimeout + cfg.RedisReadTimeout
	sentinels := int64(len(cfg.SentinelAddrs))
	s.probeWindow = (sentinels+1)*int64(cfg.RedisConnectTimeout+exchange) + 2*int64(exchange)
	if s.tls, err = tlsConfig(cfg, b); err != nil {
		return nil, err
	}
	if cfg.Locality.Enabled {
		classifier, err := locality.Load(cfg.Locality)
		if err != nil {
			return nil, yamlconf.Under(err, "locality")
		}
		s.classifier.Store(classifier)
	}
	if len(cfg.ClusterAddrs) == 0 && !cfg.Locality.Enabled {
		s.tiny = newTinyForm(cfg.KeyPrefix)
	}
	if len(cfg.ClusterAddrs) > 0 {
		s.slotTag = slotTags()
		s.slotShards = new([16384]shard)
		for i, tag := range s.slotTag {
			s.slotShards[i] = shard{
				index:  cfg.KeyPrefix + "{" + tag + "}i",
				totals: cfg.KeyPrefix + "{" + tag + "}n",
				slot:   i,
			}
		}
	}
	s.oneShard = shard{index: cfg.KeyPrefix + "i", totals: cfg.KeyPrefix + "n"}
	s.client = s.newClient()
	s.wireOpt = wireOptions(s.client)
	return s, nil
}

// checkTopology fails New when Redis answers that it is not what the
// configuration says: a cluster_addrs node that is not in cluster mode,
// or a cluster node given as redis_broker, or a wrong password. A Redis
// that does not answer is not an error here (the store starts, not
// ready, and serves once Redis is back).
func (s *PeerStore) checkTopology() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RedisConnectTimeout+s.cfg.RedisReadTimeout+s.cfg.RedisWriteTimeout)
	defer cancel()
	var info string
	var err error
	if len(s.cfg.SentinelAddrs) > 0 {
		if err := s.checkMasterName(ctx); err != nil {
			return err
		}
	}
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		// The cluster client asks a seed for the slots; a seed that is
		// not in cluster mode answers with an error reply.
		err = cc.ClusterSlots(ctx).Err()
		if r, _ := errorReason(err); err != nil && isReplyError(err) && r != reasonAuth {
			return fmt.Errorf("storage/redis: cluster_addrs: %s does not serve a Redis Cluster: %w", s.cfg.ClusterAddrs, err)
		}
	} else {
		info, err = s.client.Info(ctx, "cluster").Result()
		if err == nil && strings.Contains(info, "cluster_enabled:1") {
			return fmt.Errorf("storage/redis: redis_broker: %s is a Redis Cluster node; list the cluster's nodes in storage.config.cluster_addrs instead", s.broker.addr)
		}
	}
	if err != nil && isReplyError(err) {
		if r, _ := errorReason(err); r == reasonAuth {
			return fmt.Errorf("storage/redis: redis_broker: the password is refused: %w", err)
		}
	}
	if err != nil && !isReplyError(err) {
		// Not an error: the store starts, not ready, and serves once
		// Redis answers.
		logrus.WithError(err).Warn("storage/redis: Redis does not answer yet")
	}
	return nil
}

// checkMasterName asks the sentinels for the master: a name that every
// sentinel that answers does not know is a configuration error.
func (s *PeerStore) checkMasterName(ctx context.Context) error {
	answered := false
	for _, a := range s.cfg.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, Password: s.cfg.SentinelPassword, Dialer: s.dialer(),
			Protocol: 2, DisableIdentity: true, MaxRetries: -1, DialTimeout: s.cfg.RedisConnectTimeout,
			DialerRetries: 1, ReadTimeout: s.cfg.RedisReadTimeout, WriteTimeout: s.cfg.RedisWriteTimeout})
		err := sc.GetMasterAddrByName(ctx, s.cfg.SentinelMasterName).Err()
		sc.Close()
		switch {
		case err == nil:
			return nil
		case err == redis.Nil:
			answered = true
		case isReplyError(err):
			return fmt.Errorf("storage/redis: sentinel %s: %w", a, err)
		}
	}
	if answered {
		return fmt.Errorf("storage/redis: sentinel_master_name: unknown master %q: the sentinels that answered do not watch it", s.cfg.SentinelMasterName)
	}
	return nil
}

func isReplyError(err error) bool {
	var re redis.Error
	return err != nil && errors.As(err, &re)
}

// Ready pings Redis (each master, with a Cluster). While Redis is down it
// fails at once, or is the probe that finds Redis back.
func (s *PeerStore) Ready(ctx context.Context) error {
	return s.call(ctx, "", func(ctx context.Context) error {
		if cc, ok := s.client.(*redis.ClusterClient); ok {
			return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
				return c.Ping(ctx).Err()
			})
		}
		return s.client.Ping(ctx).Err()
	})
}

// Stop ends collection and reporting and closes the connections. It may
// be called more than once. The connections are closed even when ctx
// ends before collection has (a hung Redis): closing them also ends the
// exchange collection waits on.
func (s *PeerStore) Stop(ctx context.Context) error {
	loopsErr := s.loops.Stop(ctx)
	s.stopRelay(ctx)
	if err := s.flushTotals(ctx); err != nil && ctx.Err() == nil {
		logrus.WithError(err).Warn("storage/redis: stop: the totals' last changes are lost")
	}
	s.stopWatching()
	s.wire.close()
	s.nodeBatches.Range(func(_, b any) bool {
		b.(*batcher).close()
		return true
	})
	if err := s.client.Close(); err != nil && err != redis.ErrClosed {
		return fmt.Errorf("storage/redis: stop: %w", err)
	}
	if loopsErr != nil {
		return fmt.Errorf("storage/redis: stop: %w", loopsErr)
	}
	return nil
}
