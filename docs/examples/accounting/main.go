// Command accounting reads the tracker's event stream with a Redis
// consumer group and keeps each user's uploaded and downloaded bytes: the
// growth of every peer's totals between its announces, summed by passkey
// into the hash user:<passkey>.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "the Redis server the tracker writes to")
	stream := flag.String("stream", "chihaya:announces", "the event stream's key")
	flag.Parse()
	c := redis.NewClient(&redis.Options{Addr: *addr})
	if err := consume(context.Background(), c, *stream, "accounting", "worker-1"); err != nil {
		log.Fatal(err)
	}
}

// consume reads the stream as one consumer of group until ctx ends. It
// first goes through the entries delivered to it before but never
// acknowledged (it stopped before accounting them), then reads new ones.
func consume(ctx context.Context, c *redis.Client, stream, group, consumer string) error {
	err := c.XGroupCreateMkStream(ctx, stream, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	from := "0" // this consumer's pending entries; then ">", new ones
	for ctx.Err() == nil {
		res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: consumer, Streams: []string{stream, from},
			Count: 100, Block: time.Second,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil) || ctx.Err() != nil:
			continue
		case err != nil:
			return err
		}
		if from == "0" && len(res[0].Messages) == 0 {
			from = ">"
		}
		for _, m := range res[0].Messages {
			if err := account(ctx, c, stream, group, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// peerTTL is how long a peer's last totals are kept after its last
// entry: far longer than an announce interval and a sink outage, so that
// a copy of an entry arriving late is still recognised.
const peerTTL = 48 * time.Hour

// account adds what one announce's totals grew by to its user, and
// acknowledges the entry, in one transaction. Each peer's last totals and
// the time of its last entry are kept in Redis (key "peer:..."), so the
// consumer may restart at any time. An entry older than the last one of
// its peer is a copy (a batch the tracker retried writes its entries
// again, after later ones possibly) and adds nothing; a copy of the last
// entry, "stopped" included (which is why the peer's totals are kept
// after it), adds nothing either, its totals having not grown. Event
// times are the tracker's coarse clock (100 ms steps), so two announces
// of one peer within a step count as one time.
func account(ctx context.Context, c *redis.Client, stream, group string, m redis.XMessage) error {
	field := func(k string) string { s, _ := m.Values[k].(string); return s }
	var params map[string]string
	_ = json.Unmarshal([]byte(field("params")), &params)
	user := params["passkey"]
	up, _ := strconv.ParseUint(field("uploaded"), 10, 64)
	down, _ := strconv.ParseUint(field("downloaded"), 10, 64)
	at, _ := time.Parse(time.RFC3339Nano, field("time"))
	peer := "peer:" + user + "/" + field("info_hash") + "/" + field("peer_id")

	// WATCH makes the read and the write one step even when several
	// consumers share the group: should another change the peer
	// meanwhile, the transaction fails and the entry is read again.
	for {
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			var lastUp, lastDown uint64
			var lastAt int64
			last, err := tx.Get(ctx, peer).Result()
			switch {
			case err == nil:
				fmt.Sscan(last, &lastUp, &lastDown, &lastAt)
				if at.UnixNano() < lastAt {
					return tx.XAck(ctx, stream, group, m.ID).Err() // a copy
				}
			case !errors.Is(err, redis.Nil):
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, peer, fmt.Sprint(up, " ", down, " ", at.UnixNano()), peerTTL)
				p.HIncrBy(ctx, "user:"+user, "uploaded", int64(growth(up, lastUp)))
				p.HIncrBy(ctx, "user:"+user, "downloaded", int64(growth(down, lastDown)))
				p.XAck(ctx, stream, group, m.ID)
				return nil
			})
			return err
		}, peer)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
}

// growth is what a client's total grew by since the last announce. A
// total below the last one means the client restarted and counts from
// zero again.
func growth(now, last uint64) uint64 {
	if now < last {
		return now
	}
	return now - last
}
