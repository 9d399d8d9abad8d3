// Package log configures the process-wide logrus logger, so that every
// component logs through the same sink with the same format.
package log

import (
	"io"

	"github.com/sirupsen/logrus"
)

// Options are the operator's choices for logging.
type Options struct {
	// JSON selects one JSON object per line, for log shippers; the
	// default is logrus' human-readable key=value text.
	JSON bool
	// Debug lowers the level from info to debug.
	Debug bool
}

// Setup points the standard logrus logger at w with the format and level
// of opts. The daemon writes to stderr so that stdout stays free for
// commands such as `version` whose output scripts read.
func Setup(w io.Writer, opts Options) {
	logrus.SetOutput(w)
	if opts.JSON {
		logrus.SetFormatter(&logrus.JSONFormatter{})
	} else {
		logrus.SetFormatter(&logrus.TextFormatter{FullTimestamp: true})
	}
	if opts.Debug {
		logrus.SetLevel(logrus.DebugLevel)
	} else {
		logrus.SetLevel(logrus.InfoLevel)
	}
}
