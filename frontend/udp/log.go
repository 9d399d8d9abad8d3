package udp

import (
	"runtime/debug"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/log"
)

// limitedLogger is how the per-packet paths log: a sample, at most one
// line a second (log.Sampler), so that a flood of bad packets or a
// failing backend cannot flood the log; the counters carry the volume.
type limitedLogger struct {
	log.Sampler
}

func (l *limitedLogger) internalError(action string, err error) {
	if l.Allow() {
		logrus.WithError(err).WithField("action", action).Error("udp: request failed (further errors this second are only counted)")
	}
}

func (l *limitedLogger) panicked(v interface{}) {
	if l.Allow() {
		logrus.WithField("panic", v).WithField("stack", string(debug.Stack())).Error("udp: recovered from a panic while handling a datagram")
	}
}

func (l *limitedLogger) socketError(op string, err error) {
	if l.Allow() {
		logrus.WithError(err).WithField("op", op).Warn("udp: socket error")
	}
}
