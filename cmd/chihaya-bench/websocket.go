package main

import (
	"bytes"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"
)

// modeWSAnnounce drives a WebTorrent tracker: each connection is one
// browser in one swarm, announcing with --offers offers (as WebTorrent
// does), answering every offer relayed to it, and counting the answers
// relayed back.
const modeWSAnnounce = "ws-announce"

// modeWSIdle opens --conns connections, has each announce once without
// offers, and holds them open until --duration ends: the tracker's memory
// per idle connection is its RSS growth over the connections.
const modeWSIdle = "ws-idle"

// wsSDP stands for a browser's session description: its size is what
// matters to the relay.
const wsSDP = `v=0\r\no=- 4215775240449105457 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:Yk3f\r\na=ice-pwd:kP1h0hT3c5aLz2VvYtqK5w8J\r\na=ice-options:trickle\r\na=fingerprint:sha-256 4A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\r\na=setup:actpass\r\na=mid:0\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n`

// wsWorker is one connection.
type wsWorker struct {
	cfg *runConfig
	wl  *Workload
	workerBase
	idx, t, p int
	budget    uint64

	conn *gws.Conn
	wmu  sync.Mutex // one writer at a time: announces and answers
	// replies carries the arrival of each announce reply (or failure) to
	// the announcing loop.
	replies chan bool

	ih, id  []byte // binary strings, JSON-encoded
	msg     []byte
	answer  []byte
	offers  atomic.Uint64 // offers relayed to this connection
	answers atomic.Uint64 // answers relayed back to it
	badRead atomic.Uint64
}

func runWebSocket(cfg *runConfig, wl *Workload) (Result, error) {
	workers := make([]*wsWorker, cfg.Sockets)
	for i := range workers {
		w := &wsWorker{cfg: cfg, wl: wl, idx: i, t: i % cfg.Workload.Torrents, p: i / cfg.Workload.Torrents, replies: make(chan bool, 1)}
		var id [20]byte
		wl.PeerID(&id, w.t, w.p)
		w.ih = appendJSONBinary(nil, wl.InfoHash(w.t)[:])
		w.id = appendJSONBinary(nil, id[:])
		w.budget = cfg.budget(i)
		workers[i] = w
	}
	// Every connection is open before the clock starts: a browser keeps
	// its connection, so the handshakes are not part of the load.
	dialer := gws.Dialer{HandshakeTimeout: cfg.Timeout}
	urls := []string{"ws://" + cfg.Target.String() + cfg.AnnouncePath}
	if cfg.Target2.IsValid() {
		urls = append(urls, "ws://"+cfg.Target2.String()+cfg.AnnouncePath)
	}
	for i, w := range workers {
		url := urls[i%len(urls)]
		c, _, err := dialer.Dial(url, nil)
		if err != nil {
			for _, o := range workers {
				if o.conn != nil {
					o.conn.Close()
				}
			}
			return Result{}, errors.New("ws-announce: dial " + url + ": " + err.Error())
		}
		w.conn = c
		w.st.connects++
	}
	m := startCPU()
	total := runAll(workers, m.start)
	r := newResult(cfg, &total, m)
	for _, w := range workers {
		r.Offers += w.offers.Load()
		r.Answers += w.answers.Load()
	}
	if r.Seconds > 0 {
		r.OffersPS = float64(r.Offers) / r.Seconds
		r.AnswersPS = float64(r.Answers) / r.Seconds
	}
	return r, nil
}

func (w *wsWorker) run() {
	defer w.conn.Close()
	go w.read()
	deadline := w.start.Add(w.cfg.Duration)
	budget := w.budget
	if w.cfg.Mode == modeWSIdle {
		budget = 1
		defer func() { time.Sleep(time.Until(deadline)) }()
	}
	var n uint64
	for ; n < budget && time.Now().Before(deadline); n++ {
		w.buildAnnounce(n)
		sent := time.Now()
		w.st.sent++
		w.wmu.Lock()
		_ = w.conn.SetWriteDeadline(sent.Add(w.cfg.Timeout))
		err := w.conn.WriteMessage(gws.TextMessage, w.msg)
		w.wmu.Unlock()
		if err != nil {
			w.st.errs[errSend]++
			return
		}
		timer := time.NewTimer(w.cfg.Timeout)
		select {
		case ok := <-w.replies:
			timer.Stop()
			if ok {
				w.st.responses++
				w.st.hist.Record(time.Since(sent))
			} else {
				w.st.errs[errTracker]++
			}
		case <-timer.C:
			w.st.errs[errTimeout]++
			return
		}
	}
}

