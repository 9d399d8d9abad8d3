package memory

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/clock"
	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// snapshots writes the store to snapshot_path every snapshot_interval and
// once more when the store stops, and reads it back when the store is
// built. A nil *snapshots is snapshots turned off.
type snapshots struct {
	path     string
	interval time.Duration
	// mu makes writes take turns: the periodic one and the final one at
	// Stop may overlap.
	mu sync.Mutex
	// lastGood is the creation time (Unix nanoseconds) of the newest good
	// snapshot on disk, or of the store's start when it has none.
	lastGood atomic.Int64
	// final is set once the final snapshot has been written: Stop may be
	// called again.
	final atomic.Bool
}

// The results of a restore, the values of the result label of
// chihaya_storage_snapshot_restores_total.
const (
	restoreOK         = "ok"
	restoreAbsent     = "absent"
	restoreCorrupt    = "corrupt"
	restoreTruncated  = "truncated"
	restoreNewer      = "newer_version"
	restoreOtherKind  = "other_store"
	restoreUnreadable = "unreadable"
)

var restoreResults = []string{restoreOK, restoreAbsent, restoreCorrupt, restoreTruncated, restoreNewer, restoreOtherKind, restoreUnreadable}

// restoreResult is the result label of a restore that failed with err.
func restoreResult(err error) string {
	switch {
	case errors.Is(err, errSnapshotCorrupt):
		return restoreCorrupt
	case errors.Is(err, errSnapshotTruncated):
		return restoreTruncated
	case errors.Is(err, errSnapshotNewer):
		return restoreNewer
	case errors.Is(err, errSnapshotOtherKind):
		return restoreOtherKind
	}
	return restoreUnreadable
}

var (
	snapshotDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "snapshot_duration_seconds",
		Help:      "Time taken to write one snapshot of the memory store, fsyncs included.",
		Buckets:   prometheus.ExponentialBuckets(0.001, 4, 9),
	})
	snapshotSize = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "snapshot_size_bytes",
		Help:      "Size of the last snapshot written of the memory store.",
	})
	snapshotWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "snapshot_writes_total",
		Help:      "Snapshots of the memory store written, by result (ok, error).",
	}, []string{"result"})
	snapshotRestores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "snapshot_restores_total",
		Help:      "Snapshot restores at start, by result (ok, absent, corrupt, truncated, newer_version, other_store, unreadable).",
	}, []string{"result"})
	snapshotIntervalGauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "chihaya",
		Subsystem: "storage",
		Name:      "snapshot_interval_seconds",
		Help:      "The configured snapshot_interval of the memory store; 0 with snapshots off.",
	})
	// active is the running store's snapshots, for the age gauge.
	active atomic.Pointer[snapshots]
)

// ageCollector exports chihaya_storage_snapshot_age_seconds: while a store
// with snapshots on runs, the seconds since its newest good snapshot was
// taken (or since it started, when it has none yet), computed when
// scraped; 0 otherwise, so that the series exists from the start (with
// chihaya_storage_snapshot_interval_seconds at 0, which says why).
type ageCollector struct{ desc *prometheus.Desc }

var snapshotAge = ageCollector{prometheus.NewDesc("chihaya_storage_snapshot_age_seconds",
	"Seconds since the newest good snapshot of the memory store was taken, or since start when there is none.", nil, nil)}

func (c ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c ageCollector) Collect(ch chan<- prometheus.Metric) {
	age := 0.0
	if sn := active.Load(); sn != nil {
		age = max(time.Since(time.Unix(0, sn.lastGood.Load())).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, age)
}

func init() {
	prometheus.MustRegister(snapshotDuration, snapshotSize, snapshotWrites, snapshotRestores, snapshotIntervalGauge, snapshotAge)
	for _, r := range []string{"ok", "error"} {
		snapshotWrites.WithLabelValues(r)
	}
	for _, r := range restoreResults {
		snapshotRestores.WithLabelValues(r)
	}
}

// checkSnapshotDir refuses a snapshot_path whose directory does not exist
// or cannot be written (probed by creating and removing a file there, as
// that is what a snapshot needs), or that names a directory.
func checkSnapshotDir(path string) error {
	const key = "snapshot_path"
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return yamlconf.Errorf(key, "%s is a directory; name a file in it", path)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".probe-*")
	if err != nil {
		return yamlconf.Errorf(key, "directory %s is not writable: %w", dir, unwrapPath(err))
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return yamlconf.Errorf(key, "directory %s: %w", dir, unwrapPath(err))
	}
	return nil
}

// unwrapPath drops the file name from a *fs.PathError, which for a probe
// is a random name that says nothing.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// startSnapshots restores the snapshot, if any, into the new store and
// starts the periodic writes. It runs in New, before the store is
// returned and so before any listener opens. A snapshot that cannot be
// used never fails the start: the store starts empty.
func (s *PeerStore) startSnapshots() {
	sn := &snapshots{path: s.cfg.SnapshotPath, interval: s.cfg.SnapshotInterval}
	s.snap = sn
	sn.lastGood.Store(time.Now().UnixNano())
	// Temporary files of a write that a crash interrupted. Matched by
	// prefix, not by a glob: a directory named like "state[1]" is no
	// pattern of itself.
	dir, prefix := filepath.Dir(sn.path), filepath.Base(sn.path)+".tmp-"
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) {
				_ = os.Remove(filepath.Join(dir, e.Name()))
			}
		}
	}
	s.restoreFile(sn)
	active.Store(sn)
	snapshotIntervalGauge.Set(sn.interval.Seconds())
	s.bg.Every(sn.interval, func() { _ = s.snapshot(context.Background()) })
}

