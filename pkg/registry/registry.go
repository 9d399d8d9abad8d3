// Package registry maps the names operators write in YAML to the plugins
// (hooks, storage drivers) that registered under them.
package registry

import (
	"sort"
	"sync"
)

// Registry is a set of named plugins of one kind. The zero value is not
// usable; make one with New.
type Registry[T any] struct {
	kind string
	mu   sync.Mutex
	m    map[string]T
}

// New returns an empty registry; kind ("hook", "storage driver") names the
// plugins in panics.
func New[T any](kind string) *Registry[T] {
	return &Registry[T]{kind: kind, m: map[string]T{}}
}

// Register adds v under name. Registering a name twice is a programming
// error, found at start: it panics.
func (r *Registry[T]) Register(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic("registry: " + r.kind + " " + name + " registered twice")
	}
	r.m[name] = v
}

// Lookup returns the plugin registered under name.
func (r *Registry[T]) Lookup(name string) (T, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.m[name]
	return v, ok
}

// Names lists the registered names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
