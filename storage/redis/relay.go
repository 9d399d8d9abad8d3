package redis

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// The relay (storage.Relay) carries the WebSocket frontend's offers and
// answers between the tracker instances that share the Redis, with
// sharded pub/sub (SPUBLISH, SSUBSCRIBE: on a Cluster a channel lives on
// one node, not broadcast to all). Each instance that runs the WebSocket
// frontend has a number N, random, claimed at start, which the store
// writes into the records of the WebSocket peers it stores (kinds.go).
// Its keys:
//
//	P{relay}beats  sorted set: instance number -> last heartbeat (Unix ms)
//	P{relayN}      the channel of instance N
//	P{relayN}m     set of the WebSocket peers instance N stored (info hash,
//	               20 bytes, then A), so that they can be dropped with it
//
// Every relay_heartbeat_interval each instance writes its heartbeat and
// reads the others': an instance silent for relay_instance_timeout (one
// that stopped without cleaning up: killed, frozen, cut off) is gone. The
// first instance to remove it from the set drops its peers from their
// swarms; until then, messages for it are dropped, never published.

// relayQueue bounds the messages waiting to be published: past it a
// message is dropped (Redis is too slow or down) rather than held.
const relayQueue = 4096

// relayQueueBytes bounds the bytes of the messages waiting to be
// published: an offer may be as large as websocket.max_message_bytes
// (64 KiB by default), so the count alone would let a flood of large
// offers hold 4,096 of them while Redis is slow.
const relayQueueBytes = 16 << 20

// relayBatch is how many queued messages one pipelined round trip
// publishes at most.
const relayBatch = 256

// The reasons relayed messages are dropped for.
const (
	dropInstanceGone = "instance_gone" // the target instance is gone, or nobody listens on its channel
	dropQueueFull    = "queue_full"    // too many messages waiting to be published
	dropRedisError   = "redis_error"   // the publish failed (Redis down or refusing)
	dropNoReceiver   = "no_receiver"   // received while no frontend listens
)

var (
	relayPublished = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_published_total",
		Help: "Messages of the WebSocket frontend published to another instance's channel.",
	})
	relayReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_received_total",
		Help: "Messages received on this instance's channel from other instances.",
	})
	relayDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_dropped_total",
		Help: "Messages between instances dropped, by reason.",
	}, []string{"reason"})
	relayStale = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_stale_instances_total",
		Help: "Instances found gone (silent past relay_instance_timeout) and dropped by this instance.",
	})
	relayStalePeers = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_stale_peers_total",
		Help: "WebSocket peers of gone instances removed from their swarms by this instance.",
	})
	relayResubscribed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_resubscribed_total",
		Help: "Times this instance found its relay channel without a subscriber and subscribed again.",
	})
	relayInstances = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chihaya", Subsystem: "storage", Name: "redis_relay_instances",
		Help: "Instances relaying WebSocket messages through the Redis (alive at the last heartbeat).",
	})
	dropped = map[string]prometheus.Counter{}
)

func init() {
	prometheus.MustRegister(relayPublished, relayReceived, relayDropped, relayStale, relayStalePeers, relayResubscribed, relayInstances)
	for _, r := range []string{dropInstanceGone, dropQueueFull, dropRedisError, dropNoReceiver} {
		dropped[r] = relayDropped.WithLabelValues(r)
	}
}

// relay is the store's storage.Relay.
type relay struct {
	s  *PeerStore
	id uint16
	// beats is the sorted set of heartbeats.
	beats string
	// recv is the frontend's receiver.
	recv atomic.Pointer[func([]byte)]
	// queue holds the messages waiting to be published.
	queue chan outMessage
	// queued is the bytes of the messages in queue.
	queued atomic.Int64
	// alive is the set of the instances alive at the last heartbeat
	// (nil until then: all are taken for alive).
	alive atomic.Pointer[[1 << 16 / 64]uint64]
	// sub is the subscription to this instance's channel, replaced when a
	// heartbeat finds that it no longer receives (checkSubscription).
	sub  atomic.Pointer[subscription]
	bufs sync.Pool
}

type subscription struct {
	ps   *redis.PubSub
	msgs <-chan *redis.Message
}

type outMessage struct {
	to uint16
	b  *[]byte
}

var _ storage.Relayer = (*PeerStore)(nil)

