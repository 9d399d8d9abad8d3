package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"testing"
)

// fakeUDP is a small BEP 15 tracker for the tests: it answers connects,
// announces and scrapes with well-formed replies and remembers which peers
// announced. It can drop or refuse announces to exercise the generator's
// timeouts and retries.
type fakeUDP struct {
	conn *net.UDPConn

	// dropEvery drops every n-th announce (0: none).
	dropEvery int
	// refuse answers every announce with an error packet.
	refuse bool
	// silent answers connects only.
	silent bool

	mu        sync.Mutex
	announces int
	connects  int
	peers     map[fakePeer]int // announces seen per peer
	events    map[uint32]int
	seeders   int
}

type fakePeer struct {
	hash [20]byte
	port uint16
}

const fakeConnID = 0x0123456789abcdef

func startFakeUDP(t *testing.T, configure func(*fakeUDP)) *fakeUDP {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUDP{conn: conn, peers: map[fakePeer]int{}, events: map[uint32]int{}}
	if configure != nil {
		configure(f)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.serve()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return f
}

func (f *fakeUDP) addr() netip.AddrPort {
	return f.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

func (f *fakeUDP) serve() {
	buf := make([]byte, 2048)
	for {
		n, from, err := f.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if reply := f.handle(buf[:n]); reply != nil {
			_, _ = f.conn.WriteToUDPAddrPort(reply, from)
		}
	}
}

func (f *fakeUDP) handle(p []byte) []byte {
	if len(p) < 16 {
		return nil
	}
	be := binary.BigEndian
	action, tx := be.Uint32(p[8:]), be.Uint32(p[12:])
	reply := be.AppendUint32(nil, action)
	reply = be.AppendUint32(reply, tx)
	if action == udpActionConnect {
		if be.Uint64(p) != udpProtocolID {
			return nil
		}
		f.mu.Lock()
		f.connects++
		f.mu.Unlock()
		return be.AppendUint64(reply, fakeConnID)
	}
	if be.Uint64(p) != fakeConnID {
		return append(be.AppendUint32(be.AppendUint32(nil, udpActionError), tx), "bad connection id"...)
	}
	switch action {
	case udpActionAnnounce:
		if len(p) < 98 || f.silent {
			return nil
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.announces++
		if f.dropEvery > 0 && f.announces%f.dropEvery == 0 {
			return nil
		}
		if f.refuse {
			return append(be.AppendUint32(be.AppendUint32(nil, udpActionError), tx), "unregistered torrent"...)
		}
		var k fakePeer
		copy(k.hash[:], p[16:36])
		k.port = be.Uint16(p[96:])
		f.peers[k]++
		f.events[be.Uint32(p[80:])]++
		if be.Uint64(p[64:]) == 0 {
			f.seeders++
		}
		reply = be.AppendUint32(reply, 1800) // interval
		reply = be.AppendUint32(reply, 1)    // leechers
		reply = be.AppendUint32(reply, 2)    // seeders
		return append(reply, 127, 0, 0, 1, 0x1a, 0xe1, 127, 0, 0, 2, 0x1a, 0xe1)
	case udpActionScrape:
		n := (len(p) - 16) / 20
		for range n {
			reply = be.AppendUint32(reply, 2)
			reply = be.AppendUint32(reply, 5)
			reply = be.AppendUint32(reply, 1)
		}
		return reply
	}
	return nil
}

func (f *fakeUDP) distinctPeers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.peers)
}

// fakeHTTP is a small HTTP tracker for the tests: it decodes announces and
// scrapes with the standard library and answers in bencode. With
// closeEach it closes every connection after its reply, as opentracker
// does, without saying so in a header.
type fakeHTTP struct {
	srv       *httptest.Server
	mu        sync.Mutex
	announces int
	scrapes   int
	hashes    int
	badQuery  int
}

func startFakeHTTP(t *testing.T, closeEach bool) *fakeHTTP {
	t.Helper()
	f := &fakeHTTP{}
	mux := http.NewServeMux()
	mux.HandleFunc("/announce", func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		port, perr := strconv.Atoi(q.Get("port"))
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil || len(q.Get("info_hash")) != 20 || len(q.Get("peer_id")) != 20 || perr != nil || port < 1024 || q.Get("compact") != "1" {
			f.badQuery++
			fmt.Fprint(w, "d14:failure reason13:invalid querye")
			return
		}
		f.announces++
		body := "d8:completei2e10:incompletei1e8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e"
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		fmt.Fprint(w, body)
	})
	mux.HandleFunc("/scrape", func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil || len(q["info_hash"]) == 0 {
			f.badQuery++
			fmt.Fprint(w, "d14:failure reason13:invalid querye")
			return
		}
		f.scrapes++
		f.hashes += len(q["info_hash"])
		// Written without a length, so the reply is chunked.
		fmt.Fprint(w, "d5:filesd")
		for _, h := range q["info_hash"] {
			fmt.Fprintf(w, "20:%sd8:completei1e10:downloadedi0e10:incompletei0ee", h)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
		}
		fmt.Fprint(w, "ee")
	})
	handler := http.Handler(mux)
	if closeEach {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mux.ServeHTTP(w, r)
			// Hijack after the reply to close without a Connection header.
			if fl, ok := w.(http.Flusher); ok {
				fl.Flush()
			}
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
				}
			}
		})
	}
	f.srv = httptest.NewServer(handler)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeHTTP) addr() netip.AddrPort {
	return netip.MustParseAddrPort(f.srv.Listener.Addr().String())
}
