package websocket

import (
	"testing"
)

// TestUnmatchedAnswerAcrossInstances: an answer to a browser of another
// instance that matches no offer (replayed, or with an offer_id never
// relayed) is refused as on one instance, "could not find the offer",
// not as if the offerer were unknown; an answer to a peer ID that never
// offered anything is refused for its to_peer_id.
func TestUnmatchedAnswerAcrossInstances(t *testing.T) {
	_, a, b := offerAcrossInstances(t)
	if o := a.read(); o["offer_id"] != bsa(offerN(1)) {
		t.Fatalf("offer: %v", o)
	}
	answer := map[string]any{"action": "announce", "info_hash": bs(ih1[:]), "peer_id": bsa(peerID(1)),
		"to_peer_id": bsa(peerID(2)), "offer_id": bsa(offerN(1)), "answer": map[string]any{"type": "answer", "sdp": "s"}}
	a.send(answer)
	if r := b.read(); r["offer_id"] != bsa(offerN(1)) {
		t.Fatalf("answer relayed: %v", r)
	}
	for _, tc := range []struct {
		name    string
		to, off [20]byte
		want    string
	}{
		{"replayed", peerID(2), offerN(1), string(errUnknownOffer)},
		{"offer never relayed", peerID(2), offerN(7), string(errUnknownOffer)},
		{"peer never seen", peerID(9), offerN(1), string(errUnknownToPeerID)},
	} {
		answer["to_peer_id"], answer["offer_id"] = bsa(tc.to), bsa(tc.off)
		a.send(answer)
		if r := a.read(); r["failure reason"] != tc.want {
			t.Errorf("%s: %v, want the failure %q", tc.name, r, tc.want)
		}
	}
}
