package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errKind classifies a failed request.
type errKind int

// The kinds of failure a run counts. Their names are the keys of the
// result's "errors" object.
const (
	errTimeout    errKind = iota // no reply within --timeout
	errTracker                   // a UDP error reply or an HTTP failure reason
	errBadReply                  // a reply the generator cannot read
	errStale                     // a UDP reply to no request in flight (late or foreign)
	errSend                      // the request could not be sent
	errRecv                      // reading failed (e.g. connection refused)
	errDial                      // an HTTP connection could not be opened
	errHTTPStatus                // an HTTP status other than 200
	errClosed                    // an HTTP connection closed before its reply was complete
	numErrKinds
)

var errKindNames = [numErrKinds]string{
	errTimeout:    "timeout",
	errTracker:    "tracker_error",
	errBadReply:   "bad_reply",
	errStale:      "stale_reply",
	errSend:       "send",
	errRecv:       "recv",
	errDial:       "dial",
	errHTTPStatus: "http_status",
	errClosed:     "closed_early",
}

// stats is what one worker counts; workers never share one, and they are
// merged once the run is over.
type stats struct {
	hist      Histogram
	sent      uint64 // requests sent, retries and connects included
	responses uint64 // announce or scrape replies that succeeded
	connects  uint64 // UDP connect replies, or HTTP connections opened
	acked     uint64 // fill: distinct peers acknowledged
	errs      [numErrKinds]uint64
}

func (s *stats) merge(o *stats) {
	s.hist.Merge(&o.hist)
	s.sent += o.sent
	s.responses += o.responses
	s.connects += o.connects
	s.acked += o.acked
	for i := range s.errs {
		s.errs[i] += o.errs[i]
	}
}

// Latency holds latency percentiles, in microseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

// Result is one run's outcome, printed as a human line and a JSON line.
type Result struct {
	Mode     string `json:"mode"`
	Label    string `json:"label,omitempty"`
	Target   string `json:"target"`
	Seed     uint64 `json:"seed"`
	Torrents int    `json:"torrents"`
	Peers    int    `json:"peers"`
	Sockets  int    `json:"sockets"`
	Inflight int    `json:"inflight"`

	Seconds      float64 `json:"seconds"`
	Sent         uint64  `json:"sent"`
	Responses    uint64  `json:"responses"`
	Connects     uint64  `json:"connects"`
	ResponsesPS  float64 `json:"responses_per_s"`
	LatencyMicro Latency `json:"latency_us"`

	Errors      map[string]uint64 `json:"errors"`
	ErrorsTotal uint64            `json:"errors_total"`

	// CPUUser and CPUSys are the generator's own CPU seconds during the
	// run; CPUUtil is their sum over the wall time (1.0 = one core busy).
	CPUUser float64 `json:"cpu_user_s"`
	CPUSys  float64 `json:"cpu_sys_s"`
	CPUUtil float64 `json:"cpu_util"`
	// Ceiling is responses per generator CPU-second: the rate the
	// generator could sustain on one core, were the tracker infinitely
	// fast. A measured rate close to it means the generator was the limit.
	Ceiling float64 `json:"generator_ceiling_per_cpu_s"`

	// Fill only: how many peers were to be announced and how many were
	// acknowledged.
	FillWanted uint64 `json:"fill_wanted,omitempty"`
	FillAcked  uint64 `json:"fill_acked,omitempty"`

	// ws-announce only: offers relayed to the generator's connections
	// and answers relayed back, in all and per second. Responses are
	// the announce replies.
	Offers    uint64  `json:"offers_relayed,omitempty"`
	Answers   uint64  `json:"answers_relayed,omitempty"`
	OffersPS  float64 `json:"offers_relayed_per_s,omitempty"`
	AnswersPS float64 `json:"answers_relayed_per_s,omitempty"`
}

