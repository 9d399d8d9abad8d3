package bittorrent

import "errors"

// ClientError is an error whose text is safe and useful to show to a client:
// HTTP frontends send it as the bencoded `failure reason`, UDP frontends as
// an error packet. Anything that is not a ClientError reaches the client as
// ErrInternal, so internal details never leak.
type ClientError string

// Error returns the text the client sees.
func (e ClientError) Error() string { return string(e) }

// The client errors raised by the frontends and the core logic. Hooks define
// their own next to the hook.
const (
	ErrInvalidInfoHash    = ClientError("invalid info_hash: must be 20 bytes")
	ErrMissingInfoHash    = ClientError("missing info_hash")
	ErrInvalidPeerID      = ClientError("invalid peer_id: must be 20 bytes")
	ErrMissingPeerID      = ClientError("missing peer_id")
	ErrInvalidPort        = ClientError("invalid port: must be 1-65535")
	ErrMissingPort        = ClientError("missing port")
	ErrInvalidNumWant     = ClientError("invalid numwant: must be a non-negative integer")
	ErrInvalidEvent       = ClientError("invalid event: must be started, stopped, completed or empty")
	ErrInvalidLeft        = ClientError("invalid left: must be a non-negative integer")
	ErrMissingLeft        = ClientError("missing left")
	ErrInvalidUploaded    = ClientError("invalid uploaded: must be a non-negative integer")
	ErrInvalidDownloaded  = ClientError("invalid downloaded: must be a non-negative integer")
	ErrInvalidEscape      = ClientError("invalid query: malformed percent-escape")
	ErrInvalidIP          = ClientError("invalid ip: not an IP address")
	ErrInvalidQuery       = ClientError("invalid query")
	ErrTooManyInfoHashes  = ClientError("too many info_hash values in one scrape")
	ErrFullScrapeDisabled = ClientError("full scrape is disabled: give at least one info_hash")
	ErrFullScrapeTooSoon  = ClientError("full scrape refused: too soon after the last one from this address")
	ErrFullScrapeBusy     = ClientError("full scrape refused: the most at once are being served")
	ErrUnknownAddress     = ClientError("cannot determine the client's address")
	ErrInternal           = ClientError("internal tracker error")
	ErrMalformedRequest   = ClientError("malformed request")
	// ErrBadConnectionID is at most 28 bytes, so that its error packet is
	// no larger than the smallest scrape (36 bytes) a client whose
	// connection ID expired may send: refusals are never larger than the
	// request (frontend/udp), and a longer text would drop the scrape
	// unanswered instead of telling the client to connect again.
	ErrBadConnectionID     = ClientError("bad connection ID; reconnect")
	ErrUnknownAction       = ClientError("unknown action")
	ErrUnsupportedProtocol = ClientError("unsupported protocol")
)

// AsClientError finds the ClientError in err's chain. The common case, a
// bare ClientError, is checked first, because errors.As allocates.
func AsClientError(err error) (ClientError, bool) {
	if ce, ok := err.(ClientError); ok {
		return ce, true
	}
	var ce ClientError
	if errors.As(err, &ce) {
		return ce, true
	}
	return "", false
}

// ClientText returns the text a client may be shown for err: a
// ClientError's own text, otherwise ErrInternal's, so that internal
// details never reach a client.
func ClientText(err error) string {
	if ce, ok := AsClientError(err); ok {
		return string(ce)
	}
	return string(ErrInternal)
}
