package main

import (
	"io"
	"testing"

	"github.com/chihaya/chihaya/internal/daemontest"
	"github.com/chihaya/chihaya/pkg/log"
)

func TestMain(m *testing.M) {
	// The in-process tracker logs its start and stop; the tests read what
	// they need from return values, so keep `go test` output readable.
	log.Setup(io.Discard, log.Options{})
	daemontest.Main(m)
}