// Relay starts the relay on its first call (the WebSocket frontend's) and
// returns it; Stop stops it.
func (s *PeerStore) Relay() storage.Relay {
	s.web.relayOnce.Do(s.startRelay)
	return s.web.relay.Load()
}

// startRelay claims an instance number, subscribes to its channel, and
// starts the heartbeat and the publisher.
func (s *PeerStore) startRelay() {
	r := &relay{s: s, beats: s.cfg.KeyPrefix + "{relay}beats", queue: make(chan outMessage, relayQueue)}
	r.bufs.New = func() any { b := make([]byte, 0, 2048); return &b }
	r.id = r.claim()
	s.web.instance.Store(uint32(r.id))
	s.web.relay.Store(r)
	r.sub.Store(r.subscribe())
	s.loops.Go(r.receive)
	s.loops.Go(r.publish)
	s.loops.Every(s.cfg.RelayHeartbeatInterval, r.beat)
	logrus.WithField("instance", r.id).Info("storage/redis: relaying WebSocket offers and answers between instances")
}

// claim picks a number no live instance has, and registers it with a
// first heartbeat. If Redis does not answer, the number is used
// unclaimed (heartbeats register it once Redis is back).
func (r *relay) claim() uint16 {
	s := r.s
	var id uint16
	for range 16 {
		id = uint16(rand.N(1<<16-1)) + 1
		var added int64
		err := s.call(context.Background(), "relay", func(ctx context.Context) (err error) {
			added, err = s.client.ZAddNX(ctx, r.beats, redis.Z{Score: float64(time.Now().UnixMilli()), Member: id}).Result()
			return err
		})
		if err != nil || added == 1 {
			return id
		}
	}
	return id
}

// subscribe subscribes to this instance's channel.
func (r *relay) subscribe() *subscription {
	ps := r.s.client.SSubscribe(context.Background(), r.channel(r.id))
	return &subscription{ps: ps, msgs: ps.Channel(redis.WithChannelSize(relayQueue))}
}

func (r *relay) channel(id uint16) string {
	return r.s.cfg.KeyPrefix + "{relay" + strconv.Itoa(int(id)) + "}"
}

func (r *relay) members(id uint16) string {
	return r.s.cfg.KeyPrefix + "{relay" + strconv.Itoa(int(id)) + "}m"
}

// Instance returns this instance's number.
func (r *relay) Instance() uint16 { return r.id }

// Receive makes fn the receiver of this instance's messages.
func (r *relay) Receive(fn func(msg []byte)) {
	if fn == nil {
		r.recv.Store(nil)
		return
	}
	r.recv.Store(&fn)
}

// Publish queues a copy of msg for instance to.
func (r *relay) Publish(to uint16, msg []byte) {
	if !r.isAlive(to) {
		dropped[dropInstanceGone].Inc()
		return
	}
	n := int64(len(msg))
	if r.queued.Add(n) > relayQueueBytes {
		r.queued.Add(-n)
		dropped[dropQueueFull].Inc()
		return
	}
	b := r.bufs.Get().(*[]byte)
	*b = append((*b)[:0], msg...)
	select {
	case r.queue <- outMessage{to, b}:
	default:
		r.queued.Add(-n)
		r.putBuf(b)
		dropped[dropQueueFull].Inc()
	}
}

// putBuf returns a message's buffer to the pool, unless a large message
// made it large.
func (r *relay) putBuf(b *[]byte) {
	if cap(*b) <= 8<<10 {
		r.bufs.Put(b)
	}
}

func (r *relay) isAlive(id uint16) bool {
	a := r.alive.Load()
	return a == nil || id == r.id || a[id/64]&(1<<(id%64)) != 0
}

