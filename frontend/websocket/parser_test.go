package websocket

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chihaya/chihaya/bittorrent"
)

// binStr returns b as the JavaScript binary string a WebTorrent client
// sends, JSON-encoded by Go's encoder (an independent writer).
func binStr(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	out, err := json.Marshal(string(r))
	if err != nil {
		panic(err)
	}
	return string(out)
}

// bytesOf turns a decoded binary string back into bytes, failing on a
// code point above 0xFF.
func bytesOf(t testing.TB, s string) []byte {
	t.Helper()
	var b []byte
	for _, r := range s {
		if r > 0xFF {
			t.Fatalf("code point %U above U+00FF in %q", r, s)
		}
		b = append(b, byte(r))
	}
	return b
}

// Bytes that exercise every encoding: high bytes (two UTF-8 bytes), a
// quote, a backslash and control characters.
var (
	ihHigh  = [20]byte{0x00, 0x01, 0x1f, '"', '\\', 0x7f, 0x80, 0xc3, 0xff, 0xfe, 'a', 'b', 0x20, 0x0a, 0x90, 0xa0, 0xb0, 0xe0, 0xf0, 0x10}
	peerA   = [20]byte{'-', 'W', 'W', '0', '1', '0', '0', '-', 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 1, 2, 3, 4, 5, 6}
	offerID = [20]byte{0xf0, 0xe1, 0xd2, 0xc3, 0xb4, 0xa5, 0x96, 0x87, 0x78, 0x69, 0x5a, 0x4b, 0x3c, 0x2d, 0x1e, 0x0f, 0, 0xff, 0x80, 0x7f}
)

func parse(t testing.TB, s string) (*message, error) {
	t.Helper()
	m := new(message)
	return m, parseMessage([]byte(s), m, 10, 255)
}

func TestParseAnnounceWithOffers(t *testing.T) {
	msg := `{"action":"announce","info_hash":` + binStr(ihHigh[:]) + `,"peer_id":` + binStr(peerA[:]) +
		`,"uploaded":10,"downloaded":20,"left":30,"event":"started","numwant":2,"trackerid":{"x":[1,2,{"y":null}]},` +
		`"offers":[{"offer":{"type":"offer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"},"offer_id":` + binStr(offerID[:]) + `},` +
		`{"offer_id":` + binStr(peerA[:]) + `,"offer":{"type":"offer","sdp":"é"}}]}`
	m, err := parse(t, msg)
	if err != nil {
		t.Fatal(err)
	}
	if m.action != actionAnnounce || m.infoHash != ihHigh || m.peerID != peerA || !m.hasInfoHash || !m.hasPeerID {
		t.Errorf("ids: %+v", m)
	}
	if m.uploaded != 10 || m.downloaded != 20 || m.left != 30 || m.event != bittorrent.Started {
		t.Errorf("numbers or event: %d %d %d %v", m.uploaded, m.downloaded, m.left, m.event)
	}
	if len(m.offers) != 2 || m.offers[0].id != offerID || m.offers[1].id != peerA {
		t.Fatalf("offers: %+v", m.offers)
	}
	var o struct{ Type, SDP string }
	if err := json.Unmarshal(m.offers[0].sdp, &o); err != nil || o.Type != "offer" || !strings.HasPrefix(o.SDP, "v=0\r\n") {
		t.Errorf("offer 0 = %q (%v)", m.offers[0].sdp, err)
	}
	if string(m.offers[1].sdp) != `{"type":"offer","sdp":"é"}` {
		t.Errorf("offer 1 = %q, want the object as sent", m.offers[1].sdp)
	}
}

