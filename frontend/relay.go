package frontend

import (
	"context"

	"github.com/chihaya/chihaya/bittorrent"
)

// Relay carries messages between the tracker instances that share a
// store, so that the WebSocket frontend of one instance can reach a
// browser whose socket another instance holds (its offers and answers).
// The messages are the frontend's own bytes: the relay only addresses
// them to an instance. Each instance has a number, which the store writes
// into the records of the WebSocket peers it stores
// (bittorrent.Peer.Instance), so that whoever draws a peer knows where
// its socket is.
type Relay interface {
	// Instance is this instance's number (never 0).
	Instance() uint16
	// Publish sends a copy of msg to instance to. It never blocks: a
	// message for an instance found gone, or one that cannot be queued,
	// is dropped and counted by the relay.
	Publish(to uint16, msg []byte)
	// Receive makes fn the receiver of the messages published to this
	// instance; it is called from one goroutine, in order, and msg is
	// only valid during the call. nil stops the delivery.
	Receive(fn func(msg []byte))
}

// RelayProvider is implemented by a TrackerLogic whose store is shared by
// several instances and relays between them. Relay returns nil when the
// store does not relay (it is the process's alone).
type RelayProvider interface {
	Relay() Relay
}

// Leaver is implemented by a TrackerLogic that can take a peer out of a
// swarm when its connection closed without a `stopped` (a WebSocket
// peer): req is the `stopped` announce the peer would have sent. The
// prehooks do not run; the posthooks do. Without it, a frontend calls
// AfterAnnounce.
type Leaver interface {
	Leave(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse)
}
