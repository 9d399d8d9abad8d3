package websocket

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend"
)

// The reasons, beside those of frontend.ReasonOf, under which the
// WebSocket frontend counts a refused message or a closed connection in
// chihaya_frontend_errors_total{frontend="websocket"}.
const (
	reasonBinaryFrame      = "binary_frame"
	reasonMessageTooBig    = "message_too_big"
	reasonIdleTimeout      = "idle_timeout"
	reasonWriteTimeout     = "write_error"
	reasonOriginRefused    = "origin_refused"
	reasonTooManyConns     = "too_many_connections"
	reasonUpgradeFailed    = "upgrade_failed"
	reasonConnectionInUse  = "connection_in_use"
	reasonSendQueueFull    = "send_queue_full"
	reasonProtocolError    = "protocol_error"
	reasonShuttingDown     = "shutting_down"
	reasonUnknownPath      = "unknown_path"
	reasonUnknownAddress   = "unknown_address"
	reasonMissingInfoHash  = "missing_info_hash"
	reasonMissingPeerID    = "missing_peer_id"
	reasonFullScrape       = "full_scrape_disabled"
	reasonInternal         = "internal"
	reasonRefusedByHook    = "refused"
	reasonPanic            = "panic"
	reasonMalformedMessage = "malformed_json"
)

// reasons names the client errors of this frontend as metric reasons.
var reasons = map[bittorrent.ClientError]string{
	errMalformed:        reasonMalformedMessage,
	errInvalidInfoHash:  "invalid_info_hash",
	errInvalidPeerID:    "invalid_peer_id",
	errInvalidToPeerID:  "invalid_to_peer_id",
	errInvalidOfferID:   "invalid_offer_id",
	errInvalidAction:    "unknown_action",
	errInvalidOffers:    "invalid_offers",
	errTooManyOffers:    "too_many_offers",
	errInvalidAnswer:    "invalid_answer",
	errInvalidNumber:    "invalid_number",
	errMissingToPeerID:  "missing_to_peer_id",
	errMissingOfferID:   "missing_offer_id",
	errPeerIDTaken:      "peer_id_taken",
	errPeerIDChanged:    "peer_id_changed",
	errTooManySwarms:    "too_many_swarms",
	errNotAnnounced:     "answer_not_announced",
	errUnknownToPeerID:  "unknown_to_peer_id",
	errUnknownOffer:     "unknown_offer",
	errTooManyHashes:    "too_many_info_hashes",
	errInfoHashListOnly: "invalid_info_hash",
}

// reasonOf is frontend.ReasonOf, knowing this frontend's errors too.
func reasonOf(err error) string {
	if ce, ok := err.(bittorrent.ClientError); ok {
		if r, ok := reasons[ce]; ok {
			return r
		}
	}
	return frontend.ReasonOf(err)
}

// knownReasons are created at registration.
func knownReasons() []string {
	rs := []string{
		reasonBinaryFrame, reasonMessageTooBig, reasonIdleTimeout, reasonWriteTimeout, reasonOriginRefused,
		reasonTooManyConns, reasonUpgradeFailed, reasonConnectionInUse, reasonSendQueueFull, reasonProtocolError,
		reasonShuttingDown, reasonUnknownPath, reasonUnknownAddress, reasonMissingInfoHash, reasonMissingPeerID, reasonFullScrape,
		reasonInternal, reasonRefusedByHook, reasonPanic, "invalid_event",
	}
	seen := map[string]bool{}
	for _, r := range rs {
		seen[r] = true
	}
	for _, r := range reasons {
		if !seen[r] {
			seen[r] = true
			rs = append(rs, r)
		}
	}
	return rs
}

// relayKind is what a relay carried; relayResult how it ended. Both are
// metric labels.
type (
	relayKind   uint8
	relayResult uint8
)

const (
	relayOffer relayKind = iota
	relayAnswer
	numRelayKinds
)

const (
	// relaySent: queued on the receiver's connection.
	relaySent relayResult = iota
	// relayQueueFull: dropped, the receiver's send queue was full.
	relayQueueFull
	// relayPeerGone: dropped, the receiver's connection had closed.
	relayPeerGone
	// relayNoPeer: an offer dropped because the swarm had fewer other
	// WebSocket peers than the announce had offers.
	relayNoPeer
	// relayUnmatched: an answer refused, matching no offer relayed to its
	// sender within offer_timeout.
	relayUnmatched
	// relayForwarded: handed to the instance that holds the receiver's
	// socket (the store's relay counts what becomes of it there).
	relayForwarded
	// relayMalformed: a message from another instance that could not be
	// read (instances of different versions).
	relayMalformed
	numRelayResults
)

var (
	relayKindNames   = [numRelayKinds]string{"offer", "answer"}
	relayResultNames = [numRelayResults]string{"sent", "queue_full", "peer_gone", "no_peer", "unmatched", "forwarded", "malformed"}

	connectionsOpen = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chihaya",
		Subsystem: "websocket",
		Name:      "connections",
		Help:      "Open WebSocket connections.",
	})

	relayedTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "websocket",
		Name:      "relayed_total",
		Help:      "WebRTC offers and answers relayed between WebSocket peers, by message and result.",
	}, []string{"message", "result"})

	relayed [numRelayKinds][numRelayResults]prometheus.Counter
)

func init() {
	prometheus.MustRegister(connectionsOpen, relayedTotal)
	// Only the combinations that can happen get a series.
	for k := range relayed {
		for r := range relayed[k] {
			if r == int(relayNoPeer) && k == int(relayAnswer) || r == int(relayUnmatched) && k == int(relayOffer) {
				continue
			}
			relayed[k][r] = relayedTotal.WithLabelValues(relayKindNames[k], relayResultNames[r])
		}
	}
}

func observeRelay(k relayKind, r relayResult) { relayed[k][r].Inc() }
