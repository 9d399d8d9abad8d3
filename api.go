package chihaya

import (
	"context"
	"errors"
	"slices"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/middleware/torrentapproval"
	"github.com/chihaya/chihaya/pkg/operator"
	"github.com/chihaya/chihaya/storage"
)

// Version is the version the operator API and status page report. A
// program sets it before Start (cmd/chihaya sets what it was built as).
var Version = "unknown"

// startAPI mounts the operator API and status page on the metrics server
// when api.tokens_file is set: it reads the store, and the approval list
// of the running torrent approval hook (found anew at each request, since
// a reload may replace the hook).
func (s *Tracker) startAPI(cfg Config) error {
	if !cfg.API.Enabled() || s.metrics == nil {
		return nil
	}
	store, err := newOperatorStore(s.store)
	if err != nil {
		return err
	}
	api, err := operator.New(cfg.API, operator.Options{
		Store:    store,
		Approval: func() operator.ApprovalList { return approvalList(s.logic) },
		Version:  Version,
	})
	if err != nil {
		return err
	}
	for _, p := range api.Patterns() {
		s.metrics.Handle(p, api.Handler())
	}
	api.Start()
	s.api = api
	s.push("api", api.Stop)
	logrus.WithFields(logrus.Fields{"tokens": api.Tokens(), "history_bytes_max": operator.HistoryBytes(cfg.API.HistoryInterval)}).Info("operator API and status page on the metrics server")
	return nil
}

// The torrent approval hook's list is the one the operator API changes.
var _ operator.ApprovalList = (*torrentapproval.Hook)(nil)

// approvalList returns the first running hook whose torrent list can be
// changed, or nil.
func approvalList(l *middleware.Logic) operator.ApprovalList {
	pre, post := l.Hooks()
	for _, h := range append(pre, post...) {
		if a, ok := h.(operator.ApprovalList); ok {
			return a
		}
	}
	return nil
}

// reloadAPI reads the tokens file again; a file that does not load keeps
// the tokens in use.
func (s *Tracker) reloadAPI() {
	if s.api == nil {
		return
	}
	if err := s.api.Reload(); err != nil {
		logrus.WithError(err).Error("api tokens not reloaded; keeping the tokens in use")
		return
	}
	logrus.WithField("tokens", s.api.Tokens()).Info("api tokens reloaded")
}

// checkAPI checks the tokens file for `chihaya validate`.
func checkAPI(cfg Config) error {
	if !cfg.API.Enabled() {
		return nil
	}
	_, err := operator.CheckTokensFile(cfg.API.TokensFile)
	return err
}

// apiWarning warns of a tokens file others may read.
func apiWarning(cfg Config) string {
	if !cfg.API.Enabled() {
		return ""
	}
	w, _ := operator.CheckTokensFile(cfg.API.TokensFile)
	return w
}

// operatorStore shows the running store to the operator server in the
// operator's own types (pkg/operator imports none of the tracker's
// packages). Both index their per-family counts by address family, IPv4
// first, so the counts are copied as they are.
type operatorStore struct {
	store  storage.PeerStore
	lister storage.Lister
}

var _ operator.Store = operatorStore{}

// newOperatorStore adapts s, which must be able to list its swarms.
func newOperatorStore(s storage.PeerStore) (operatorStore, error) {
	l, ok := s.(storage.Lister)
	if !ok {
		return operatorStore{}, errors.New("api: the store cannot list its swarms")
	}
	return operatorStore{store: s, lister: l}, nil
}

func (o operatorStore) Stats() (operator.Stats, error) {
	st, err := o.store.Stats()
	return operator.Stats(st), err
}

func (o operatorStore) Swarm(ih [20]byte) (operator.Swarm, error) {
	sw := operator.Swarm{InfoHash: ih}
	v4, err := o.store.ScrapeSwarm(ih, bittorrent.IPv4)
	if err != nil {
		return sw, err
	}
	v6, err := o.store.ScrapeSwarm(ih, bittorrent.IPv6)
	if err != nil {
		return sw, err
	}
	sw.Seeders = [2]uint32{v4.Seeders, v6.Seeders}
	sw.Leechers = [2]uint32{v4.Leechers, v6.Leechers}
	sw.Downloads = v4.Downloads // the torrent's, the same for both families
	return sw, nil
}

// Walk copies each batch into one buffer per walk, reused from batch to
// batch: no allocation per swarm.
func (o operatorStore) Walk(ctx context.Context, fn func(batch []operator.Swarm) error) error {
	var buf []operator.Swarm
	return o.lister.Walk(ctx, nil, func(batch []storage.Swarm) error {
		buf = slices.Grow(buf[:0], len(batch))
		for i := range batch {
			sw := &batch[i]
			buf = append(buf, operator.Swarm{InfoHash: sw.InfoHash, Seeders: sw.Seeders, Leechers: sw.Leechers, Downloads: sw.Downloads})
		}
		return fn(buf)
	})
}

func (o operatorStore) Groups(ih [20]byte) ([]operator.Group, error) {
	groups, err := o.lister.Groups(ih)
	if err != nil || len(groups) == 0 {
		return nil, err
	}
	out := make([]operator.Group, len(groups))
	for i, g := range groups {
		out[i] = operator.Group{Name: g.Name, Family: operator.Family(g.Family), Seeders: g.Seeders, Leechers: g.Leechers}
	}
	return out, nil
}
