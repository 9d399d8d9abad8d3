package udp

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
)

// The reasons, beside those of frontend.ReasonOf, under which the UDP
// frontend counts a dropped or refused datagram in
// chihaya_frontend_errors_total{frontend="udp"}.
const (
	// reasonShortPacket: fewer than the 16 bytes of a header, so not even
	// an error can be sent back.
	reasonShortPacket = "short_packet"
	// reasonOversized: larger than the read buffer, so the kernel cut it.
	reasonOversized = "oversized_packet"
	// reasonUnknownAction: an action other than connect, announce, scrape.
	reasonUnknownAction = "unknown_action"
	// reasonAmplification: a refusal dropped because its error packet
	// would have been larger than the unauthenticated request.
	reasonAmplification = "dropped_amplification"
	// reasonPanic: handling the datagram panicked; it was dropped.
	reasonPanic = "panic"
	// reasonReadError and reasonWriteError: the socket failed.
	reasonReadError  = "read_error"
	reasonWriteError = "write_error"
)

// logEvery bounds how often the per-packet paths log, so that a flood of
// bad packets or a failing backend cannot flood the log: the counters
// carry the volume, the log a sample.
const logEvery = time.Second

// limitedLogger logs at most once per logEvery.
type limitedLogger struct {
	last atomic.Int64
}

func (l *limitedLogger) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(logEvery) && l.last.CompareAndSwap(last, now)
}

func (l *limitedLogger) internalError(action string, err error) {
	if l.allow() {
		logrus.WithError(err).WithField("action", action).Error("udp: request failed (further errors this second are only counted)")
	}
}

func (l *limitedLogger) panicked(v interface{}) {
	if l.allow() {
		logrus.WithField("panic", v).WithField("stack", string(debug.Stack())).Error("udp: recovered from a panic while handling a datagram")
	}
}

func (l *limitedLogger) socketError(op string, err error) {
	if l.allow() {
		logrus.WithError(err).WithField("op", op).Warn("udp: socket error")
	}
}
