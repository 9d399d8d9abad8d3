package eventually

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestHoldsReturnsOnceTheCheckPasses(t *testing.T) {
	var calls atomic.Int32
	Holds(t, func() string {
		if calls.Add(1) < 3 {
			return "not yet"
		}
		return ""
	})
	if n := calls.Load(); n != 3 {
		t.Errorf("check called %d times, want 3", n)
	}
}

// fakeT records a failure instead of ending the test.
type fakeT struct {
	testing.TB
	failed string
	args   []any
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.args = format, args
	panic(f)
}

func TestFailsWithTheLastState(t *testing.T) {
	f := &fakeT{TB: t}
	func() {
		defer func() {
			if r := recover(); r != f {
				panic(r)
			}
		}()
		holds(f, 50*time.Millisecond, func() string { return "the moon is not here" })
	}()
	if f.failed != "after %v: %s" || f.args[1] != "the moon is not here" {
		t.Errorf("failed with %q %v, want the last state", f.failed, f.args)
	}
}