// buildAnnounce writes the n-th announce: started first, then regular
// ones, each with fresh offer IDs (the tracker matches answers by them).
func (w *wsWorker) buildAnnounce(n uint64) {
	b := append(w.msg[:0], `{"action":"announce","info_hash":`...)
	b = append(b, w.ih...)
	b = append(b, `,"peer_id":`...)
	b = append(b, w.id...)
	b = append(b, `,"uploaded":0,"downloaded":0,"left":`...)
	b = strconv.AppendUint(b, w.wl.Left(w.t, w.p), 10)
	if n == 0 {
		b = append(b, `,"event":"started"`...)
	}
	b = append(b, `,"numwant":`...)
	b = strconv.AppendInt(b, int64(w.cfg.Offers), 10)
	b = append(b, `,"offers":[`...)
	for i := range w.cfg.Offers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"offer":{"type":"offer","sdp":"`+wsSDP+`"},"offer_id":"`...)
		// 20 digits: the connection's number, then the offer's; the
		// tracker matches an answer by its receiver and offer ID, so
		// these must not repeat across connections either.
		b = appendDigits(b, uint64(w.idx), 8)
		b = appendDigits(b, n*uint64(w.cfg.Offers)+uint64(i), 12)
		b = append(b, `"}`...)
	}
	w.msg = append(b, `]}`...)
}

// read handles what the tracker sends: announce replies go to the loop,
// offers are answered, answers counted.
func (w *wsWorker) read() {
	for {
		_, msg, err := w.conn.ReadMessage()
		if err != nil {
			select {
			case w.replies <- false:
			default:
			}
			return
		}
		switch {
		case bytes.Contains(msg, []byte(`"offer":`)):
			w.offers.Add(1)
			w.answerOffer(msg)
		case bytes.Contains(msg, []byte(`"answer":`)):
			w.answers.Add(1)
		case bytes.Contains(msg, []byte(`"failure reason"`)):
			w.replies <- false
		case bytes.Contains(msg, []byte(`"interval"`)):
			w.replies <- true
		}
	}
}

// answerOffer answers an offer, copying its peer_id and offer_id as the
// tracker wrote them.
func (w *wsWorker) answerOffer(msg []byte) {
	from, ok1 := jsonField(msg, `"peer_id":`)
	oid, ok2 := jsonField(msg, `"offer_id":`)
	if !ok1 || !ok2 {
		w.badRead.Add(1)
		return
	}
	b := append(w.answer[:0], `{"action":"announce","info_hash":`...)
	b = append(b, w.ih...)
	b = append(b, `,"peer_id":`...)
	b = append(b, w.id...)
	b = append(b, `,"to_peer_id":`...)
	b = append(b, from...)
	b = append(b, `,"offer_id":`...)
	b = append(b, oid...)
	b = append(b, `,"answer":{"type":"answer","sdp":"`+wsSDP+`"}}`...)
	w.answer = b
	w.wmu.Lock()
	_ = w.conn.SetWriteDeadline(time.Now().Add(w.cfg.Timeout))
	_ = w.conn.WriteMessage(gws.TextMessage, b)
	w.wmu.Unlock()
}

// jsonField returns the JSON string after key in msg, quotes included.
func jsonField(msg []byte, key string) ([]byte, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return nil, false
	}
	i += len(key)
	for i < len(msg) && msg[i] == ' ' {
		i++
	}
	if i >= len(msg) || msg[i] != '"' {
		return nil, false
	}
	for j := i + 1; j < len(msg); j++ {
		switch msg[j] {
		case '\\':
			j++
		case '"':
			return msg[i : j+1], true
		}
	}
	return nil, false
}

// appendJSONBinary appends b as a JSON binary string (each byte the code
// point of its value).
func appendJSONBinary(dst, b []byte) []byte {
	dst = append(dst, '"')
	for _, c := range b {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, `\u00`...)
			dst = append(dst, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		case c < 0x80:
			dst = append(dst, c)
		default:
			dst = append(dst, 0xC0|c>>6, 0x80|c&0x3F)
		}
	}
	return append(dst, '"')
}

// appendDigits appends v in decimal, zero-padded to width digits (the
// lowest ones if it has more).
func appendDigits(b []byte, v uint64, width int) []byte {
	for i := width - 1; i >= 0; i-- {
		b = append(b, 0)
	}
	for i := len(b) - 1; i >= len(b)-width; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}