// publish publishes the queued messages, a batch per round trip, until
// the store stops.
func (r *relay) publish(done <-chan struct{}) {
	batch := make([]outMessage, 0, relayBatch)
	cmds := make([]*redis.IntCmd, 0, relayBatch)
	for {
		select {
		case <-done:
			return
		case m := <-r.queue:
			batch = append(batch[:0], m)
		}
	fill:
		for len(batch) < relayBatch {
			select {
			case m := <-r.queue:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		err := r.s.call(context.Background(), "relay", func(ctx context.Context) error {
			pipe := r.s.client.Pipeline()
			cmds = cmds[:0]
			for _, m := range batch {
				cmds = append(cmds, pipe.SPublish(ctx, r.channel(m.to), unsafe.String(unsafe.SliceData(*m.b), len(*m.b))))
			}
			_, err := pipe.Exec(ctx)
			return err
		})
		for i, m := range batch {
			switch {
			case err != nil && (i >= len(cmds) || cmds[i].Err() != nil):
				dropped[dropRedisError].Inc()
			case err == nil && cmds[i].Val() == 0:
				// Nobody listens there: the instance is gone.
				dropped[dropInstanceGone].Inc()
			default:
				relayPublished.Inc()
			}
			r.queued.Add(-int64(len(*m.b)))
			r.putBuf(m.b)
			batch[i] = outMessage{}
		}
	}
}

// receive hands the messages of this instance's channel to the frontend.
// The subscription reconnects by itself after Redis restarts; one that
// Redis dropped while the connection stayed is replaced by a heartbeat.
func (r *relay) receive(done <-chan struct{}) {
	for {
		sub := r.sub.Load()
		select {
		case <-done:
			return
		case m, ok := <-sub.msgs:
			if !ok {
				if r.sub.Load() == sub {
					return // closed by stopRelay
				}
				continue // replaced
			}
			if len(m.Payload) == 0 {
				continue // checkSubscription's probe
			}
			relayReceived.Inc()
			fn := r.recv.Load()
			if fn == nil {
				dropped[dropNoReceiver].Inc()
				continue
			}
			(*fn)(unsafe.Slice(unsafe.StringData(m.Payload), len(m.Payload)))
		}
	}
}

// beat writes this instance's heartbeat, reads the others', and drops
// the instances found gone.
func (r *relay) beat() {
	s := r.s
	now := time.Now()
	stale := now.Add(-s.cfg.RelayInstanceTimeout).UnixMilli()
	var all []redis.Z
	var rejoined bool
	err := s.call(context.Background(), "relay", func(ctx context.Context) error {
		pipe := s.client.Pipeline()
		added := pipe.ZAdd(ctx, r.beats, redis.Z{Score: float64(now.UnixMilli()), Member: r.id})
		zs := pipe.ZRangeWithScores(ctx, r.beats, 0, -1)
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		all = zs.Val()
		rejoined = added.Val() == 1
		return nil
	})
	if err != nil {
		return // counted; the set of live instances stays as it was
	}
	r.checkSubscription()
	if rejoined {
		// Claimed at start, so absent only if another instance found this
		// one gone (it froze, or was cut off, for relay_instance_timeout)
		// or Redis lost the set (restarted empty).
		logrus.WithField("instance", r.id).Warn("storage/redis: this instance's heartbeat was missing from Redis (it was found gone, or Redis restarted empty): its browsers may have been dropped from their swarms until they announce again")
	}
	var alive [1 << 16 / 64]uint64
	n := 0
	for _, z := range all {
		id, err := strconv.ParseUint(z.Member.(string), 10, 16)
		if err != nil {
			continue
		}
		if int64(z.Score) >= stale {
			alive[id/64] |= 1 << (id % 64)
			n++
			continue
		}
		r.drop(uint16(id), stale)
	}
	r.alive.Store(&alive)
	relayInstances.Set(float64(n))
}

// dropStale removes an instance from the heartbeats (KEYS[1]) only if
// its last heartbeat is still older than ARGV[2]: one that beat again
// since it was read (it only froze, and came back) keeps its place and
// its peers.
var dropStale = redis.NewScript(`
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) < tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0`)

// checkSubscription publishes an empty probe to this instance's own
// channel: if nobody receives it, Redis has dropped the subscription
// while its connection stayed open (on a Cluster, the slot of the channel
// moved to another node, or its master became a replica: Redis then
// unsubscribes the shard channel's subscribers, and the client does not
// subscribe again by itself), so it is made anew.
func (r *relay) checkSubscription() {
	var n int64
	err := r.s.call(context.Background(), "relay", func(ctx context.Context) (err error) {
		n, err = r.s.client.SPublish(ctx, r.channel(r.id), "").Result()
		return err
	})
	if err != nil || n > 0 {
		return
	}
	old := r.sub.Swap(r.subscribe())
	_ = old.ps.Close()
	relayResubscribed.Inc()
	logrus.WithField("instance", r.id).Warn("storage/redis: this instance's relay channel had no subscriber (Redis dropped the subscription): subscribed again")
}

// drop removes a gone instance, silent since before stale (Unix ms), from
// the heartbeats and, if this instance was the one that did, its
// WebSocket peers from their swarms.
func (r *relay) drop(id uint16, stale int64) {
	s := r.s
	var won bool
	err := s.call(context.Background(), "relay", func(ctx context.Context) error {
		n, err := dropStale.Run(ctx, s.client, []string{r.beats}, id, stale).Int64()
		won = n == 1
		return err
	})
	if err != nil || !won {
		return
	}
	relayStale.Inc()
	n, err := r.dropPeers(id)
	relayStalePeers.Add(float64(n))
	entry := logrus.WithFields(logrus.Fields{"instance": id, "peers": n})
	if err != nil {
		entry.WithError(err).Warn("storage/redis: dropping the WebSocket peers of a gone instance failed; collection removes the rest")
		return
	}
	entry.Info("storage/redis: an instance stopped relaying without leaving: its WebSocket peers are dropped")
}

// dropPeers removes the WebSocket peers instance id stored from their
// swarms, a page of its member set at a time, and then the set.
func (r *relay) dropPeers(id uint16) (int, error) {
	s := r.s
	key := r.members(id)
	removed := 0
	var cursor uint64
	for {
		var page []string
		err := s.call(context.Background(), "relay", func(ctx context.Context) (err error) {
			page, cursor, err = s.client.SScan(ctx, key, cursor, "", sscanCount).Result()
			return err
		})
		if err != nil {
			return removed, err
		}
		var cmds []*redis.Cmd
		err = s.call(context.Background(), "relay", func(ctx context.Context) error {
			return s.webPipeline(ctx, func(pipe redis.Pipeliner, eval bool) {
				cmds = cmds[:0]
				for _, m := range page {
					ih, addr, af, ok := splitMember(m)
					if !ok {
						continue
					}
					k := s.webKeys(ih)
					cmds = append(cmds, s.webScript(ctx, pipe, &k, storage.UpdateDelete, af, addr, "", eval))
				}
			})
		})
		if err != nil {
			return removed, err
		}
		for _, c := range cmds {
			if n, _ := c.Int64(); n != 0 {
				removed++
			}
		}
		if cursor == 0 {
			break
		}
	}
	return removed, s.call(context.Background(), "relay", func(ctx context.Context) error {
		return s.client.Del(ctx, key).Err()
	})
}

// member is the entry of a WebSocket peer in its instance's member set.
func member(ih bittorrent.InfoHash, addr string) string { return string(ih[:]) + addr }

// splitMember is the inverse of member.
func splitMember(m string) (bittorrent.InfoHash, string, bittorrent.AddressFamily, bool) {
	var ih bittorrent.InfoHash
	if len(m) != len(ih)+6 && len(m) != len(ih)+18 {
		return ih, "", 0, false
	}
	copy(ih[:], m)
	af := bittorrent.IPv4
	if len(m) == len(ih)+18 {
		af = bittorrent.IPv6
	}
	return ih, m[len(ih):], af, true
}

// trackMember queues, with a WebSocket peer's update, the change to the
// member set of this instance.
func (s *PeerStore) trackMember(ctx context.Context, pipe redis.Pipeliner, ih bittorrent.InfoHash, addr string, del bool) {
	r := s.web.relay.Load()
	if r == nil {
		return
	}
	if del {
		pipe.SRem(ctx, r.members(r.id), member(ih, addr))
	} else {
		pipe.SAdd(ctx, r.members(r.id), member(ih, addr))
	}
}

// stopRelay takes this instance out of the heartbeats, so that the others
// stop publishing to it at their next heartbeat, and closes the
// subscription. Its peers left with their sockets.
func (s *PeerStore) stopRelay(ctx context.Context) {
	r := s.web.relay.Load()
	if r == nil {
		return
	}
	_ = r.sub.Load().ps.Close()
	if err := s.client.ZRem(ctx, r.beats, r.id).Err(); err != nil && !errors.Is(err, redis.ErrClosed) {
		logrus.WithError(err).Debug("storage/redis: leaving the relay")
	}
	_ = s.client.Del(ctx, r.members(r.id)).Err()
}
