package http

import (
	"slices"
	"strconv"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/frontend/http/bencode"
)

// appendAnnounce appends the bencoded reply to an announce.
//
// Compact replies (BEP 23) put IPv4 peers in `peers`, 6 bytes each, and
// IPv6 peers in `peers6`, 18 bytes each (BEP 7). `peers` is always present,
// empty for an IPv6 announcer, because some clients treat a reply without it
// as broken. Non-compact replies list every peer as a dictionary under
// `peers`, with its address in text form. `external ip` (BEP 24) carries the
// address the tracker registered for the announcer.
func appendAnnounce(dst []byte, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) []byte {
	d := bencode.BeginDict(dst)
	d.Uint("complete", uint64(resp.Complete))
	d.Uint("downloaded", uint64(resp.Downloaded))
	if a := req.Peer.AddrPort.Addr(); a.Is4() {
		b := a.As4()
		d.Bytes("external ip", b[:])
	} else if a.Is6() {
		b := a.As16()
		d.Bytes("external ip", b[:])
	}
	d.Uint("incomplete", uint64(resp.Incomplete))
	d.Int("interval", int64(resp.Interval/time.Second))
	d.Int("min interval", int64(resp.MinInterval/time.Second))
	if req.Compact {
		n4, n6 := 0, 0
		for i := range resp.Peers {
			if resp.Peers[i].AddrPort.Addr().Is4() {
				n4++
			} else {
				n6++
			}
		}
		d.Key("peers")
		d.B = bencode.AppendStringHeader(d.B, 6*n4)
		d.B = appendCompact(d.B, resp.Peers, true)
		if n6 > 0 || req.Peer.AddrPort.Addr().Is6() {
			d.Key("peers6")
			d.B = bencode.AppendStringHeader(d.B, 18*n6)
			d.B = appendCompact(d.B, resp.Peers, false)
		}
	} else {
		d.Key("peers")
		d.B = bencode.AppendListStart(d.B)
		for i := range resp.Peers {
			d.B = appendPeerDict(d.B, &resp.Peers[i], req.NoPeerID)
		}
		d.B = bencode.AppendEnd(d.B)
	}
	return d.End()
}

// appendCompact appends the compact form of the peers of one family:
// address then big-endian port.
func appendCompact(dst []byte, peers []bittorrent.Peer, v4 bool) []byte {
	for i := range peers {
		a := peers[i].AddrPort.Addr()
		if a.Is4() != v4 {
			continue
		}
		if v4 {
			b := a.As4()
			dst = append(dst, b[:]...)
		} else {
			b := a.As16()
			dst = append(dst, b[:]...)
		}
		port := peers[i].AddrPort.Port()
		dst = append(dst, byte(port>>8), byte(port))
	}
	return dst
}

// appendPeerDict appends one peer of a non-compact reply.
func appendPeerDict(dst []byte, p *bittorrent.Peer, noPeerID bool) []byte {
	var text [64]byte
	d := bencode.BeginDict(dst)
	d.Bytes("ip", p.AddrPort.Addr().AppendTo(text[:0]))
	// An all-zero ID is one the store did not keep (the memory store's
	// keep_peer_ids off): the key is left out, as opentracker does.
	if !noPeerID && p.ID != (bittorrent.PeerID{}) {
		d.Bytes("peer id", p.ID[:])
	}
	d.Uint("port", uint64(p.AddrPort.Port()))
	return d.End()
}

// appendScrape appends the bencoded reply to a scrape (BEP 48). The files
// dictionary needs sorted, unique keys: the parser hands the logic sorted,
// unique info hashes, but should the logic return them otherwise, the
// files are sorted here and repeats dropped.
func appendScrape(dst []byte, resp *bittorrent.ScrapeResponse) []byte {
	if !slices.IsSortedFunc(resp.Files, compareScrape) {
		slices.SortFunc(resp.Files, compareScrape)
	}
	d := bencode.BeginDict(dst)
	d.Key("files")
	files := bencode.BeginDict(d.B)
	for i := range resp.Files {
		s := &resp.Files[i]
		if i > 0 && s.InfoHash == resp.Files[i-1].InfoHash {
			continue
		}
		files.KeyBytes(s.InfoHash[:])
		f := bencode.BeginDict(files.B)
		f.Uint("complete", uint64(s.Complete))
		f.Uint("downloaded", uint64(s.Downloaded))
		f.Uint("incomplete", uint64(s.Incomplete))
		files.B = f.End()
	}
	d.B = files.End()
	return d.End()
}

func compareScrape(a, b bittorrent.Scrape) int { return compareInfoHash(a.InfoHash, b.InfoHash) }

// appendFailure appends the reply to a refused request: a dictionary with
// the single key `failure reason`.
func appendFailure(dst []byte, reason string) []byte {
	d := bencode.BeginDict(dst)
	d.String("failure reason", reason)
	return d.End()
}

// replyHeadRoom is the room left before a reply's body in its buffer for
// the status line and headers, so that both go out in one write.
const replyHeadRoom = 128

// replyBuf returns buf emptied down to the head room, for a body to be
// appended to.
func replyBuf(buf []byte) []byte {
	if cap(buf) < replyHeadRoom+256 {
		buf = make([]byte, replyHeadRoom, replyHeadRoom+512)
	}
	return buf[:replyHeadRoom]
}

// reply writes buf[replyHeadRoom:] (see replyBuf) as a whole 200 reply
// with its Content-Length, the head written into the room before it.
func (c *conn) reply(r *request, buf []byte) {
	var h [replyHeadRoom]byte
	head := appendHead(h[:0], r, len(buf)-replyHeadRoom)
	start := replyHeadRoom - len(head)
	copy(buf[start:], head)
	if string(r.method) == "HEAD" {
		// The head says what a GET would get; a body would be read as
		// the next response.
		buf = buf[:replyHeadRoom]
	}
	c.write(buf[start:]) //nolint:errcheck // kept in c.werr
}

// replyStatic writes body, which the caller does not own, as a whole 200
// reply.
func (c *conn) replyStatic(r *request, body []byte) {
	b := replyBuf(nil)
	c.reply(r, append(b, body...))
}

// appendHead appends the status line and headers of a 200 reply whose
// body has n bytes (n < 0: chunked).
func appendHead(b []byte, r *request, n int) []byte {
	b = append(b, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"...)
	if n >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, int64(n), 10)
		b = append(b, "\r\n"...)
	}
	switch {
	case r.close:
		b = append(b, "Connection: close\r\n"...)
	case r.http10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return append(b, "\r\n"...)
}

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
