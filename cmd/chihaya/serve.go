package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	httpfrontend "github.com/chihaya/chihaya/frontend/http"
	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/operator"
	"github.com/chihaya/chihaya/pkg/metrics"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
)

// component is one started part of the tracker, kept so that shutdown can
// stop the parts in the reverse order of start.
type component struct {
	name string
	stop func(ctx context.Context) error
}

// server is a running tracker.
type server struct {
	path    string
	written Config // as in the file, to tell what a reload changed
	cfg     Config // as used

	logic   *middleware.Logic
	store   storage.PeerStore
	api     *operator.Server
	metrics *metrics.Server
	started []component
	// addrs are the bound addresses by frontend name ("http", "https",
	// "udp", "metrics").
	addrs map[string]string

	// serving is false until every frontend is listening and again once
	// shutdown begins, so that /readyz takes the tracker out of a load
	// balancer before its listeners close.
	serving  atomic.Bool
	stopping atomic.Bool
}

var (
	errNotStarted = errors.New("not started yet")
	errStopping   = errors.New("shutting down")
)

// buildStorage constructs the configured PeerStore through the driver
// registry. Configuration errors are keyed ("storage.config.shard_count")
// and get the file's lines; others (a connection refused) name the driver
// themselves ("storage/redis: ").
func buildStorage(c Config) (storage.PeerStore, error) {
	b, err := storageYAML(c.Storage)
	if err != nil {
		return nil, err
	}
	store, err := storage.New(c.Storage.Name, b)
	return store, c.locate(err)
}

// checkStorage checks the storage configuration as buildStorage would,
// without a store that runs or connects (storage.Check).
func checkStorage(ctx context.Context, c Config) error {
	b, err := storageYAML(c.Storage)
	if err != nil {
		return err
	}
	return c.locate(storage.Check(ctx, c.Storage.Name, b))
}

// buildHooks constructs both hook lists; errors are keyed from the list
// ("prehooks[0].options.whitelist") and get the file's lines.
func buildHooks(c Config) (pre, post []middleware.Hook, err error) {
	pre, err = middleware.NewHooks(c.PreHooks)
	if err != nil {
		return nil, nil, c.locate(yamlconf.Under(err, "prehooks"))
	}
	post, err = middleware.NewHooks(c.PostHooks)
	if err != nil {
		middleware.StopHooks(pre)
		return nil, nil, c.locate(yamlconf.Under(err, "posthooks"))
	}
	return pre, post, nil
}

// inFile names the configuration file in an error about it, as readConfig
// does; other errors (a connection refused) are about something else.
func inFile(path string, err error) error {
	if yamlconf.IsConfig(err) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return err
}

