package httpapproval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/pkg/clock"
)

// The service side of the hook: asking the operator's service a question
// (bounded in flight, behind a breaker), reading its answer, and logging
// and counting what fails.

// question is the request a question is about: an announce or a scrape.
// It is passed by value, so that a cache hit allocates nothing.
type question struct {
	ann *bittorrent.AnnounceRequest
	scr *bittorrent.ScrapeRequest
}

func (q question) fields(d *middleware.Describer) any {
	if q.ann != nil {
		return d.Announce(q.ann)
	}
	return d.Scrape(q.scr)
}

// serviceError is a failed question, with its kind for the metric.
type serviceError struct {
	kind string
	err  error
}

func (e *serviceError) Error() string { return e.kind + ": " + e.err.Error() }
func (e *serviceError) Unwrap() error { return e.err }

var (
	errOverload    = &serviceError{kindOverload, errors.New("max_in_flight questions already in flight")}
	errBreakerOpen = &serviceError{kindBreakerOpen, errors.New("breaker open after repeated failures")}
	errPanicked    = errors.New("http approval: asking the service panicked")
)

// ask puts the question to the service, unless the breaker is open or
// too many questions are in flight.
func (h *Hook) ask(q question) (answer, error) {
	now := clock.Monotonic()
	if !h.brk.allow(now) {
		serviceErrors.WithLabelValues(kindBreakerOpen).Inc()
		return answer{}, errBreakerOpen
	}
	select {
	case h.sem <- struct{}{}:
	default:
		h.brk.release()
		serviceErrors.WithLabelValues(kindOverload).Inc()
		h.logError(errOverload)
		return answer{}, errOverload
	}
	a, err := h.guardedPost(q)
	if err != nil {
		var se *serviceError
		if errors.As(err, &se) {
			serviceErrors.WithLabelValues(se.kind).Inc()
		}
		h.logError(err)
		if h.brk.failure(clock.Monotonic()) {
			logrus.WithFields(logrus.Fields{"hook": Name, "url": h.cfg.URL, "cooldown": h.cfg.BreakerCooldown.String()}).Warn("http approval: breaker open; not asking the service for a while")
		}
		return answer{}, err
	}
	if h.brk.success() {
		logrus.WithFields(logrus.Fields{"hook": Name, "url": h.cfg.URL}).Info("http approval: service answers again; breaker closed")
	}
	return a, nil
}

// guardedPost posts the question holding a max_in_flight slot. Should it
// panic (the frontend recovers), the slot is given back and the failure
// recorded, so that a probe of the breaker is not left taken: either would
// otherwise stop the hook from asking the service until a restart.
func (h *Hook) guardedPost(q question) (answer, error) {
	defer func() {
		<-h.sem
		if r := recover(); r != nil {
			h.brk.failure(clock.Monotonic())
			panic(r)
		}
	}()
	return h.post(q.fields(h.desc))
}

// post sends one question and reads the answer.
func (h *Hook) post(fields any) (answer, error) {
	body, err := json.Marshal(fields)
	if err != nil {
		return answer{}, &serviceError{kindBadResponse, err}
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.Timeout)
	defer cancel()
	start := time.Now()
	resp, err := h.ep.Post(ctx, "application/json", "chihaya http approval", body)
	if err != nil {
		serviceDuration.Observe(time.Since(start).Seconds())
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return answer{}, &serviceError{kindTimeout, err}
		}
		return answer{}, &serviceError{kindConnection, err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	serviceDuration.Observe(time.Since(start).Seconds())
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return answer{}, &serviceError{kindRedirect, fmt.Errorf("status %d (redirects are not followed)", resp.StatusCode)}
	case resp.StatusCode != http.StatusOK:
		return answer{}, &serviceError{kindStatus, fmt.Errorf("status %d", resp.StatusCode)}
	case err != nil:
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return answer{}, &serviceError{kindTimeout, err}
		}
		return answer{}, &serviceError{kindConnection, err}
	case len(data) > MaxResponseBytes:
		return answer{}, &serviceError{kindBadResponse, fmt.Errorf("answer longer than %d bytes", MaxResponseBytes)}
	}
	a, err := parseAnswer(data)
	if err != nil {
		return answer{}, &serviceError{kindBadResponse, err}
	}
	return a, nil
}