func TestParseAnswerAndScrape(t *testing.T) {
	m, err := parse(t, `{"action":"announce","info_hash":`+binStr(ihHigh[:])+`,"peer_id":`+binStr(peerA[:])+
		`,"to_peer_id":`+binStr(offerID[:])+`,"offer_id":`+binStr(offerID[:])+`,"answer":{"type":"answer","sdp":"x"}}`)
	if err != nil {
		t.Fatal(err)
	}
	if m.toPeerID != offerID || m.offerID != offerID || string(m.answer) != `{"type":"answer","sdp":"x"}` || m.left != math.MaxUint64 {
		t.Errorf("answer: %+v", m)
	}
	m, err = parse(t, `{"action":"scrape","info_hash":[`+binStr(ihHigh[:])+`, `+binStr(peerA[:])+`]}`)
	if err != nil || len(m.infoHashes) != 2 || m.infoHashes[0] != ihHigh || m.infoHashes[1] != peerA {
		t.Errorf("scrape list: %+v, %v", m.infoHashes, err)
	}
	m, err = parse(t, `{"info_hash":`+binStr(peerA[:])+`,"action":"scrape"}`)
	if err != nil || len(m.infoHashes) != 1 || m.infoHashes[0] != peerA {
		t.Errorf("scrape one: %+v, %v", m.infoHashes, err)
	}
	// Escapes a client may send for any character.
	esc := `"\u0000\u00ff\u00FF\"\\\/\b\f\n\r\tabcdefghi"`
	m, err = parse(t, `{"action":"announce","info_hash":`+esc+`,"left":null,"event":"update","uploaded":1.5e3}`)
	want := [20]byte{0, 0xff, 0xff, '"', '\\', '/', '\b', '\f', '\n', '\r', '\t', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'}
	if err != nil || m.infoHash != want || m.left != math.MaxUint64 || m.event != bittorrent.None || m.uploaded != 1500 {
		t.Errorf("escapes: %x left %d event %v uploaded %d, %v", m.infoHash, m.left, m.event, m.uploaded, err)
	}
}

func TestParseRejects(t *testing.T) {
	ih := binStr(ihHigh[:])
	offer := `{"offer":{"type":"offer","sdp":"x"},"offer_id":` + ih + `}`
	for _, tc := range []struct {
		name, msg string
		want      error
	}{
		{"not JSON", `announce`, errMalformed},
		{"array", `[]`, errMalformed},
		{"trailing garbage", `{"action":"scrape","info_hash":` + ih + `} x`, errMalformed},
		{"unterminated", `{"action":"announce"`, errMalformed},
		{"invalid UTF-8", "{\"action\":\"announce\",\"x\":\"\xff\"}", errMalformed},
		{"no action", `{"info_hash":` + ih + `}`, errInvalidAction},
		{"unknown action", `{"action":"connect"}`, errInvalidAction},
		{"action not a string", `{"action":1}`, errInvalidAction},
		{"info_hash short", `{"action":"announce","info_hash":"abc"}`, errInvalidInfoHash},
		{"info_hash long", `{"action":"announce","info_hash":"` + strings.Repeat("a", 21) + `"}`, errInvalidInfoHash},
		{"info_hash above U+00FF", `{"action":"announce","info_hash":"` + strings.Repeat("a", 19) + `ā"}`, errInvalidInfoHash},
		{"info_hash escaped above U+00FF", `{"action":"announce","info_hash":"` + strings.Repeat("a", 19) + `\u0100"}`, errInvalidInfoHash},
		{"info_hash surrogate", `{"action":"announce","info_hash":"` + strings.Repeat("a", 19) + `\ud83d"}`, errInvalidInfoHash},
		{"info_hash emoji", `{"action":"announce","info_hash":"` + strings.Repeat("a", 19) + `😀"}`, errInvalidInfoHash},
		{"info_hash number", `{"action":"announce","info_hash":12}`, errInvalidInfoHash},
		{"info_hash list in announce", `{"action":"announce","info_hash":[` + ih + `]}`, errInfoHashListOnly},
		{"peer_id short", `{"action":"announce","peer_id":"x"}`, errInvalidPeerID},
		{"to_peer_id bad", `{"action":"announce","to_peer_id":"x"}`, errInvalidToPeerID},
		{"offer_id bad", `{"action":"announce","offer_id":"x"}`, errInvalidOfferID},
		{"negative left", `{"action":"announce","left":-1}`, errInvalidNumber},
		{"string left", `{"action":"announce","left":"1"}`, errInvalidNumber},
		{"bad event", `{"action":"announce","event":"paused2"}`, bittorrent.ErrInvalidEvent},
		{"offers not a list", `{"action":"announce","offers":{}}`, errInvalidOffers},
		{"offer without id", `{"action":"announce","offers":[{"offer":{}}]}`, errInvalidOffers},
		{"offer not an object", `{"action":"announce","offers":[{"offer":"sdp","offer_id":` + ih + `}]}`, errInvalidOffers},
		{"too many offers", `{"action":"announce","offers":[` + strings.Repeat(offer+",", 10) + offer + `]}`, errTooManyOffers},
		{"answer not an object", `{"action":"announce","answer":"x"}`, errInvalidAnswer},
		{"too many scrape hashes", `{"action":"scrape","info_hash":[` + strings.Repeat(ih+",", 255) + ih + `]}`, errTooManyHashes},
		{"deep nesting", `{"action":"announce","x":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, errMalformed},
		{"control character", "{\"action\":\"announce\",\"x\":\"a\x01\"}", errMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parse(t, tc.msg); err != tc.want {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestWriterRoundTrip decodes what the writers write with encoding/json
// and checks every binary string comes back byte for byte.
func TestWriterRoundTrip(t *testing.T) {
	ih := bittorrent.InfoHash(ihHigh)
	from := bittorrent.PeerID(peerA)
	oid := offerID

	var reply struct {
		Action     string `json:"action"`
		InfoHash   string `json:"info_hash"`
		Complete   int    `json:"complete"`
		Incomplete int    `json:"incomplete"`
		Interval   int    `json:"interval"`
	}
	b := appendAnnounceReply(nil, &ih, 3, 4, 120)
	if err := json.Unmarshal(b, &reply); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if reply.Action != "announce" || !bytes.Equal(bytesOf(t, reply.InfoHash), ih[:]) || reply.Complete != 3 || reply.Incomplete != 4 || reply.Interval != 120 {
		t.Errorf("announce reply %s decoded as %+v", b, reply)
	}

	var relay struct {
		Action   string          `json:"action"`
		InfoHash string          `json:"info_hash"`
		PeerID   string          `json:"peer_id"`
		OfferID  string          `json:"offer_id"`
		Offer    json.RawMessage `json:"offer"`
	}
	sdp := []byte(`{"type":"offer","sdp":"v=0\r\n"}`)
	b = appendRelay(nil, &ih, &from, &oid, "offer", sdp)
	if err := json.Unmarshal(b, &relay); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !bytes.Equal(bytesOf(t, relay.InfoHash), ih[:]) || !bytes.Equal(bytesOf(t, relay.PeerID), from[:]) ||
		!bytes.Equal(bytesOf(t, relay.OfferID), oid[:]) || !bytes.Equal(relay.Offer, sdp) {
		t.Errorf("relay %s decoded as %+v", b, relay)
	}
	// And our own parser reads back what the writer wrote.
	m := new(message)
	if err := parseMessage(b, m, 10, 255); err != nil || m.infoHash != ih || m.peerID != from || m.offerID != oid {
		t.Errorf("parser on writer output: %+v, %v", m, err)
	}

	var scrape struct {
		Action string `json:"action"`
		Files  map[string]struct {
			Complete, Incomplete, Downloaded int
		} `json:"files"`
	}
	other := bittorrent.InfoHash{1, 2, 3}
	b = appendScrape(nil, []bittorrent.Scrape{{InfoHash: ih, Complete: 1, Incomplete: 2, Downloaded: 3}, {InfoHash: other}, {InfoHash: ih, Complete: 1, Incomplete: 2, Downloaded: 3}})
	if err := json.Unmarshal(b, &scrape); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if strings.Count(string(b), `"complete"`) != 2 {
		t.Errorf("scrape %s: a repeated hash must be answered once", b)
	}
	got := scrape.Files[string(runesOf(ih[:]))]
	if scrape.Action != "scrape" || len(scrape.Files) != 2 || got.Complete != 1 || got.Incomplete != 2 || got.Downloaded != 3 {
		t.Errorf("scrape %s decoded as %+v", b, scrape)
	}

	var failure map[string]string
	b = appendFailure(nil, "bad \"thing\"\n", actionAnnounce, &ih)
	if err := json.Unmarshal(b, &failure); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if failure["failure reason"] != "bad \"thing\"\n" || failure["action"] != "announce" || !bytes.Equal(bytesOf(t, failure["info_hash"]), ih[:]) {
		t.Errorf("failure %s decoded as %v", b, failure)
	}
	if b := appendFailure(nil, "x", actionNone, nil); string(b) != `{"failure reason":"x"}` {
		t.Errorf("bare failure = %s", b)
	}
}

func runesOf(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// TestBinaryEveryByte checks the binary string rule for each byte value,
// both ways.
func TestBinaryEveryByte(t *testing.T) {
	for v := 0; v < 256; v++ {
		var id [20]byte
		for i := range id {
			id[i] = byte(v)
		}
		enc := appendBinary(nil, id[:])
		if !utf8.Valid(enc) {
			t.Fatalf("byte %#x: invalid UTF-8 %q", v, enc)
		}
		var s string
		if err := json.Unmarshal(enc, &s); err != nil || !bytes.Equal(bytesOf(t, s), id[:]) {
			t.Fatalf("byte %#x: %q decodes to %q (%v)", v, enc, s, err)
		}
		p := parser{b: enc}
		var got [20]byte
		var ok bool
		if err := p.binary(&got, &ok, errInvalidInfoHash); err != nil || got != id {
			t.Fatalf("byte %#x: parser reads %x (%v)", v, got, err)
		}
		// Go's encoder writes some bytes differently (\u0026 for &, \u003c
		// for <): the parser reads those too.
		p = parser{b: []byte(binStr(id[:]))}
		if err := p.binary(&got, &ok, errInvalidInfoHash); err != nil || got != id {
			t.Fatalf("byte %#x: parser reads %s as %x (%v)", v, binStr(id[:]), got, err)
		}
	}
}

func announceMessage(offers int) []byte {
	var b strings.Builder
	b.WriteString(`{"numwant":5,"uploaded":0,"downloaded":0,"left":1000,"event":"started","action":"announce","info_hash":` + binStr(ihHigh[:]) + `,"peer_id":` + binStr(peerA[:]) + `,"offers":[`)
	for i := 0; i < offers; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"offer":{"type":"offer","sdp":"v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\n"},"offer_id":` + binStr(offerID[:]) + `}`)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func BenchmarkParseAnnounce(b *testing.B) { benchParse(b, announceMessage(5)) }

// benchParse measures parsing msg into a reused message.
func benchParse(b *testing.B, msg []byte) {
	m := new(message)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := parseMessage(msg, m, 10, 255); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteOffer(b *testing.B) {
	m := new(message)
	if err := parseMessage(announceMessage(1), m, 10, 255); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRelay(buf[:0], &m.infoHash, &m.peerID, &m.offers[0].id, "offer", m.offers[0].sdp)
	}
}

// FuzzParseMessage checks that no input panics the parser, that what it
// accepts is valid JSON, and that its relayed objects are valid JSON the
// writer can embed.
func FuzzParseMessage(f *testing.F) {
	f.Add(announceMessage(2))
	f.Add([]byte(`{"action":"scrape","info_hash":[` + binStr(ihHigh[:]) + `]}`))
	f.Add([]byte(`{"action":"announce","info_hash":` + binStr(ihHigh[:]) + `,"peer_id":` + binStr(peerA[:]) + `,"to_peer_id":` + binStr(peerA[:]) + `,"offer_id":` + binStr(offerID[:]) + `,"answer":{"type":"answer","sdp":"x"}}`))
	f.Add([]byte(`{"action":"announce","left":null,"event":"update","uploaded":1e3}`))
	m := new(message)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := parseMessage(b, m, 10, 255); err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
		for _, o := range m.offers {
			out := appendRelay(nil, &m.infoHash, &m.peerID, &o.id, "offer", o.sdp)
			if !json.Valid(out) || !utf8.Valid(out) {
				t.Fatalf("relay of %q is not valid JSON: %q", o.sdp, out)
			}
		}
		if m.answer != nil {
			out := appendRelay(nil, &m.infoHash, &m.peerID, &m.offerID, "answer", m.answer)
			if !json.Valid(out) {
				t.Fatalf("relay of answer %q is not valid JSON", m.answer)
			}
		}
	})
}

// TestPlainRun checks the word-at-a-time scan against a byte loop: every
// quote, backslash and control character, at every position of a word,
// after every other byte value, is found where it is.
func TestPlainRun(t *testing.T) {
	naive := func(b []byte, i int) int {
		for ; i < len(b); i++ {
			if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return i
	}
	for _, stop := range []byte{'"', '\\', 0x00, 0x0a, 0x1f} {
		for fill := 0x20; fill <= 0xff; fill++ {
			if fill == '"' || fill == '\\' {
				continue
			}
			for pos := 0; pos < 19; pos++ {
				b := bytes.Repeat([]byte{byte(fill)}, 19)
				b[pos] = stop
				// and a byte below the stop that a borrow could confuse
				for from := 0; from <= pos; from++ {
					if got, want := plainRun(b, from), naive(b, from); got != want {
						t.Fatalf("stop %#x after %#x at %d, from %d: plainRun %d, want %d", stop, fill, pos, from, got, want)
					}
				}
			}
		}
	}
	if got := plainRun([]byte("abcdefghijklmnopq"), 3); got != 17 {
		t.Fatalf("plain text: plainRun %d, want its length 17", got)
	}
}
