package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/chihaya/chihaya/frontend/frontendtest"
)

// httpGet fetches a tracker URL and decodes its bencoded body.
func httpGet(t *testing.T, rawURL string) map[string]interface{} {
	t.Helper()
	return httpGetFrom(t, rawURL, nil)
}

// httpGetFrom fetches a tracker URL with extra request headers.
func httpGetFrom(t *testing.T, rawURL string, header map[string]string) map[string]interface{} {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	v, err := frontendtest.DecodeBencode(body)
	if err != nil {
		t.Fatalf("GET %s: body %q is not bencode: %v", rawURL, body, err)
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		t.Fatalf("GET %s: body %q is not a dictionary", rawURL, body)
	}
	return m
}

type httpAnnounce struct {
	infoHash, peerID [20]byte
	port             int
	left             int
	event            string
	extra            string // appended to the query as is
}

func (a httpAnnounce) url(base string) string {
	q := "info_hash=" + url.QueryEscape(string(a.infoHash[:])) +
		"&peer_id=" + url.QueryEscape(string(a.peerID[:])) +
		"&port=" + strconv.Itoa(a.port) +
		"&uploaded=0&downloaded=0&left=" + strconv.Itoa(a.left)
	if a.event != "" {
		q += "&event=" + a.event
	}
	if a.extra != "" {
		q += "&" + a.extra
	}
	return base + "/announce?" + q
}

// compactPeers splits a compact peer string into host:port strings.
func compactPeers(t *testing.T, s string, size int) []string {
	t.Helper()
	if len(s)%size != 0 {
		t.Fatalf("compact peers of %d bytes are not a multiple of %d", len(s), size)
	}
	var out []string
	for i := 0; i < len(s); i += size {
		ip := net.IP([]byte(s[i : i+size-2]))
		port := binary.BigEndian.Uint16([]byte(s[i+size-2 : i+size]))
		out = append(out, net.JoinHostPort(ip.String(), strconv.Itoa(int(port))))
	}
	return out
}

// udpClient speaks BEP 15 to one tracker address.
type udpClient struct {
	t    *testing.T
	conn *net.UDPConn
	cid  uint64
	tid  uint32
}

func newUDPClient(t *testing.T, local, tracker string) *udpClient {
	t.Helper()
	laddr, err := net.ResolveUDPAddr("udp", local)
	if err != nil {
		t.Fatal(err)
	}
	raddr, err := net.ResolveUDPAddr("udp", tracker)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", laddr, raddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{t: t, conn: conn}
}

// roundTrip sends pkt and returns the reply that carries pkt's transaction
// ID, or nil if none came in time. Replies to earlier packets are skipped,
// as a real client skips them.
func (c *udpClient) roundTrip(pkt []byte, wait time.Duration) []byte {
	c.t.Helper()
	if _, err := c.conn.Write(pkt); err != nil {
		c.t.Fatal(err)
	}
	buf := make([]byte, 65536)
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return nil
			}
			c.t.Fatal(err)
		}
		if n >= 8 && len(pkt) >= 16 && bytes.Equal(buf[4:8], pkt[12:16]) {
			return buf[:n]
		}
	}
}

func (c *udpClient) nextTID() uint32 { c.tid++; return c.tid }

func (c *udpClient) connect() {
	c.t.Helper()
	tid := c.nextTID()
	pkt := binary.BigEndian.AppendUint64(nil, 0x41727101980)
	pkt = binary.BigEndian.AppendUint32(pkt, 0)
	pkt = binary.BigEndian.AppendUint32(pkt, tid)
	reply := c.roundTrip(pkt, 3*time.Second)
	if len(reply) != 16 || binary.BigEndian.Uint32(reply) != 0 || binary.BigEndian.Uint32(reply[4:]) != tid {
		c.t.Fatalf("connect reply %x", reply)
	}
	c.cid = binary.BigEndian.Uint64(reply[8:])
}

type udpAnnounceReply struct {
	interval, leechers, seeders uint32
	peers                       []string
	errMsg                      string
}

