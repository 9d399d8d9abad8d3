package main

import (
	"context"
	"net"

	"github.com/chihaya/chihaya/frontend"
	httpfrontend "github.com/chihaya/chihaya/frontend/http"
	udpfrontend "github.com/chihaya/chihaya/frontend/udp"
)

type (
	httpConfig = httpfrontend.Config
	udpConfig  = udpfrontend.Config
)

// The HTTP frontend runs when either of its listeners is configured, as
// in upstream; the UDP frontend when its address is.
func httpEnabled(c httpConfig) bool { return c.Addr != "" || c.HTTPSAddr != "" }
func udpEnabled(c udpConfig) bool   { return c.Addr != "" }

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
