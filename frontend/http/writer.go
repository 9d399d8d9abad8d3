package http

import (
	"slices"
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