// checkConfig runs everything start-up runs except binding ports and
// side effects: read, decode, defaults, validate, and the store's and the
// hooks' own checks. Components whose construction reaches out (the redis
// store connects, the jwt hook fetches its key set) only have their
// configuration checked; the others are built and stopped again. It is
// the `validate` command.
func checkConfig(ctx context.Context, path string) (warnings []string, err error) {
	_, cfg, err := readConfig(path)
	if err != nil {
		return nil, err
	}
	if _, err := httpfrontend.LoadTLS(cfg.HTTP); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if webSocketEnabled(cfg.WebSocket) {
		if _, err := wsfrontend.LoadTLS(cfg.WebSocket); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := checkStorage(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, list := range []struct {
		key   string
		hooks []middleware.HookConfig
	}{{"prehooks", cfg.PreHooks}, {"posthooks", cfg.PostHooks}} {
		if err := middleware.CheckHooks(list.hooks); err != nil {
			return nil, fmt.Errorf("%s: %w", path, cfg.locate(yamlconf.Under(err, list.key)))
		}
	}
	if err := checkAPI(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return configWarnings(cfg), nil
}

// configWarnings lists what a configuration allows that an operator
// probably did not mean to allow. The daemon logs them at start and on
// reload, and `chihaya validate` prints them.
func configWarnings(c Config) []string {
	var w []string
	if httpEnabled(c.HTTP) && c.HTTP.RealIPHeader != "" && len(c.HTTP.TrustedProxies) == 0 {
		msg := "http.real_ip_header is honoured from any sender, since http.trusted_proxies is empty: a client that reaches the tracker directly chooses the address it is stored under"
		for _, h := range c.PreHooks {
			if h.Name == "rate limit" {
				msg += ", and the address the rate limit counts it under"
				break
			}
		}
		w = append(w, msg+"; list your reverse proxies in http.trusted_proxies")
	}
	if a := apiWarning(c); a != "" {
		w = append(w, a)
	}
	return w
}

func logWarnings(c Config) {
	for _, w := range configWarnings(c) {
		logrus.Warn(w)
	}
}

// logConfig logs the configuration in use, defaults included, once at
// start. Secrets (udp.private_key, hook options) are left out.
func logConfig(path string, c Config) {
	logrus.WithFields(logrus.Fields{
		"config":                path,
		"announce_interval":     c.Logic.AnnounceInterval.String(),
		"min_announce_interval": c.Logic.MinAnnounceInterval.String(),
		"metrics_addr":          c.MetricsAddr,
		"enable_pprof":          c.EnablePprof,
		"shutdown_timeout":      c.ShutdownTimeout.String(),
		"http_addr":             c.HTTP.Addr,
		"https_addr":            c.HTTP.HTTPSAddr,
		"udp_addr":              c.UDP.Addr,
		"storage":               c.Storage.Name,
		"prehooks":              hookNames(c.PreHooks),
		"posthooks":             hookNames(c.PostHooks),
	}).Info("configuration loaded")
	udp := c.UDP
	if udp.PrivateKey != "" {
		udp.PrivateKey = "(set)"
	}
	logrus.WithFields(logrus.Fields{
		"http":           fmt.Sprintf("%+v", c.HTTP),
		"udp":            fmt.Sprintf("%+v", udp),
		"storage_config": fmt.Sprintf("%v", redact(c.Storage.Config)),
	}).Debug("configuration details")
}

// start brings the tracker up: metrics server, storage, logic, frontends.
// On error, whatever was started is stopped again.
func start(path string, written, cfg Config) (s *server, err error) {
	s = &server{path: path, written: written, cfg: cfg, addrs: map[string]string{}}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			_ = s.shutdown(ctx)
			s = nil
		}
	}()

	if cfg.MetricsAddr != "" {
		m, err := metrics.NewServer(cfg.MetricsAddr, metrics.Options{EnablePprof: cfg.EnablePprof})
		if err != nil {
			return s, err
		}
		s.metrics = m
		s.push("metrics", m.Stop)
		m.SetCheck("frontends", func(context.Context) error {
			if s.serving.Load() {
				return nil
			}
			if s.stopping.Load() {
				return errStopping
			}
			return errNotStarted
		})
		s.listening("metrics", m.Addr().String())
	}

	store, err := buildStorage(cfg)
	if err != nil {
		return s, inFile(path, err)
	}
	s.store = store
	s.push("storage", store.Stop)
	if s.metrics != nil {
		s.metrics.SetCheck("storage", store.Ready)
	}

	pre, post, err := buildHooks(cfg)
	if err != nil {
		return s, inFile(path, err)
	}
	s.logic = middleware.NewLogic(cfg.Logic, store, pre, post)
	s.push("logic", s.logic.Stop)
	if err := s.startAPI(cfg); err != nil {
		return s, err
	}

	if httpEnabled(cfg.HTTP) {
		f, err := startHTTP(s.logic, cfg.HTTP)
		if err != nil {
			return s, err
		}
		s.pushFrontend(f)
	}
	if udpEnabled(cfg.UDP) {
		f, err := startUDP(s.logic, cfg.UDP)
		if err != nil {
			return s, err
		}
		s.pushFrontend(f)
	}
	if webSocketEnabled(cfg.WebSocket) {
		f, err := startWebSocket(s.logic, store, cfg.Storage.Name, cfg.WebSocket)
		if err != nil {
			return s, err
		}
		s.pushFrontend(f)
	}
	s.serving.Store(true)
	return s, nil
}

func (s *server) push(name string, stop func(context.Context) error) {
	s.started = append(s.started, component{name: name, stop: stop})
}

func (s *server) pushFrontend(f *runningFrontend) {
	s.push(f.name, f.stop)
	for _, l := range f.listeners {
		s.listening(l.frontend, l.addr.String())
	}
}

// listening records and logs a bound listener. The log line is how
// operators and tests learn the real port when the configuration says 0.
func (s *server) listening(frontend, addr string) {
	s.addrs[frontend] = addr
	logrus.WithFields(logrus.Fields{"frontend": frontend, "addr": addr}).Info("listening")
}

// frontendAddr is the bound address of a listener, or "" if there is none.
func (s *server) frontendAddr(frontend string) string { return s.addrs[frontend] }

// shutdown stops every started component in the reverse order of start,
// all within ctx's deadline: the frontends stop accepting and finish what
// is in flight, the logic applies queued swarm updates, the store stops,
// and the metrics server goes last so that it can be scraped until the end.
func (s *server) shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.serving.Store(false)
	var errs []error
	for i := len(s.started) - 1; i >= 0; i-- {
		c := s.started[i]
		if err := c.stop(ctx); err != nil {
			logrus.WithError(err).WithField("component", c.name).Error("stop failed")
			errs = append(errs, fmt.Errorf("stop %s: %w", c.name, err))
			continue
		}
		logrus.WithField("component", c.name).Debug("stopped")
	}
	s.started = nil
	return errors.Join(errs...)
}

