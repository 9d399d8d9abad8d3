package chihaya

import (
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/operator"
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
	api, err := operator.New(cfg.API, operator.Options{
		Store:    s.store,
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
