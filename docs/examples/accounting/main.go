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

// consume reads the stream as one consumer of group until ctx ends.
func consume(ctx context.Context, c *redis.Client, stream, group, consumer string) error {
	err := c.XGroupCreateMkStream(ctx, stream, group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return err
	}
	for ctx.Err() == nil {
		res, err := c.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: group, Consumer: consumer, Streams: []string{stream, ">"},
			Count: 100, Block: time.Second,
		}).Result()
		switch {
		case errors.Is(err, redis.Nil) || ctx.Err() != nil:
			continue
		case err != nil:
			return err
		}
		for _, m := range res[0].Messages {
			if err := account(ctx, c, stream, group, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// account adds what one announce's totals grew by to its user, and
// acknowledges the entry, in one transaction. Each peer's last totals are
// kept in Redis (hash "peers"), so the consumer may restart at any time,
// and an entry delivered twice adds nothing the second time.
func account(ctx context.Context, c *redis.Client, stream, group string, m redis.XMessage) error {
	field := func(k string) string { s, _ := m.Values[k].(string); return s }
	var params map[string]string
	_ = json.Unmarshal([]byte(field("params")), &params)
	user := params["passkey"]
	up, _ := strconv.ParseUint(field("uploaded"), 10, 64)
	down, _ := strconv.ParseUint(field("downloaded"), 10, 64)
	peer := user + "/" + field("info_hash") + "/" + field("peer_id")

	var lastUp, lastDown uint64
	last, err := c.HGet(ctx, "peers", peer).Result()
	switch {
	case err == nil:
		fmt.Sscan(last, &lastUp, &lastDown)
	case !errors.Is(err, redis.Nil):
		return err
	}
	_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if field("event") == "stopped" {
			p.HDel(ctx, "peers", peer)
		} else {
			p.HSet(ctx, "peers", peer, fmt.Sprint(up, " ", down))
		}
		p.HIncrBy(ctx, "user:"+user, "uploaded", int64(growth(up, lastUp)))
		p.HIncrBy(ctx, "user:"+user, "downloaded", int64(growth(down, lastDown)))
		p.XAck(ctx, stream, group, m.ID)
		return nil
	})
	return err
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