// reload re-reads the configuration file and swaps in the hooks it lists,
// keeping the running hooks whose entries did not change (with their
// state: the jwt hook's keys, the rate limiter's budgets) and having them
// re-read their files; then the store re-reads its own files (the
// locality topology). Nothing else is rebuilt, so the swarms are kept;
// changes to other keys are only reported. A file that does not load
// leaves the running configuration as it is, and nothing is re-read.
func (s *server) reload() {
	// The API's tokens file is read whatever becomes of the rest: a
	// revoked token must not outlive a typo elsewhere in the file.
	s.reloadAPI()
	written, cfg, err := readConfig(s.path)
	if err != nil {
		logrus.WithError(err).Error("reload failed; keeping the running configuration")
		return
	}
	if err := s.logic.ReloadHooks(s.cfg.PreHooks, s.cfg.PostHooks, cfg.PreHooks, cfg.PostHooks); err != nil {
		logrus.WithError(fmt.Errorf("%s: %w", s.path, cfg.locate(err))).Error("reload failed; keeping the running configuration")
		return
	}
	for _, key := range restartKeys(s.written, written) {
		logrus.WithField("key", key).Warn("configuration change needs restart; not applied")
	}
	s.written.PreHooks, s.written.PostHooks = written.PreHooks, written.PostHooks
	s.cfg.PreHooks, s.cfg.PostHooks = cfg.PreHooks, cfg.PostHooks
	if r, ok := s.store.(storage.Reloader); ok {
		if err := r.Reload(); err != nil {
			logrus.WithError(err).Error("storage reload failed; keeping the running topology")
		} else {
			logrus.Info("storage reloaded")
		}
	}
	logWarnings(s.cfg)
	logrus.WithFields(logrus.Fields{
		"prehooks":  hookNames(cfg.PreHooks),
		"posthooks": hookNames(cfg.PostHooks),
	}).Info("configuration reloaded")
}

// restartKeys lists the top-level keys whose change a reload cannot apply.
// It compares the files as written, not with defaults applied, because
// some defaults (a random udp.private_key) differ on every load.
func restartKeys(old, next Config) []string {
	var keys []string
	ov, nv := reflect.ValueOf(old), reflect.ValueOf(next)
	t := ov.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Name == "PreHooks" || f.Name == "PostHooks" || !f.IsExported() {
			continue
		}
		if reflect.DeepEqual(ov.Field(i).Interface(), nv.Field(i).Interface()) {
			continue
		}
		name, inline := yamlName(f)
		if inline {
			name = "announce_interval/min_announce_interval"
		}
		keys = append(keys, name)
	}
	return keys
}

// serve runs the tracker from the configuration file at path until SIGINT
// or SIGTERM; SIGUSR1 and SIGHUP reload the hooks.
func serve(path string) error {
	written, cfg, err := readConfig(path)
	if err != nil {
		return err
	}
	logConfig(path, cfg)
	logWarnings(cfg)

	// Subscribe before starting, so that a signal sent as soon as the
	// listening lines appear is not lost.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGHUP)
	defer signal.Stop(sigs)

	s, err := start(path, written, cfg)
	if err != nil {
		return err
	}
	logrus.Info("chihaya started")
	return s.wait(sigs)
}

// wait handles signals until one asks to stop, then shuts down.
func (s *server) wait(sigs <-chan os.Signal) error {
	for sig := range sigs {
		switch sig {
		case syscall.SIGUSR1, syscall.SIGHUP:
			logrus.WithField("signal", sig.String()).Info("reloading configuration")
			s.reload()
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
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
			begin := time.Now()
			err := s.shutdown(ctx)
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

// redact returns a copy of a driver's options fit for a log: secrets are
// replaced and passwords in URLs hidden.
func redact(opts map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(opts))
	for k, v := range opts {
		str, isString := v.(string)
		switch {
		case !isString:
			out[k] = v
		case strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.HasSuffix(k, "private_key"):
			out[k] = "(set)"
		default:
			if u, err := url.Parse(str); err == nil && u.User != nil {
				str = u.Redacted()
			}
			out[k] = str
		}
	}
	return out
}
