package registry

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := New[int]("widget")
	r.Register("b", 2)
	r.Register("a", 1)
	if got := r.Names(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("Names = %v, want [a b]", got)
	}
	if v, ok := r.Lookup("b"); !ok || v != 2 {
		t.Fatalf("Lookup(b) = %v, %v", v, ok)
	}
	if _, ok := r.Lookup("c"); ok {
		t.Fatal("Lookup(c) found an unregistered name")
	}
	defer func() {
		if got := recover(); got != "registry: widget a registered twice" {
			t.Fatalf("registering twice: recover() = %v", got)
		}
	}()
	r.Register("a", 3)
}
