// Package cleanup stops what a test started when the test ends.
package cleanup

import (
	"context"
	"testing"
	"time"
)

// Deadline is how long a stop may take before the test fails; it bounds a
// hung shutdown, and is not a performance assertion.
const Deadline = 10 * time.Second

// Stop has stop (a server's, a frontend's, a store's Stop) called when the
// test ends, with Deadline; an error it returns fails the test.
func Stop(t testing.TB, stop func(context.Context) error) {
	t.Helper()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Deadline)
		defer cancel()
		if err := stop(ctx); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
}
