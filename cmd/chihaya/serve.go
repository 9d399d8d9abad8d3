package main

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya"
)

// serve runs the tracker from the configuration file at path until SIGINT
// or SIGTERM; SIGUSR1 and SIGHUP reload the hooks.
func serve(path string) error {
	// Subscribe before starting, so that a signal sent as soon as the
	// listening lines appear is not lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, append([]os.Signal{syscall.SIGINT, syscall.SIGTERM}, reloadSignals...)...)
	defer signal.Stop(sigs)

	s, err := chihaya.StartFile(path)
	if err != nil {
		return err
	}
	return wait(s, sigs)
}

// wait handles signals until one asks to stop, then shuts down.
func wait(s *chihaya.Tracker, sigs <-chan os.Signal) error {
	for sig := range sigs {
		switch {
		case slices.Contains(reloadSignals, sig):
			logrus.WithField("signal", sig.String()).Info("reloading configuration")
			s.Reload()
		default:
			logrus.WithField("signal", sig.String()).Info("shutting down")
			// A second SIGINT or SIGTERM is an operator who will not wait
			// for the graceful shutdown.
			go func() {
				for sig := range sigs {
					if sig == syscall.SIGINT || sig == syscall.SIGTERM {
						logrus.WithField("signal", sig.String()).Error("second signal; exiting without finishing the shutdown")
						os.Exit(1)
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout())
			begin := time.Now()
			err := s.Stop(ctx)
			cancel()
			if err != nil {
				return err
			}
			logrus.WithField("took", time.Since(begin).String()).Info("chihaya stopped")
			return nil
		}
	}
	return nil
}
