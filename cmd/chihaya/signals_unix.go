//go:build unix

package main

import (
	"os"
	"syscall"
)

// reloadSignals reload the hooks.
var reloadSignals = []os.Signal{syscall.SIGUSR1, syscall.SIGHUP}