// restoreFile reads the snapshot at sn.path into the store, logging and
// counting the result. A file that cannot be used is moved aside, so that
// it is neither read again nor overwritten, and the store is emptied.
func (s *PeerStore) restoreFile(sn *snapshots) {
	begin := time.Now()
	logger := logrus.WithField("path", sn.path)
	f, err := os.Open(sn.path)
	if errors.Is(err, fs.ErrNotExist) {
		snapshotRestores.WithLabelValues(restoreAbsent).Inc()
		logger.Info("storage/memory: no snapshot to restore; starting empty")
		return
	}
	var h snapshotHeader
	var rc restoreCounts
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			now := uint32(clock.Unix())
			h, rc, err = s.readSnapshot(bufio.NewReaderSize(f, 1<<20), fi.Size(), snapshotCut(now, s.cfg.PeerLifetime), now)
		}
		_ = f.Close()
	}
	if err != nil {
		s.empty()
		result := restoreResult(err)
		snapshotRestores.WithLabelValues(result).Inc()
		aside := fmt.Sprintf("%s.corrupt-%s", sn.path, time.Now().UTC().Format("20060102T150405Z"))
		entry := logger.WithError(err).WithField("result", result)
		if rerr := os.Rename(sn.path, aside); rerr != nil {
			entry.WithField("rename_error", rerr.Error()).Error("storage/memory: snapshot not restored and not moved aside; starting empty")
			return
		}
		entry.WithField("moved_to", aside).Error("storage/memory: snapshot not restored; moved aside, starting empty")
		return
	}
	snapshotRestores.WithLabelValues(restoreOK).Inc()
	sn.lastGood.Store(h.created * int64(time.Second))
	logger.WithFields(logrus.Fields{
		"taken":         time.Unix(h.created, 0).UTC().Format(time.RFC3339),
		"swarms":        rc.swarms,
		"peers":         rc.peers,
		"expired_peers": rc.expired,
		"took":          time.Since(begin).String(),
	}).Info("storage/memory: snapshot restored")
}

// empty drops every swarm: what a restore that failed half-way leaves.
func (s *PeerStore) empty() {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		sh.swarms.clear()
		sh.nSwarms, sh.seeders, sh.leechers = [2]uint64{}, [2]uint64{}, [2]uint64{}
		sh.mu.Unlock()
	}
}

// snapshot writes the store to its snapshot file, atomically: into a
// temporary file in the same directory, fsynced, renamed over the old
// one, and the directory fsynced, so that a crash at any moment leaves
// the previous snapshot or the new one. A failure is logged and counted,
// and leaves the previous snapshot in place.
func (s *PeerStore) snapshot(ctx context.Context) error {
	sn := s.snap
	sn.mu.Lock()
	defer sn.mu.Unlock()
	begin := time.Now()
	h, size, err := s.writeSnapshotFile(ctx, sn.path, begin)
	if err != nil {
		snapshotWrites.WithLabelValues("error").Inc()
		logrus.WithError(err).WithField("path", sn.path).Error("storage/memory: snapshot failed; the previous one stays")
		return fmt.Errorf("storage/memory: snapshot: %w", err)
	}
	took := time.Since(begin)
	snapshotWrites.WithLabelValues("ok").Inc()
	snapshotDuration.Observe(took.Seconds())
	snapshotSize.Set(float64(size))
	sn.lastGood.Store(begin.UnixNano())
	logrus.WithFields(logrus.Fields{
		"path":   sn.path,
		"swarms": h.swarms,
		"peers":  h.peers[0] + h.peers[1],
		"bytes":  size,
		"took":   took.String(),
	}).Debug("storage/memory: snapshot written")
	return nil
}

func (s *PeerStore) writeSnapshotFile(ctx context.Context, path string, begin time.Time) (h snapshotHeader, size int64, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return h, 0, err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h, size, err = s.writeSnapshot(f, begin.Unix(), ctx.Err)
	if err != nil {
		return h, size, err
	}
	if _, err = f.WriteAt(h.encode(), 0); err != nil {
		return h, size, err
	}
	if err = f.Sync(); err != nil {
		return h, size, err
	}
	if err = f.Close(); err != nil {
		return h, size, err
	}
	if err = os.Rename(tmp, path); err != nil {
		return h, size, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return h, size, err
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return h, size, fmt.Errorf("fsync %s: %w", dir, err)
	}
	return h, size, nil
}

// stopSnapshots writes the final snapshot, once the periodic writes have
// ended.
func (s *PeerStore) stopSnapshots(ctx context.Context) error {
	sn := s.snap
	if sn == nil || sn.final.Load() {
		return nil
	}
	if err := s.snapshot(ctx); err != nil {
		return err
	}
	sn.final.Store(true)
	active.CompareAndSwap(sn, nil)
	return nil
}

// snapshotCut converts peer_lifetime into the oldest last-seen second kept.
func snapshotCut(now uint32, lifetime time.Duration) uint32 {
	l := int64(lifetime / time.Second)
	if l >= int64(now) {
		return 0
	}
	return uint32(min(int64(now)-l, math.MaxUint32))
}
