package websocket

import (
	"strconv"

	"github.com/chihaya/chihaya/bittorrent"
)

// The writers append one whole message to dst and return it: the buffers
// are pooled, so writing a message allocates nothing.

// appendBinary appends b as a JSON binary string: each byte the code point
// of its value, which UTF-8 turns into two bytes from 0x80 on. This is
// never base64, whatever a JSON library would do with a byte slice.
func appendBinary(dst []byte, b []byte) []byte {
	dst = append(dst, '"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xF])
		case c < 0x80:
			dst = append(dst, c)
		default:
			dst = append(dst, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return append(dst, '"')
}

const hexDigit = "0123456789abcdef"

// appendString appends s, a text of ours (never client input), as a JSON
// string.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigit[c>>4], hexDigit[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// appendAnnounceReply appends the reply to an announce: the counts and the
// interval, never a peer list.
func appendAnnounceReply(dst []byte, ih *bittorrent.InfoHash, complete, incomplete uint32, intervalSeconds int64) []byte {
	dst = append(dst, `{"action":"announce","info_hash":`...)
	dst = appendBinary(dst, ih[:])
	dst = append(dst, `,"complete":`...)
	dst = strconv.AppendUint(dst, uint64(complete), 10)
	dst = append(dst, `,"incomplete":`...)
	dst = strconv.AppendUint(dst, uint64(incomplete), 10)
	dst = append(dst, `,"interval":`...)
	dst = strconv.AppendInt(dst, intervalSeconds, 10)
	return append(dst, '}')
}

// appendRelay appends an offer (kind "offer") or an answer (kind
// "answer") as relayed to its receiver: from is the sender's peer ID, sdp
// the sender's object as it came.
func appendRelay(dst []byte, ih *bittorrent.InfoHash, from *bittorrent.PeerID, offerID *[20]byte, kind string, sdp []byte) []byte {
	dst = append(dst, `{"action":"announce","info_hash":`...)
	dst = appendBinary(dst, ih[:])
	dst = append(dst, `,"peer_id":`...)
	dst = appendBinary(dst, from[:])
	dst = append(dst, `,"offer_id":`...)
	dst = appendBinary(dst, offerID[:])
	dst = append(dst, ',', '"')
	dst = append(dst, kind...)
	dst = append(dst, '"', ':')
	dst = append(dst, sdp...)
	return append(dst, '}')
}

// appendScrape appends the reply to a scrape. A hash asked for twice is
// answered once.
func appendScrape(dst []byte, files []bittorrent.Scrape) []byte {
	dst = append(dst, `{"action":"scrape","files":{`...)
	first := true
files:
	for i := range files {
		for j := range i {
			if files[j].InfoHash == files[i].InfoHash {
				continue files
			}
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		f := &files[i]
		dst = appendBinary(dst, f.InfoHash[:])
		dst = append(dst, `:{"complete":`...)
		dst = strconv.AppendUint(dst, uint64(f.Complete), 10)
		dst = append(dst, `,"incomplete":`...)
		dst = strconv.AppendUint(dst, uint64(f.Incomplete), 10)
		dst = append(dst, `,"downloaded":`...)
		dst = strconv.AppendUint(dst, uint64(f.Downloaded), 10)
		dst = append(dst, '}')
	}
	return append(dst, '}', '}')
}

// appendFailure appends a failure: its reason and, when the message got
// that far, its action and info hash (a WebTorrent client shares one
// connection among its torrents and routes messages by info hash).
func appendFailure(dst []byte, reason string, a action, ih *bittorrent.InfoHash) []byte {
	dst = append(dst, `{"failure reason":`...)
	dst = appendString(dst, reason)
	if a != actionNone {
		dst = append(dst, `,"action":"`...)
		dst = append(dst, a.String()...)
		dst = append(dst, '"')
	}
	if ih != nil {
		dst = append(dst, `,"info_hash":`...)
		dst = appendBinary(dst, ih[:])
	}
	return append(dst, '}')
}
