// Package torrentapproval implements the `torrent approval` hook: it admits
// or refuses announces by info hash, from a whitelist or a blacklist given
// inline or in a file that is re-read when it changes.
package torrentapproval

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Name is the name operators write in the `prehooks` list.
const Name = "torrent approval"

var fileLoads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "chihaya",
	Subsystem: "middleware",
	Name:      "torrent_approval_file_loads_total",
	Help:      "Loads of a torrent approval list file, by result (ok, error); on error the previous list is kept.",
}, []string{"result"})

func init() {
	prometheus.MustRegister(fileLoads)
	fileLoads.WithLabelValues("ok")
	fileLoads.WithLabelValues("error")
	middleware.Register(plugin)
}

// plugin decodes the hook's options and builds it.
var plugin = middleware.Plugin[Config]{
	Name:     Name,
	Defaults: Config.WithDefaults,
	New:      func(c Config) (middleware.Hook, error) { return New(c) },
	Reasons:  []string{"unapproved_torrent"},
}

// ErrUnapprovedTorrent refuses an announce for a torrent the lists exclude.
// It is an interface value built once, so refusing does not allocate.
var ErrUnapprovedTorrent error = middleware.Refusal{
	Reason: "unapproved_torrent",
	Err:    bittorrent.ClientError("unapproved torrent: this tracker does not track this info hash"),
}

type hashSet map[bittorrent.InfoHash]struct{}

// Hook admits or refuses announces by info hash. The set is swapped whole
// when its file changes, so a lookup is one atomic load and one map probe.
type Hook struct {
	whitelist bool
	set       atomic.Pointer[hashSet]

	// The file, when the list comes from one, and what was last loaded.
	key, path string
	loaded    os.FileInfo
	// edit serialises the changes of the set: loads of the file and
	// SetListed, so that a load never puts back a list an edit replaced.
	edit sync.Mutex

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	// reload asks the watch to read the file now, and takes its answer.
	reload chan chan error
}

var (
	_ middleware.Hook     = (*Hook)(nil)
	_ middleware.Stopper  = (*Hook)(nil)
	_ middleware.Reloader = (*Hook)(nil)
)

// New builds the hook from a validated config, reading the list file if
// one is set, and starts watching it.
func New(cfg Config) (*Hook, error) {
	h := &Hook{whitelist: len(cfg.Whitelist) > 0 || cfg.WhitelistFile != ""}
	switch {
	case cfg.WhitelistFile != "":
		h.key, h.path = "whitelist_file", cfg.WhitelistFile
	case cfg.BlacklistFile != "":
		h.key, h.path = "blacklist_file", cfg.BlacklistFile
	}
	if h.path == "" {
		entries := cfg.Blacklist
		if h.whitelist {
			entries = cfg.Whitelist
		}
		set := make(hashSet, len(entries))
		for _, e := range entries {
			ih, _ := parseHash([]byte(e)) // validated
			set[ih] = struct{}{}
		}
		h.set.Store(&set)
		return h, nil
	}

	if err := h.load(); err != nil {
		fileLoads.WithLabelValues("error").Inc()
		return nil, err
	}
	fileLoads.WithLabelValues("ok").Inc()
	h.stop, h.done, h.reload = make(chan struct{}), make(chan struct{}), make(chan chan error)
	go h.watch(cfg.FileCheckInterval)
	return h, nil
}

// load reads the list file and swaps it in; on error the old set stays.
func (h *Hook) load() error {
	h.edit.Lock()
	defer h.edit.Unlock()
	fi, err := os.Stat(h.path)
	if err != nil {
		return yamlconf.Errorf(h.key, "%w", err)
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		return yamlconf.Errorf(h.key, "%w", err)
	}
	set, err := parseList(data)
	if err != nil {
		return yamlconf.Errorf(h.key, "%s:%w", h.path, err)
	}
	h.set.Store(&set)
	h.loaded = fi
	return nil
}

