// Package prereq decides what a test does when a program it needs (a
// BitTorrent client, redis-server, a browser) is missing: it skips, or,
// under CI=true, where scripts/test.sh installs everything on purpose, it
// fails, so that a CI machine lacking a client cannot pass while testing
// nothing.
package prereq

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
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

var (
	libtorrentOnce sync.Once
	libtorrentErr  error
)

// LibtorrentPython returns Debian's own Python, the one python3-libtorrent
// is built for, once it has shown that it can import libtorrent; otherwise
// it is Missing.
func LibtorrentPython(t testing.TB) string {
	t.Helper()
	const python = "/usr/bin/python3"
	libtorrentOnce.Do(func() {
		out, err := exec.Command(python, "-c", "import libtorrent").CombinedOutput()
		if err != nil {
			libtorrentErr = fmt.Errorf("%s cannot import libtorrent (apt-get install python3-libtorrent): %v: %s", python, err, out)
		}
	})
	if libtorrentErr != nil {
		Missing(t, "%v", libtorrentErr)
	}
	return python
}

// LibtorrentScript returns the command that runs the Python script at
// path (relative to the test's package folder, as testdata is) with args,
// under LibtorrentPython, killed when ctx ends.
func LibtorrentScript(t testing.TB, ctx context.Context, path string, args ...string) *exec.Cmd {
	t.Helper()
	python := LibtorrentPython(t)
	script, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return exec.CommandContext(ctx, python, append([]string{script}, args...)...)
}