// announce sends a BEP 15 announce with optional BEP 41 options appended.
func (c *udpClient) announce(ih, id [20]byte, left uint64, event uint32, port uint16, numWant int32, options []byte) udpAnnounceReply {
	c.t.Helper()
	pkt, tid := c.announcePacket(ih, id, left, event, port, numWant, options)
	reply := c.roundTrip(pkt, 3*time.Second)
	return c.parseAnnounceReply(reply, tid)
}

// announcePacket is a BEP 15 announce of the connection, with its
// transaction ID.
func (c *udpClient) announcePacket(ih, id [20]byte, left uint64, event uint32, port uint16, numWant int32, options []byte) ([]byte, uint32) {
	tid := c.nextTID()
	pkt := binary.BigEndian.AppendUint64(nil, c.cid)
	pkt = binary.BigEndian.AppendUint32(pkt, 1)
	pkt = binary.BigEndian.AppendUint32(pkt, tid)
	pkt = append(pkt, ih[:]...)
	pkt = append(pkt, id[:]...)
	pkt = binary.BigEndian.AppendUint64(pkt, 0)
	pkt = binary.BigEndian.AppendUint64(pkt, left)
	pkt = binary.BigEndian.AppendUint64(pkt, 0)
	pkt = binary.BigEndian.AppendUint32(pkt, event)
	pkt = binary.BigEndian.AppendUint32(pkt, 0)
	pkt = binary.BigEndian.AppendUint32(pkt, 0x1234)
	pkt = binary.BigEndian.AppendUint32(pkt, uint32(numWant))
	pkt = binary.BigEndian.AppendUint16(pkt, port)
	return append(pkt, options...), tid
}

func (c *udpClient) parseAnnounceReply(reply []byte, tid uint32) udpAnnounceReply {
	c.t.Helper()
	if len(reply) < 8 || binary.BigEndian.Uint32(reply[4:]) != tid {
		c.t.Fatalf("announce reply %x (transaction %d)", reply, tid)
	}
	switch binary.BigEndian.Uint32(reply) {
	case 3:
		return udpAnnounceReply{errMsg: string(reply[8:])}
	case 1:
	default:
		c.t.Fatalf("announce reply with action %d", binary.BigEndian.Uint32(reply))
	}
	if len(reply) < 20 {
		c.t.Fatalf("short announce reply %x", reply)
	}
	size := 6
	if c.conn.LocalAddr().(*net.UDPAddr).IP.To4() == nil {
		size = 18
	}
	r := udpAnnounceReply{
		interval: binary.BigEndian.Uint32(reply[8:]),
		leechers: binary.BigEndian.Uint32(reply[12:]),
		seeders:  binary.BigEndian.Uint32(reply[16:]),
	}
	r.peers = compactPeers(c.t, string(reply[20:]), size)
	return r
}

type udpScrape struct{ seeders, completed, leechers uint32 }

func (c *udpClient) scrape(hashes ...[20]byte) []udpScrape {
	c.t.Helper()
	tid := c.nextTID()
	pkt := binary.BigEndian.AppendUint64(nil, c.cid)
	pkt = binary.BigEndian.AppendUint32(pkt, 2)
	pkt = binary.BigEndian.AppendUint32(pkt, tid)
	for _, h := range hashes {
		pkt = append(pkt, h[:]...)
	}
	reply := c.roundTrip(pkt, 3*time.Second)
	if len(reply) != 8+12*len(hashes) || binary.BigEndian.Uint32(reply) != 2 || binary.BigEndian.Uint32(reply[4:]) != tid {
		c.t.Fatalf("scrape reply %x", reply)
	}
	var out []udpScrape
	for i := 8; i < len(reply); i += 12 {
		out = append(out, udpScrape{binary.BigEndian.Uint32(reply[i:]), binary.BigEndian.Uint32(reply[i+4:]), binary.BigEndian.Uint32(reply[i+8:])})
	}
	return out
}