// same reports whether two stats describe the same version of the file:
// same identity (not replaced by a rename), size and modification time.
func same(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// watch polls the file. A change is loaded once the file has looked the
// same for a whole interval, so that a list being written in place (an
// editor truncates, then writes) is not loaded half-written; writing the
// new list elsewhere and renaming it over the old one is safer still.
func (h *Hook) watch(every time.Duration) {
	defer close(h.done)
	t := time.NewTicker(every)
	defer t.Stop()
	var pending os.FileInfo
	lastErr := ""
	for {
		select {
		case <-h.stop:
			return
		case reply := <-h.reload:
			pending = nil
			err := h.load()
			h.countLoad(err, "reloaded on request")
			lastErr = ""
			if err != nil {
				lastErr = err.Error()
			}
			reply <- err
			continue
		case <-t.C:
		}
		fi, err := os.Stat(h.path)
		if err == nil && same(fi, h.loaded) {
			pending = nil
			continue
		}
		if err == nil && (pending == nil || !same(fi, pending)) {
			pending = fi
			continue
		}
		pending = nil
		if err == nil {
			err = h.load()
		} else {
			err = yamlconf.Errorf(h.key, "%w", err)
		}
		if err != nil {
			// Remember the bad version, so that it is re-read only when
			// it changes again; a missing file is retried every tick but
			// reported once.
			if fi, serr := os.Stat(h.path); serr == nil {
				h.loaded = fi
			}
			if err.Error() != lastErr {
				lastErr = err.Error()
				h.countLoad(err, "changed")
			}
			continue
		}
		lastErr = ""
		h.countLoad(nil, "changed")
	}
}

// countLoad counts and logs a load of the list file after start-up.
func (h *Hook) countLoad(err error, why string) {
	if err != nil {
		fileLoads.WithLabelValues("error").Inc()
		logrus.WithError(err).WithField("trigger", why).Error("torrent approval: list file not reloaded; keeping the previous list")
		return
	}
	fileLoads.WithLabelValues("ok").Inc()
	logrus.WithFields(logrus.Fields{"hook": Name, "file": h.path, "entries": h.Len(), "trigger": why}).Info("torrent approval: list file reloaded")
}

// Reload reads the list file now (the daemon calls it on SIGUSR1 and
// SIGHUP). A file that does not load leaves the current list in place and
// is returned as the error. Without a file there is nothing to read.
func (h *Hook) Reload() error {
	if h.path == "" {
		return nil
	}
	reply := make(chan error, 1)
	select {
	case h.reload <- reply:
		return <-reply
	case <-h.done:
		return nil
	}
}

// Stop ends the file watch.
func (h *Hook) Stop() {
	if h.stop == nil {
		return
	}
	h.stopOnce.Do(func() { close(h.stop) })
	<-h.done
}

// Len returns the number of info hashes in the current list.
func (h *Hook) Len() int { return len(*h.set.Load()) }

// HandleAnnounce refuses the announce when its info hash is not whitelisted
// or is blacklisted.
func (h *Hook) HandleAnnounce(_ context.Context, req *bittorrent.AnnounceRequest, _ *bittorrent.AnnounceResponse) error {
	_, listed := (*h.set.Load())[req.InfoHash]
	if listed != h.whitelist {
		return ErrUnapprovedTorrent
	}
	return nil
}

// HandleScrape admits every scrape, as upstream Chihaya does: an
// unapproved torrent has no swarm, so its counts are zero anyway.
func (h *Hook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

// parseHash reads 40 hex digits, either case.
func parseHash(b []byte) (ih bittorrent.InfoHash, ok bool) {
	if len(b) != 2*len(ih) {
		return ih, false
	}
	_, err := hex.Decode(ih[:], b)
	return ih, err == nil
}

// parseList reads a list file: one info hash a line, blank lines and
// '#' comments (whole-line or trailing) ignored. Errors start with the line
// number, to follow "path:".
func parseList(data []byte) (hashSet, error) {
	// A line is 41 bytes; sizing the map up front spares a million-entry
	// load its rehashing.
	set := make(hashSet, len(data)/41+1)
	for n := 1; len(data) > 0; n++ {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		ih, ok := parseHash(line)
		if !ok {
			return nil, fmt.Errorf("%d: %q is not an info hash: want 40 hex digits", n, line)
		}
		set[ih] = struct{}{}
	}
	return set, nil
}
