package main

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/middleware/eventstream"
	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/query"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// TestPerUserDeltas feeds the consumer through the real event stream hook
// and a real redis-server, and checks the users' totals as a site would.
func TestPerUserDeltas(t *testing.T) {
	srv := redistest.Start(t, "redis-server")
	hook, err := eventstream.New(eventstream.Config{
		Sink: "redis", RedisURL: "redis://" + srv.Addr + "/0", Stream: "s",
		Routes: []string{"/:passkey/announce"}, BatchSize: 1, FlushInterval: 10 * time.Millisecond,
	}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer hook.Stop()
	announce := func(passkey string, peer byte, ev bittorrent.Event, up, down uint64) {
		v := &query.Values{}
		_ = v.Parse("/"+passkey+"/announce", "")
		_ = hook.HandleAnnounce(context.Background(), &bittorrent.AnnounceRequest{
			InfoHash: bittorrent.InfoHash{1}, Peer: bittorrent.Peer{ID: bittorrent.PeerID{peer}, AddrPort: netip.MustParseAddrPort("127.0.0.1:6881")},
			Event: ev, Uploaded: up, Downloaded: down, Params: v,
		}, &bittorrent.AnnounceResponse{})
		// One batch each, in order, each in a step of the tracker's
		// coarse clock of its own, as a client's announces are.
		time.Sleep(clock.Resolution + 20*time.Millisecond)
	}
	// alice: one peer announcing growing totals.
	announce("alice", 1, bittorrent.Started, 0, 0)
	announce("alice", 1, bittorrent.None, 100, 50)
	announce("alice", 1, bittorrent.Completed, 300, 80)
	// bob: a peer that restarts (its totals start again from zero), then
	// stops; and a second peer of his.
	announce("bob", 2, bittorrent.Started, 0, 0)
	announce("bob", 2, bittorrent.None, 10, 0)
	announce("bob", 2, bittorrent.Started, 5, 0)
	announce("bob", 2, bittorrent.Stopped, 7, 0)
	announce("bob", 3, bittorrent.None, 1000, 1000)

	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consume(ctx, c, "s", "accounting", "w1") }()
	want := map[string]map[string]string{
		"user:alice": {"uploaded": "300", "downloaded": "80"},
		"user:bob":   {"uploaded": "1017", "downloaded": "1000"},
	}
	check := func() string {
		for k, w := range want {
			got, _ := c.HGetAll(context.Background(), k).Result()
			if got["uploaded"] != w["uploaded"] || got["downloaded"] != w["downloaded"] {
				return k + " is " + strings.TrimSpace(got["uploaded"]+" "+got["downloaded"])
			}
		}
		return ""
	}
	eventually.Holds(t, check)

	// Copies of entries (a retried batch writes its entries again, after
	// later ones possibly) add nothing: the last entry again; a peer's
	// "stopped" entry again; and alice's first two entries again, after
	// her later ones.
	entries, _ := c.XRange(context.Background(), "s", "-", "+").Result()
	copyOf := func(what string, ms ...redis.XMessage) {
		t.Helper()
		var id string
		for _, m := range ms {
			var err error
			if id, err = c.XAdd(context.Background(), &redis.XAddArgs{Stream: "s", Values: m.Values}).Result(); err != nil {
				t.Fatal(err)
			}
		}
		consumed(t, c, id)
		if msg := check(); msg != "" {
			t.Fatalf("after a copy of %s: %s", what, msg)
		}
	}
	copyOf("the last entry", entries[len(entries)-1])
	for _, m := range entries {
		if m.Values["event"] == "stopped" {
			copyOf("a stopped entry", m)
		}
	}
	copyOf("earlier entries", entries[0], entries[1])
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// An entry delivered to the consumer that stopped before accounting
	// it is accounted when the consumer starts again.
	announce("alice", 1, bittorrent.None, 400, 80)
	eventually.True(t, "the new entry in the stream", func() bool {
		n, _ := c.XLen(context.Background(), "s").Result()
		return n == int64(len(entries))+5
	})
	if res, err := c.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: "accounting", Consumer: "w1", Streams: []string{"s", ">"}, Count: 10}).Result(); err != nil || len(res[0].Messages) != 1 {
		t.Fatalf("reading the new entry without accounting it: %v %v", res, err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { done <- consume(ctx, c, "s", "accounting", "w1") }()
	want["user:alice"] = map[string]string{"uploaded": "400", "downloaded": "80"}
	eventually.Holds(t, check)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// consumed waits until the group has delivered and acknowledged the entry
// id.
func consumed(t *testing.T, c *redis.Client, id string) {
	t.Helper()
	eventually.True(t, "entry "+id+" consumed", func() bool {
		p, _ := c.XPending(context.Background(), "s", "accounting").Result()
		g, _ := c.XInfoGroups(context.Background(), "s").Result()
		return p != nil && p.Count == 0 && len(g) == 1 && g[0].LastDeliveredID == id
	})
}

// TestDocumentQuotesThisProgram keeps docs/private-tracker.md's consumer
// the program tested here.
func TestDocumentQuotesThisProgram(t *testing.T) {
	doc, err := os.ReadFile("../../private-tracker.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```go\n"+string(src)+"```\n") {
		t.Fatal("docs/private-tracker.md does not quote docs/examples/accounting/main.go whole in a ```go block; copy it again")
	}
}
