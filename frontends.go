package chihaya

import (
	"context"
	"fmt"
	"net"

	"github.com/chihaya/chihaya/frontend"
	httpfrontend "github.com/chihaya/chihaya/frontend/http"
	udpfrontend "github.com/chihaya/chihaya/frontend/udp"
	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/storage"
)

type (
	httpConfig      = httpfrontend.Config
	udpConfig       = udpfrontend.Config
	webSocketConfig = wsfrontend.Config
)

// The HTTP frontend runs when either of its listeners is configured, as
// in upstream; the UDP frontend when its address is.
func httpEnabled(c httpConfig) bool { return c.Addr != "" || c.HTTPSAddr != "" }
func udpEnabled(c udpConfig) bool   { return c.Addr != "" }

// The WebSocket frontend runs when its address is set.
func webSocketEnabled(c webSocketConfig) bool { return c.Addr != "" }

// listener is one bound socket, for the "listening" log line.
type listener struct {
	frontend string
	addr     net.Addr
}

// runningFrontend is a started frontend, seen the same way whatever its
// protocol.
type runningFrontend struct {
	name      string
	listeners []listener
	stop      func(ctx context.Context) error
}

func startUDP(logic frontend.TrackerLogic, cfg udpConfig) (*runningFrontend, error) {
	f, err := udpfrontend.NewFrontend(logic, cfg)
	if err != nil {
		return nil, err
	}
	return &runningFrontend{
		name:      "udp",
		listeners: []listener{{"udp", f.Addr()}},
		stop:      f.Stop,
	}, nil
}

func startHTTP(logic frontend.TrackerLogic, cfg httpConfig) (*runningFrontend, error) {
	f, err := httpfrontend.NewFrontend(logic, cfg)
	if err != nil {
		return nil, err
	}
	rf := &runningFrontend{name: "http", stop: f.Stop}
	if a := f.Addr(); a != nil {
		rf.listeners = append(rf.listeners, listener{"http", a})
	}
	if a := f.TLSAddr(); a != nil {
		rf.listeners = append(rf.listeners, listener{"https", a})
	}
	return rf, nil
}

// startWebSocket starts the WebTorrent tracker. Its peers are only safe in
// a store that keeps them apart from BitTorrent clients' (the store would
// otherwise hand browsers' connection addresses to BitTorrent clients):
// both drivers do. With a store several instances share (redis), the
// frontend relays offers and answers through it (frontend.Relay).
func startWebSocket(logic frontend.TrackerLogic, store storage.PeerStore, storageName string, cfg webSocketConfig) (*runningFrontend, error) {
	if _, ok := store.(storage.KindKeeper); !ok {
		return nil, fmt.Errorf("websocket.addr: the %q storage driver does not keep WebSocket peers apart", storageName)
	}
	f, err := wsfrontend.NewFrontend(logic, cfg)
	if err != nil {
		return nil, err
	}
	scheme := "ws"
	if cfg.TLSCertPath != "" {
		scheme = "wss"
	}
	return &runningFrontend{
		name:      "websocket",
		listeners: []listener{{scheme, f.Addr()}},
		stop:      f.Stop,
	}, nil
}
