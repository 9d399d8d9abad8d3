// Package eventually waits in tests for what the code under test does in
// the background: a swarm update applied just after its reply, a file
// reloaded on its next check, a collection. It polls, and fails the test
// with the last state seen when the condition does not hold in time.
package eventually

import (
	"testing"
	"time"
)

// Deadline is how long a condition gets. It is generous, so that a
// loaded CI machine does not fail a correct test; a passing check
// returns at once, so it costs only failing tests.
const Deadline = 30 * time.Second

// interval is how often the condition is checked.
const interval = 20 * time.Millisecond

// Holds calls check until it returns "", and fails the test with the last
// thing check said was wrong if that does not happen within Deadline.
func Holds(t testing.TB, check func() string) {
	t.Helper()
	holds(t, Deadline, check)
}

func holds(t testing.TB, d time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, msg)
		}
		time.Sleep(interval)
	}
}

// True calls cond until it reports true; what names what is awaited, for
// the failure message.
func True(t testing.TB, what string, cond func() bool) {
	t.Helper()
	Holds(t, func() string {
		if cond() {
			return ""
		}
		return "gave up waiting for " + what
	})
}