// rusage returns the process's user and system CPU time.
func rusage() (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// cpuMeter measures the generator's own CPU use over a run.
type cpuMeter struct {
	start          time.Time
	user0, system0 time.Duration
}

// workerBase is what every mode's worker has: when the run started, and
// its tallies.
type workerBase struct {
	start time.Time
	st    stats
}

func (b *workerBase) base() *workerBase { return b }

// runAll runs every worker in a goroutine of its own from start, waits for
// all of them, and merges their tallies.
func runAll[W interface {
	base() *workerBase
	run()
}](workers []W, start time.Time) stats {
	var wg sync.WaitGroup
	for _, w := range workers {
		w.base().start = start
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run()
		}()
	}
	wg.Wait()
	var total stats
	for _, w := range workers {
		total.merge(&w.base().st)
	}
	return total
}

func startCPU() cpuMeter {
	u, s := rusage()
	return cpuMeter{start: time.Now(), user0: u, system0: s}
}

func (m cpuMeter) stop() (wall, user, sys time.Duration) {
	u, s := rusage()
	return time.Since(m.start), u - m.user0, s - m.system0
}

func newResult(cfg *runConfig, st *stats, m cpuMeter) Result {
	wall, user, sys := m.stop()
	r := Result{
		Mode: cfg.Mode, Label: cfg.Label, Target: cfg.Target.String(), Seed: cfg.Workload.Seed,
		Torrents: cfg.Workload.Torrents, Peers: cfg.Workload.Peers,
		Sockets: cfg.Sockets, Inflight: cfg.Inflight,
		Seconds: wall.Seconds(), Sent: st.sent, Responses: st.responses, Connects: st.connects,
		Errors:  map[string]uint64{},
		CPUUser: user.Seconds(), CPUSys: sys.Seconds(),
	}
	if r.Seconds > 0 {
		r.ResponsesPS = float64(st.responses) / r.Seconds
		r.CPUUtil = (r.CPUUser + r.CPUSys) / r.Seconds
	}
	if cpu := r.CPUUser + r.CPUSys; cpu > 0 {
		r.Ceiling = float64(st.responses) / cpu
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	r.LatencyMicro = Latency{
		P50: us(st.hist.Quantile(0.5)), P90: us(st.hist.Quantile(0.9)),
		P99: us(st.hist.Quantile(0.99)), P999: us(st.hist.Quantile(0.999)),
		Max: us(st.hist.Max()),
	}
	for k, n := range st.errs {
		if n > 0 {
			r.Errors[errKindNames[k]] = n
			r.ErrorsTotal += n
		}
	}
	return r
}

// Write prints r as one human line and one JSON line.
func (r Result) Write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Mode, r.Target)
	if r.Label != "" {
		fmt.Fprintf(&b, " [%s]", r.Label)
	}
	fmt.Fprintf(&b, ": %.0f resp/s (%d in %.1fs)", r.ResponsesPS, r.Responses, r.Seconds)
	if isWS(r.Mode) {
		fmt.Fprintf(&b, ", relayed %.0f offers/s and %.0f answers/s", r.OffersPS, r.AnswersPS)
	}
	if r.FillWanted > 0 {
		fmt.Fprintf(&b, ", filled %d/%d peers", r.FillAcked, r.FillWanted)
	}
	l := r.LatencyMicro
	fmt.Fprintf(&b, "; latency µs p50 %.0f p90 %.0f p99 %.0f p999 %.0f max %.0f", l.P50, l.P90, l.P99, l.P999, l.Max)
	fmt.Fprintf(&b, "; errors %d", r.ErrorsTotal)
	if r.ErrorsTotal > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		b.WriteString(" (")
		for i, k := range kinds {
			if i > 0 {
				b.WriteString(" ")
			}
			fmt.Fprintf(&b, "%s=%d", k, r.Errors[k])
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, "; generator cpu %.2fs (%.0f%% of a core, ceiling ~%.0f resp/cpu-s)\n",
		r.CPUUser+r.CPUSys, 100*r.CPUUtil, r.Ceiling)
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(js, '\n'))
	return err
}
