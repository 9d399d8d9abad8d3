package redis

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"
)

// A Sentinel failover moves the master. go-redis drops its own pooled
// connections to the old master as soon as a sentinel announces the
// switch (+switch-master), but the wire path's connections (resp.go) are
// the driver's own: they would go on writing to the old master for as
// long as it still answers as one (after a SENTINEL FAILOVER, seconds,
// until the sentinels demote it), and what is written there is lost when
// it becomes a replica of the new master. So the driver listens to the
// sentinels too and counts the switches of its master (switches); a wire
// connection dialled before the last one is closed before its next batch,
// and the next dial asks the sentinels for the master.

// watchSwitches subscribes to +switch-master on each configured sentinel
// (any of them may be the one that is up), until Stop.
func (s *PeerStore) watchSwitches() {
	for _, a := range s.cfg.SentinelAddrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: a, Password: s.cfg.SentinelPassword, Dialer: s.dialer(),
			Protocol: 2, DisableIdentity: true, MaxRetries: -1, DialTimeout: s.cfg.RedisConnectTimeout,
			DialerRetries: 1, ReadTimeout: s.cfg.RedisReadTimeout, WriteTimeout: s.cfg.RedisWriteTimeout})
		// Subscribed with no channel, so that nothing here dials: the
		// subscription is made in the goroutine (a sentinel that does not
		// answer must not hold up the start).
		ps := sc.Subscribe(context.Background())
		s.sentinelSubs = append(s.sentinelSubs, ps)
		s.sentinelClients = append(s.sentinelClients, sc)
		go func() {
			_ = ps.Subscribe(context.Background(), "+switch-master")
			for m := range ps.Channel() {
				// "<name> <old ip> <old port> <new ip> <new port>"
				if name, _, _ := strings.Cut(m.Payload, " "); name == s.cfg.SentinelMasterName {
					s.switches.Add(1)
				}
			}
		}()
	}
}

// stopWatching ends watchSwitches.
func (s *PeerStore) stopWatching() {
	for _, ps := range s.sentinelSubs {
		_ = ps.Close()
	}
	for _, sc := range s.sentinelClients {
		_ = sc.Close()
	}
	s.sentinelSubs, s.sentinelClients = nil, nil
}
