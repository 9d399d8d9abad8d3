package websocket

import (
	"encoding/json"
	"strings"
	"testing"

	gws "github.com/gorilla/websocket"

	"github.com/chihaya/chihaya/frontend/frontendtest"
	"github.com/chihaya/chihaya/storage/redis/redistest"
)

// TestBadInputBothStores sends the list of bad input, each from
// a connection that may already be in the swarm, over the memory store
// and over the Redis store (which applies an announce as it answers it):
// each gets its failure reason, is counted under its reason, and leaves
// the swarm's counts as they were.
func TestBadInputBothStores(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		testBadInput(t, newTracker(t, Config{MaxOffers: 2}))
	})
	t.Run("redis", func(t *testing.T) {
		srv := redistest.Start(t, "redis-server")
		testBadInput(t, redisTrackers(t, srv.Addr, 1, func(c *Config) { c.MaxOffers = 2 })[0])
	})
}

func testBadInput(t *testing.T, tr *tracker) {
	owner, seeder, c := tr.dial(t, "/"), tr.dial(t, "/"), tr.dial(t, "/")
	owner.send(announceMsg(ih1, peerID(1), 100))
	owner.read()
	seeder.send(announceMsg(ih1, peerID(2), 0))
	seeder.read()

	raw := func(m map[string]any, edit func(map[string]any)) string {
		edit(m)
		b, _ := json.Marshal(m)
		return string(b)
	}
	ann := func(edit func(map[string]any)) string { return raw(announceMsg(ih1, peerID(3), 50), edit) }
	answer := func(to, offer [20]byte) string {
		return raw(map[string]any{"action": "announce", "info_hash": bs(ih1[:]), "peer_id": bsa(peerID(3)),
			"to_peer_id": bsa(to), "offer_id": bsa(offer), "answer": map[string]any{"type": "answer", "sdp": "x"}}, func(map[string]any) {})
	}
	cases := []struct {
		name, msg, want, reason string
		joined                  bool // sent once c is in the swarm as peerID(3)
	}{
		{"malformed JSON", `{"action":"announce",`, string(errMalformed), "malformed_json", false},
		{"info_hash above U+00FF", ann(func(m map[string]any) { m["info_hash"] = "Ā" + strings.Repeat("a", 19) }), string(errInvalidInfoHash), "invalid_info_hash", false},
		{"peer_id of 19 characters", ann(func(m map[string]any) { m["peer_id"] = strings.Repeat("a", 19) }), string(errInvalidPeerID), "invalid_peer_id", false},
		{"left a string", ann(func(m map[string]any) { m["left"] = "x" }), string(errInvalidNumber), "invalid_number", false},
		{"offers not a list", ann(func(m map[string]any) { m["offers"] = "x" }), string(errInvalidOffers), "invalid_offers", false},
		{"unknown action", `{"action":"connect"}`, string(errInvalidAction), "unknown_action", false},
		{"too many offers", raw(announceMsg(ih1, peerID(3), 50, offerN(1), offerN(2), offerN(3)), func(map[string]any) {}), string(errTooManyOffers), "too_many_offers", false},
		{"peer_id claimed by another connection", raw(announceMsg(ih1, peerID(1), 0), func(map[string]any) {}), string(errPeerIDTaken), "peer_id_taken", false},
		{"answer before announcing", answer(peerID(2), offerN(1)), string(errNotAnnounced), "answer_not_announced", false},
		{"peer_id changed", raw(announceMsg(ih1, peerID(4), 0), func(map[string]any) {}), string(errPeerIDChanged), "peer_id_changed", true},
		{"answer to an offer never made", answer(peerID(2), offerN(1)), string(errUnknownOffer), "unknown_offer", true},
		{"to_peer_id not in the swarm", answer(peerID(9), offerN(1)), string(errUnknownToPeerID), "unknown_to_peer_id", true},
	}
	joined := false
	for _, tc := range cases {
		if tc.joined && !joined {
			c.send(announceMsg(ih1, peerID(3), 50))
			if r := c.read(); r["failure reason"] != nil {
				t.Fatalf("joining: %v", r)
			}
			joined = true
		}
		co, inc := scrapeCounts(c.sync(ih1), ih1)
		before := frontendtest.ErrorsCounted("websocket", tc.reason)
		if err := c.ws.WriteMessage(gws.TextMessage, []byte(tc.msg)); err != nil {
			t.Fatal(err)
		}
		if r := c.read(); r["failure reason"] != tc.want {
			t.Errorf("%s: got %v, want the failure %q", tc.name, r, tc.want)
		}
		if d := frontendtest.ErrorsCounted("websocket", tc.reason) - before; d != 1 {
			t.Errorf("%s: counted %v times under %q, want once", tc.name, d, tc.reason)
		}
		if co2, inc2 := scrapeCounts(c.sync(ih1), ih1); co2 != co || inc2 != inc {
			t.Errorf("%s: the swarm went from %d/%d to %d/%d", tc.name, co, inc, co2, inc2)
		}
	}
}
