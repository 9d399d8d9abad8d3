package websocket

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"testing"

	gws "github.com/gorilla/websocket"

	"github.com/chihaya/chihaya/bittorrent"
)

func answerMessage() []byte {
	return []byte(`{"action":"announce","info_hash":` + binStr(ihHigh[:]) + `,"peer_id":` + binStr(peerA[:]) +
		`,"to_peer_id":` + binStr(peerA[:]) + `,"offer_id":` + binStr(offerID[:]) +
		`,"answer":{"type":"answer","sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:active\r\na=mid:0\r\na=sctp-port:5000\r\n"}}`)
}

func BenchmarkParseAnswer(b *testing.B) { benchParse(b, answerMessage()) }

func BenchmarkWriteAnswer(b *testing.B) {
	m := new(message)
	if err := parseMessage(answerMessage(), m, 10, 255); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRelay(buf[:0], &m.infoHash, &m.peerID, &m.offerID, "answer", m.answer)
	}
}

func BenchmarkWriteAnnounceReply(b *testing.B) {
	ih := bittorrent.InfoHash(ihHigh)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendAnnounceReply(buf[:0], &ih, 12345, 678, 120)
	}
}

// rawClient speaks WebSocket frames itself over a connection upgraded by
// gorilla's dialer, so that it allocates nothing per message and a
// benchmark's allocations are the tracker's.
type rawClient struct {
	nc  net.Conn
	br  *bufio.Reader
	buf []byte
	hdr []byte
}

func dialRaw(b *testing.B, tr *tracker) *rawClient {
	b.Helper()
	ws, _, err := gws.DefaultDialer.Dial(tr.url, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ws.Close() })
	return &rawClient{nc: ws.NetConn(), br: bufio.NewReaderSize(ws.NetConn(), 16<<10), buf: make([]byte, 0, 16<<10), hdr: make([]byte, 4)}
}

// frame returns msg as a client's text frame, masked with a zero key.
func frame(msg []byte) []byte {
	f := []byte{0x81}
	if len(msg) < 126 {
		f = append(f, 0x80|byte(len(msg)))
	} else {
		f = append(f, 0x80|126, byte(len(msg)>>8), byte(len(msg)))
	}
	f = append(f, 0, 0, 0, 0)
	return append(f, msg...)
}

func (c *rawClient) write(b *testing.B, f []byte) {
	if _, err := c.nc.Write(f); err != nil {
		b.Fatal(err)
	}
}

// read returns the next message's payload (valid until the next read).
func (c *rawClient) read(b *testing.B) []byte {
	h := c.hdr[:2]
	if _, err := io.ReadFull(c.br, h); err != nil {
		b.Fatal(err)
	}
	n := int(h[1] & 0x7f)
	switch n {
	case 126:
		l := c.hdr[2:4]
		if _, err := io.ReadFull(c.br, l); err != nil {
			b.Fatal(err)
		}
		n = int(binary.BigEndian.Uint16(l))
	case 127:
		b.Fatal("message too large for the benchmark")
	}
	c.buf = c.buf[:n]
	if _, err := io.ReadFull(c.br, c.buf); err != nil {
		b.Fatal(err)
	}
	if c.hdr[0] != 0x81 {
		b.Fatalf("frame %#x %q, want a text frame", c.hdr[0], c.buf)
	}
	return c.buf
}

// BenchmarkRelayOfferAnswer is one offer's round trip through a running
// tracker (memory store, real sockets): a leecher announces with one
// offer, gets its reply, the seeder gets the offer and answers, the
// leecher gets the answer. Two messages in, three out, two of them
// relayed; allocs/op are the tracker's (the clients allocate nothing).
func BenchmarkRelayOfferAnswer(b *testing.B) {
	tr := newTracker(b, Config{})
	ih, seeder, leecher, offer := id20("bench-swarm---------"), id20("bench-seeder--------"), id20("bench-leecher-------"), id20("bench-offer---------")
	enc := func(v map[string]any) []byte {
		m, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		return frame(m)
	}
	s, l := dialRaw(b, tr), dialRaw(b, tr)
	s.write(b, enc(announceMsg(ih, seeder, 0)))
	s.read(b)
	announce := enc(announceMsg(ih, leecher, 100, offer))
	answer := enc(map[string]any{"action": "announce", "info_hash": bsa(ih), "peer_id": bsa(seeder), "to_peer_id": bsa(leecher),
		"offer_id": bsa(offer), "answer": map[string]any{"type": "answer", "sdp": "sdp of the answer"}})
	round := func() {
		l.write(b, announce)
		l.read(b) // the reply
		if m := s.read(b); len(m) < 10 {
			b.Fatalf("seeder got %q, want the offer", m)
		}
		s.write(b, answer)
		if m := l.read(b); len(m) < 10 {
			b.Fatalf("leecher got %q, want the answer", m)
		}
	}
	round() // the leecher joins
	b.ReportAllocs()
	for b.Loop() {
		round()
	}
}
