package chihaya

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/sirupsen/logrus"

	httpfrontend "github.com/chihaya/chihaya/frontend/http"
	wsfrontend "github.com/chihaya/chihaya/frontend/websocket"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/metrics"
	"github.com/chihaya/chihaya/pkg/operator"
	"github.com/chihaya/chihaya/pkg/yamlconf"
	"github.com/chihaya/chihaya/storage"
)

// component is one started part of the tracker, kept so that shutdown can
// stop the parts in the reverse order of start.
type component struct {
	name string
	stop func(ctx context.Context) error
}

// Tracker is a running tracker: its frontends, hooks, store and operator
// server, built from one configuration.
type Tracker struct {
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

// NewStore constructs the configured PeerStore through the driver
// registry. Configuration errors are keyed ("storage.config.shard_count")
// and get the file's lines; others (a connection refused) name the driver
// themselves ("storage/redis: ").
func NewStore(c Config) (storage.PeerStore, error) {
	b, err := storageYAML(c.Storage)
	if err != nil {
		return nil, err
	}
	store, err := storage.New(c.Storage.Name, b)
	return store, c.locate(err)
}

// checkStorage checks the storage configuration as NewStore would,
// without a store that runs or connects (storage.Check).
func checkStorage(ctx context.Context, c Config) error {
	b, err := storageYAML(c.Storage)
	if err != nil {
		return err
	}
	return c.locate(storage.Check(ctx, c.Storage.Name, b))
}

// NewHooks constructs both hook lists; errors are keyed from the list
// ("prehooks[0].options.whitelist") and get the file's lines.
func NewHooks(c Config) (pre, post []middleware.Hook, err error) {
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

// inFile names the configuration file in an error about it, as ReadConfig
// does; other errors (a connection refused) are about something else.
func inFile(path string, err error) error {
	if path != "" && yamlconf.IsConfig(err) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return err
}

// Check runs everything start-up runs except binding ports and
// side effects: read, decode, defaults, validate, and the store's and the
// hooks' own checks. Components whose construction reaches out (the redis
// store connects, the jwt hook fetches its key set) only have their
// configuration checked; the others are built and stopped again. It is
// the `validate` command.
func Check(ctx context.Context, path string) (warnings []string, err error) {
	_, cfg, err := ReadConfig(path)
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

// LogWarnings logs what configWarnings finds, once each.
func LogWarnings(c Config) {
	for _, w := range configWarnings(c) {
		logrus.Warn(w)
	}
}

// LogConfig logs the configuration in use, defaults included, once at
// start. Secrets (udp.private_key, hook options) are left out.
func LogConfig(path string, c Config) {
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

// Start brings the tracker up from a configuration read by ReadConfig or
// built in Go: metrics server, storage, logic, frontends. cfg is given its
// defaults and validated first (as ReadConfig does; doing it again is
// harmless), so a Config that sets only what it needs, such as UDP.Addr,
// is enough. path is the file it was read from, named in errors and read
// again by Reload; "" for a configuration built in Go. written is the
// configuration as written, which Reload compares with the next one (the
// same as cfg when built in Go). On error, whatever was started is
// stopped again.
func Start(path string, written, cfg Config) (s *Tracker, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, inFile(path, cfg.locate(err))
	}
	s = &Tracker{path: path, written: written, cfg: cfg, addrs: map[string]string{}}
	defer func() {
		if err != nil {
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			_ = s.Stop(ctx)
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

	store, err := NewStore(cfg)
	if err != nil {
		return s, inFile(path, err)
	}
	s.store = store
	s.push("storage", store.Stop)
	if s.metrics != nil {
		s.metrics.SetCheck("storage", store.Ready)
	}

	pre, post, err := NewHooks(cfg)
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

func (s *Tracker) push(name string, stop func(context.Context) error) {
	s.started = append(s.started, component{name: name, stop: stop})
}

func (s *Tracker) pushFrontend(f *runningFrontend) {
	s.push(f.name, f.stop)
	for _, l := range f.listeners {
		s.listening(l.frontend, l.addr.String())
	}
}

// listening records and logs a bound listener. The log line is how
// operators and tests learn the real port when the configuration says 0.
func (s *Tracker) listening(frontend, addr string) {
	s.addrs[frontend] = addr
	logrus.WithFields(logrus.Fields{"frontend": frontend, "addr": addr}).Info("listening")
}

// Addr is the bound address of a listener, or "" if there is none.
func (s *Tracker) Addr(frontend string) string { return s.addrs[frontend] }

// Stop stops every started component in the reverse order of start,
// all within ctx's deadline: the frontends stop accepting and finish what
// is in flight, the logic applies queued swarm updates, the store stops,
// and the metrics server goes last so that it can be scraped until the end.
func (s *Tracker) Stop(ctx context.Context) error {
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

// Reload re-reads the configuration file and swaps in the hooks it lists,
// keeping the running hooks whose entries did not change (with their
// state: the jwt hook's keys, the rate limiter's budgets) and having them
// re-read their files; then the store re-reads its own files (the
// locality topology). Nothing else is rebuilt, so the swarms are kept;
// changes to other keys are only reported. A file that does not load
// leaves the running configuration as it is, and nothing is re-read. A
// tracker started from a configuration built in Go (path "") has no file
// to re-read: Reload logs that and changes nothing; use Apply.
func (s *Tracker) Reload() {
	// The API's tokens file is read whatever becomes of the rest: a
	// revoked token must not outlive a typo elsewhere in the file.
	s.reloadAPI()
	if s.path == "" {
		logrus.Error("reload failed: the tracker was started from a configuration built in Go, not read from a file; call Apply with the new configuration")
		return
	}
	written, cfg, err := ReadConfig(s.path)
	if err != nil {
		logrus.WithError(err).Error("reload failed; keeping the running configuration")
		return
	}
	if err := s.Apply(written, cfg); err != nil {
		logrus.WithError(err).Error("reload failed; keeping the running configuration")
	}
}

// Apply is Reload with a configuration the caller read or built: the
// hooks are swapped as Reload says, the store re-reads its files, and
// changes to other keys are logged as needing a restart. On error the
// running configuration is kept.
func (s *Tracker) Apply(written, cfg Config) error {
	if err := s.logic.ReloadHooks(s.cfg.PreHooks, s.cfg.PostHooks, cfg.PreHooks, cfg.PostHooks); err != nil {
		if s.path == "" {
			return cfg.locate(err)
		}
		return fmt.Errorf("%s: %w", s.path, cfg.locate(err))
	}
	for _, key := range RestartKeys(s.written, written) {
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
	LogWarnings(s.cfg)
	logrus.WithFields(logrus.Fields{
		"prehooks":  hookNames(cfg.PreHooks),
		"posthooks": hookNames(cfg.PostHooks),
	}).Info("configuration reloaded")
	return nil
}

// RestartKeys lists the top-level keys whose change a reload cannot apply.
// It compares the files as written, not with defaults applied, because
// some defaults (a random udp.private_key) differ on every load.
func RestartKeys(old, next Config) []string {
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
		name, inline := YAMLKey(f)
		if inline {
			name = "announce_interval/min_announce_interval"
		}
		keys = append(keys, name)
	}
	return keys
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
