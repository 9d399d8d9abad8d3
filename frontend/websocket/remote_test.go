package websocket

import (
	"bytes"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
)

// TestRemoteRoundTrip: what appendRemote writes, parse reads back, for
// both families and both kinds.
func TestRemoteRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		kind     remoteKind
		from, to string
	}{
		{"offer IPv4", remoteOffer, "10.0.0.1:5000", "10.0.0.2:6000"},
		{"answer IPv6", remoteAnswer, "[2001:db8::1]:443", "[2001:db8::2]:65535"},
		{"mixed", remoteOffer, "127.0.0.1:1", "[::1]:2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ih, from, to, oid := bittorrent.InfoHash(ih1), bittorrent.PeerID(peerID(1)), bittorrent.PeerID(peerID(2)), offerN(3)
			sdp := []byte(`{"type":"offer","sdp":"v=0\r\n"}`)
			b := appendRemote(nil, tc.kind, 4242, netipMust(tc.from), netipMust(tc.to), &ih, &from, &to, &oid, sdp)
			var r remoteMessage
			if !r.parse(b) {
				t.Fatalf("parse(%x) failed", b)
			}
			if r.kind != tc.kind || r.fromInstance != 4242 || r.from != netipMust(tc.from) || r.to != netipMust(tc.to) ||
				r.ih != ih || r.fromID != from || r.toID != to || r.offerID != oid || !bytes.Equal(r.sdp, sdp) {
				t.Errorf("read back %+v", r)
			}
		})
	}
}

// FuzzRemoteMessage: whatever another instance (or a stranger with access
// to Redis) publishes, parse never panics, and what it accepts writes
// back to the same bytes.
func FuzzRemoteMessage(f *testing.F) {
	ih, from, to, oid := bittorrent.InfoHash(ih1), bittorrent.PeerID(peerID(1)), bittorrent.PeerID(peerID(2)), offerN(3)
	f.Add(appendRemote(nil, remoteOffer, 1, netipMust("10.0.0.1:5000"), netipMust("10.0.0.2:6000"), &ih, &from, &to, &oid, []byte(`{"type":"offer","sdp":"x"}`)))
	f.Add(appendRemote(nil, remoteAnswer, 65535, netipMust("[::1]:1"), netipMust("[::2]:2"), &ih, &from, &to, &oid, []byte(`{}`)))
	f.Add([]byte{remoteVersion, 'o', 0, 1, 18})
	f.Fuzz(func(t *testing.T, b []byte) {
		var r remoteMessage
		if !r.parse(b) {
			return
		}
		again := appendRemote(nil, r.kind, r.fromInstance, r.from, r.to, &r.ih, &r.fromID, &r.toID, &r.offerID, r.sdp)
		if !bytes.Equal(again, b) {
			t.Fatalf("parse(%x) = %+v, which writes %x", b, r, again)
		}
	})
}
