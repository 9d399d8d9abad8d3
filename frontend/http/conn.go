package http

import (
	"strconv"

	"github.com/chihaya/chihaya/bittorrent"
)

// errHeaderTooLarge has no constant in bittorrent: it never reaches the
// logic, only this frontend's refusal of a request head over
// max_header_bytes.
const errHeaderTooLarge = bittorrent.ClientError("request headers too large")

// The whole responses to requests that are not valid HTTP, or whose head
// is over max_header_bytes: a bencoded failure, and the connection closed.
var (
	failureBadRequest     = refusalResponse(string(bittorrent.ErrMalformedRequest))
	failureHeaderTooLarge = refusalResponse(string(errHeaderTooLarge))
)

// refusalResponse builds a complete HTTP response carrying a bencoded
// failure, announcing the close that follows.
func refusalResponse(reason string) []byte {
	body := appendFailure(nil, reason)
	b := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: ")
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n\r\n"...)
	return append(b, body...)
}
