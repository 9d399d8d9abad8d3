// Package prereq decides what a test does when a program it needs (a
// BitTorrent client, redis-server, a browser) is missing: it skips, or,
// under CI=true, where scripts/test.sh installs everything on purpose, it
// fails, so that a CI machine lacking a client cannot pass while testing
// nothing.
package prereq

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether a missing prerequisite fails the test (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test saying why, or fails it under CI=true.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// Program returns the path of an installed program, or is Missing, naming
// the Debian package that has it.
func Program(t testing.TB, program, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err != nil {
		Missing(t, "%s not found (apt-get install %s)", program, debPackage)
	}
	return p
}
