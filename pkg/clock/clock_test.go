package clock

import (
	"testing"
	"time"
)

// TestMonotonic: the monotonic reading starts above zero (0 means "never"
// to its callers), never goes back, and advances.
func TestMonotonic(t *testing.T) {
	first := Monotonic()
	if first <= 0 {
		t.Fatalf("Monotonic() = %d, want > 0", first)
	}
	prev := first
	deadline := time.Now().Add(5 * time.Second)
	for prev == first {
		if time.Now().After(deadline) {
			t.Fatal("Monotonic did not advance in 5s")
		}
		time.Sleep(Resolution / 4)
		now := Monotonic()
		if now < prev {
			t.Fatalf("Monotonic went back: %d after %d", now, prev)
		}
		prev = now
	}
	if wall := UnixNano(); wall <= 0 {
		t.Fatalf("UnixNano() = %d", wall)
	}
}

// TestSteady: without a step of the wall clock, Steady reads as UnixNano.
func TestSteady(t *testing.T) {
	if d := Steady() - UnixNano(); d < -int64(time.Second) || d > int64(time.Second) {
		t.Fatalf("Steady() - UnixNano() = %s, want within 1s", time.Duration(d))
	}
}