// reply is the JSON answer of the service.
type reply struct {
	Allow    *bool   `json:"allow"`
	Reason   *string `json:"reason"`
	Interval *int64  `json:"interval"`
}

// parseAnswer reads the service's JSON answer: `allow` is required; a
// refusal's `reason` is cleaned and cut for clients; `interval` (seconds)
// is optional.
func parseAnswer(data []byte) (answer, error) {
	var r reply
	if err := json.Unmarshal(data, &r); err != nil {
		return answer{}, fmt.Errorf("answer is not the expected JSON object: %w", err)
	}
	if r.Allow == nil {
		return answer{}, errors.New(`answer has no boolean "allow"`)
	}
	var a answer
	if r.Interval != nil {
		iv := time.Duration(*r.Interval) * time.Second
		if *r.Interval <= 0 || iv > MaxInterval {
			return answer{}, fmt.Errorf(`answer's "interval" must be 1 to %d seconds, got %d`, int64(MaxInterval/time.Second), *r.Interval)
		}
		a.interval = iv
	}
	if !*r.Allow {
		reason := defaultReason
		if r.Reason != nil {
			if s := cleanReason(*r.Reason); s != "" {
				reason = s
			}
		}
		a.err = middleware.Refusal{Reason: "refused_by_service", Err: bittorrent.ClientError(reason)}
	}
	return a, nil
}

// cleanReason makes a service's refusal text safe to show a client: valid
// UTF-8 without control characters, one line, at most MaxReasonBytes,
// cut on a character boundary.
func cleanReason(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > MaxReasonBytes {
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}

// logError logs a service failure at most once a second, so that a
// service that is down does not flood the log.
func (h *Hook) logError(err error) {
	now := clock.Monotonic()
	last := h.logged.Load()
	if now-last < int64(time.Second) || !h.logged.CompareAndSwap(last, now) {
		return
	}
	on := "refused"
	if h.admit {
		on = "admitted"
	}
	logrus.WithError(err).WithFields(logrus.Fields{"hook": Name, "url": h.cfg.URL, "on_error": on}).Error("http approval: service failed; requests " + on + " (logged at most once a second)")
}

// breaker stops asking a failing service: after threshold failures in a
// row it opens for cooldown, then lets one question through as a probe;
// the probe's success closes it, its failure opens it again.
type breaker struct {
	threshold int32
	cooldown  int64

	failures  atomic.Int32
	openUntil atomic.Int64 // clock.Monotonic; 0 when closed
	probing   atomic.Bool
}

// allow reports whether a question may be asked now.
func (b *breaker) allow(now int64) bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	if now < until {
		return false
	}
	return b.probing.CompareAndSwap(false, true)
}

// release gives back a probe that was not asked.
func (b *breaker) release() { b.probing.Store(false) }

// failure records a failed question; it reports whether the breaker
// opened.
func (b *breaker) failure(now int64) bool {
	if b.probing.Load() {
		b.openUntil.Store(now + b.cooldown)
		b.probing.Store(false)
		return false
	}
	if b.failures.Add(1) >= b.threshold && b.openUntil.Load() == 0 {
		b.openUntil.Store(now + b.cooldown)
		breakerOpen.Set(1)
		return true
	}
	return false
}

// success records an answered question; it reports whether the breaker
// closed.
func (b *breaker) success() bool {
	b.failures.Store(0)
	if b.openUntil.Load() == 0 {
		return false
	}
	b.openUntil.Store(0)
	b.probing.Store(false)
	breakerOpen.Set(0)
	return true
}
