// Package chihaya is the tracker as a library: a Go program builds a
// tracker from a configuration (the same YAML the chihaya command reads,
// or a Config built in Go), adds hooks and storage drivers of its own,
// and runs, reloads and stops it. The chihaya command (cmd/chihaya) is a
// thin user of this package: flags, signals, and the imports that
// register the standard hooks and drivers.
//
// A program that adds a hook:
//
//	import (
//		"github.com/chihaya/chihaya"
//		"github.com/chihaya/chihaya/middleware"
//		_ "github.com/chihaya/chihaya/storage/memory" // the drivers and hooks it uses
//	)
//
//	func init() {
//		chihaya.RegisterHook(middleware.Plugin[myConfig]{Name: "my hook", New: newMyHook})
//	}
//
//	func main() {
//		t, err := chihaya.StartFile("/etc/chihaya.yaml") // `prehooks: [{name: my hook}]`
//		if err != nil {
//			log.Fatal(err)
//		}
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		defer stop()
//		err = t.Run(ctx) // serves until ctx ends, then stops gracefully
//	}
//
// docs/examples/customhook is such a program, built and tested with the
// rest; docs/library.md compares this with building chihaya itself with
// an extra plugin, as xcaddy and CoreDNS's plugin.cfg do.
package chihaya

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
)

// RegisterHook makes a hook available under p.Name in the `prehooks` and
// `posthooks` lists, as the hooks of middleware/<name> do in their init.
// Call it before the configuration is read (from init, or first in
// main). Registering a name twice panics.
func RegisterHook[C yamlconf.Validator](p middleware.Plugin[C]) { middleware.Register(p) }

// RegisterStorage makes a PeerStore driver available under d's name for
// `storage.name`, as storage/memory and storage/redis do. Registering a
// name twice panics.
func RegisterStorage[C yamlconf.Validator](d storage.Driver[C]) { storage.Register(d) }

// StartFile reads the configuration file at path, logs it (and what it
// allows that an operator probably did not mean to), and starts the
// tracker it configures, as the chihaya command does.
func StartFile(path string) (*Tracker, error) {
	written, cfg, err := ReadConfig(path)
	if err != nil {
		return nil, err
	}
	LogConfig(path, cfg)
	LogWarnings(cfg)
	t, err := Start(path, written, cfg)
	if err != nil {
		return nil, err
	}
	logrus.Info("chihaya started")
	return t, nil
}

// Run serves until ctx ends, then stops the tracker within the
// configuration's shutdown_timeout.
func (s *Tracker) Run(ctx context.Context) error {
	<-ctx.Done()
	stop, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout())
	defer cancel()
	begin := time.Now()
	if err := s.Stop(stop); err != nil {
		return err
	}
	logrus.WithField("took", time.Since(begin).String()).Info("chihaya stopped")
	return nil
}

// ShutdownTimeout is how long Stop is given by Run and by the chihaya
// command: the configuration's shutdown_timeout.
func (s *Tracker) ShutdownTimeout() time.Duration { return s.cfg.ShutdownTimeout }
