package frontendtest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
)

// BEP 15 actions, and its event codes, which are not bittorrent.Event's.
const (
	actionConnect  = 0
	actionAnnounce = 1
	actionScrape   = 2
	actionError    = 3
	protocolID     = 0x41727101980
)

var udpEvents = [...]uint32{bittorrent.None: 0, bittorrent.Completed: 1, bittorrent.Started: 2, bittorrent.Stopped: 3}

// udpClient speaks BEP 15 (with BEP 41 URL data) from one socket.
type udpClient struct {
	conn   *net.UDPConn
	connID uint64
	conned bool
	txID   uint32
	buf    []byte
}

// UDP returns a Client of the UDP tracker at addr (host:port), from a
// port of its own on the loopback address of addr's family.
func UDP(t testing.TB, addr string) Client {
	t.Helper()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("frontendtest: UDP tracker address %q: %v", addr, err)
	}
	local := netip.MustParseAddr("127.0.0.1")
	if ap.Addr().Is6() {
		local = netip.IPv6Loopback()
	}
	return UDPFrom(t, addr, local)
}

// UDPFrom is UDP from a given local address (127.0.1.5, say).
func UDPFrom(t testing.TB, addr string, local netip.Addr) Client {
	t.Helper()
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)), raddr)
	if err != nil {
		t.Fatalf("frontendtest: UDP from %s to %s: %v", local, addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &udpClient{conn: conn, buf: make([]byte, 64<<10)}
}

func (c *udpClient) Addr() netip.Addr {
	return c.conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr()
}

func (c *udpClient) header(connID uint64, action uint32) ([]byte, uint32) {
	c.txID++
	pkt := binary.BigEndian.AppendUint64(nil, connID)
	pkt = binary.BigEndian.AppendUint32(pkt, action)
	return binary.BigEndian.AppendUint32(pkt, c.txID), c.txID
}

// roundTrip sends pkt and returns the reply that carries its transaction
// ID. Replies to earlier packets are skipped, as a real client skips
// them; a reply lost on the way is sent for again, as BEP 15 says.
func (c *udpClient) roundTrip(pkt []byte, tx uint32) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for try := 0; ; try++ {
		if _, err := c.conn.Write(pkt); err != nil {
			return nil, err
		}
		wait := time.Now().Add(time.Duration(1<<try) * time.Second)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = c.conn.SetReadDeadline(wait)
		for {
			n, err := c.conn.Read(c.buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if time.Now().After(deadline) {
					return nil, fmt.Errorf("no reply to transaction %d within %v", tx, timeout)
				}
				break
			}
			if err != nil {
				return nil, err
			}
			if n >= 8 && binary.BigEndian.Uint32(c.buf[4:]) == tx {
				return bytes.Clone(c.buf[:n]), nil
			}
		}
	}
}

// reply checks the reply's action and returns its body, or the tracker's
// error message.
func reply(b []byte, action uint32) (body []byte, failure string, err error) {
	switch a := binary.BigEndian.Uint32(b); a {
	case action:
		return b[8:], "", nil
	case actionError:
		return nil, string(b[8:]), nil
	default:
		return nil, "", fmt.Errorf("reply with action %d, want %d: %x", a, action, b)
	}
}

func (c *udpClient) Connect() error {
	pkt, tx := c.header(protocolID, actionConnect)
	b, err := c.roundTrip(pkt, tx)
	if err != nil {
		return err
	}
	body, failure, err := reply(b, actionConnect)
	switch {
	case err != nil:
		return err
	case failure != "":
		return fmt.Errorf("connect refused: %s", failure)
	case len(body) != 8:
		return fmt.Errorf("connect reply of %d bytes, want 16", len(b))
	}
	c.connID, c.conned = binary.BigEndian.Uint64(body), true
	return nil
}

func (c *udpClient) connect() error {
	if c.conned {
		return nil
	}
	return c.Connect()
}

func (c *udpClient) Announce(a Announce) (AnnounceReply, error) {
	if err := c.connect(); err != nil {
		return AnnounceReply{}, err
	}
	numWant := int32(-1)
	if a.NumWant > 0 {
		numWant = int32(a.NumWant)
	}
	pkt, tx := c.header(c.connID, actionAnnounce)
	pkt = append(pkt, a.InfoHash[:]...)
	pkt = append(pkt, a.PeerID[:]...)
	pkt = binary.BigEndian.AppendUint64(pkt, 0) // downloaded
	pkt = binary.BigEndian.AppendUint64(pkt, a.Left)
	pkt = binary.BigEndian.AppendUint64(pkt, 0) // uploaded
	pkt = binary.BigEndian.AppendUint32(pkt, udpEvents[a.Event])
	pkt = binary.BigEndian.AppendUint32(pkt, 0)      // IP: the source's
	pkt = binary.BigEndian.AppendUint32(pkt, 0x1234) // key
	pkt = binary.BigEndian.AppendUint32(pkt, uint32(numWant))
	pkt = binary.BigEndian.AppendUint16(pkt, a.Port)
	if a.Params != "" || a.Path != "" {
		path := a.Path
		if path == "" {
			path = "/announce"
		}
		if a.Params != "" {
			path += "?" + a.Params
		}
		pkt = append(pkt, URLData(path)...)
	}
	b, err := c.roundTrip(pkt, tx)
	if err != nil {
		return AnnounceReply{}, err
	}
	body, failure, err := reply(b, actionAnnounce)
	if err != nil || failure != "" {
		return AnnounceReply{Failure: failure}, err
	}
	if len(body) < 12 {
		return AnnounceReply{}, fmt.Errorf("announce reply of %d bytes", len(b))
	}
	r := AnnounceReply{
		Interval: time.Duration(binary.BigEndian.Uint32(body)) * time.Second,
		Leechers: binary.BigEndian.Uint32(body[4:]),
		Seeders:  binary.BigEndian.Uint32(body[8:]),
	}
	size := 6
	if c.Addr().Is6() {
		size = 18
	}
	addrs, err := CompactPeers(body[12:], size)
	r.Peers = addrPeers(addrs)
	return r, err
}

func (c *udpClient) Scrape(infoHashes ...bittorrent.InfoHash) (ScrapeReply, error) {
	if err := c.connect(); err != nil {
		return ScrapeReply{}, err
	}
	pkt, tx := c.header(c.connID, actionScrape)
	for _, ih := range infoHashes {
		pkt = append(pkt, ih[:]...)
	}
	b, err := c.roundTrip(pkt, tx)
	if err != nil {
		return ScrapeReply{}, err
	}
	body, failure, err := reply(b, actionScrape)
	if err != nil || failure != "" {
		return ScrapeReply{Failure: failure}, err
	}
	if len(body) != 12*len(infoHashes) {
		return ScrapeReply{}, fmt.Errorf("scrape reply of %d bytes for %d info hashes", len(b), len(infoHashes))
	}
	var r ScrapeReply
	for p := body; len(p) > 0; p = p[12:] {
		r.Files = append(r.Files, Counts{
			Seeders:    binary.BigEndian.Uint32(p),
			Downloaded: binary.BigEndian.Uint32(p[4:]),
			Leechers:   binary.BigEndian.Uint32(p[8:]),
		})
	}
	return r, nil
}

// URLData encodes s (a path and query) as BEP 41 URL data options of at
// most 255 bytes each, followed by an end-of-options.
func URLData(s string) []byte {
	var b []byte
	for len(s) > 0 {
		n := min(len(s), 255)
		b = append(b, 0x2, byte(n))
		b = append(b, s[:n]...)
		s = s[n:]
	}
	return append(b, 0x0)
}
