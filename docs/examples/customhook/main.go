// Command customhook is a tracker with a hook of its own, built on package
// chihaya: the `blocked ports` prehook refuses peers listening on ports
// that the operator's networks throttle. It reads the same configuration
// file as chihaya, in which the new hook is one more name:
//
//	chihaya:
//	  udp:
//	    addr: ":6969"
//	  prehooks:
//	    - name: blocked ports
//	      options:
//	        ports: [6881, 6889]
//
// SIGHUP reloads the hooks; SIGINT or SIGTERM stop the tracker.
package main

import (
	"context"
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/chihaya/chihaya"
	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/yamlconf"

	// The standard parts this tracker uses register themselves.
	_ "github.com/chihaya/chihaya/middleware/torrentapproval"
	_ "github.com/chihaya/chihaya/storage/memory"
)

// Config is the `options` mapping of the `blocked ports` hook.
type Config struct {
	Ports []uint16 `yaml:"ports"`
}

// Validate names the offending option, as every hook's does.
func (c Config) Validate() error {
	if len(c.Ports) == 0 {
		return yamlconf.Errorf("ports", "must list at least one port")
	}
	return nil
}

// errBlocked is built once, so that refusing does not allocate.
var errBlocked error = middleware.Refusal{
	Reason: "blocked_port",
	Err:    bittorrent.ClientError("port blocked on this tracker: listen on another port"),
}

type hook map[uint16]bool

func (h hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	if h[req.Peer.AddrPort.Port()] {
		return errBlocked
	}
	return nil
}

func (h hook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

func init() {
	chihaya.RegisterHook(middleware.Plugin[Config]{
		Name: "blocked ports",
		New: func(c Config) (middleware.Hook, error) {
			h := hook{}
			for _, p := range c.Ports {
				h[p] = true
			}
			return h, nil
		},
	})
}

func main() {
	config := flag.String("config", "/etc/chihaya.yaml", "the configuration file")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)

	t, err := chihaya.StartFile(*config)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for range hup {
			t.Reload()
		}
	}()
	if err := t.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
