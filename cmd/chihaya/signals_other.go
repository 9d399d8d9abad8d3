//go:build !unix

package main

import (
	"os"
	"syscall"
)

// reloadSignals reload the hooks. Windows delivers none of them (only
// Ctrl-C and the console's close, which stop the tracker): a restart
// applies a changed configuration there.
var reloadSignals = []os.Signal{syscall.SIGHUP}
