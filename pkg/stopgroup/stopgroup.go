// Package stopgroup runs a component's background goroutines so that they
// end together: Stop closes one channel that every goroutine watches and
// waits, up to a deadline, for all of them to return.
//
// A store's collection loop and a logic's update workers are both:
//
//	g := stopgroup.New()
//	g.Every(time.Minute, collect)
//	g.Go(func(done <-chan struct{}) { <-done; drain() })
//	...
//	err := g.Stop(ctx) // ctx.Err() if a goroutine outlived ctx
package stopgroup

import (
	"context"
	"sync"
	"time"
)

// Group is a set of goroutines stopped together. Build it with New.
type Group struct {
	done chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// New returns an empty, running group.
func New() *Group {
	return &Group{done: make(chan struct{})}
}

// Done is closed when Stop is first called.
func (g *Group) Done() <-chan struct{} { return g.done }

// Go runs f in a goroutine of the group. f must return soon after done is
// closed.
func (g *Group) Go(f func(done <-chan struct{})) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f(g.done)
	}()
}

// Every runs f every d in a goroutine of the group until Stop. A run of f
// in progress when Stop is called finishes; no run starts after it.
func (g *Group) Every(d time.Duration, f func()) { every(g.done, &g.wg, d, f) }

// Stop closes Done and waits until every goroutine of the group has
// returned, or until ctx is done, whichever comes first; then it returns
// ctx.Err(). It may be called more than once, and concurrently.
func (g *Group) Stop(ctx context.Context) error {
	g.once.Do(func() { close(g.done) })
	return wait(ctx, &g.wg)
}

// wait waits until the goroutines wg counts have returned, or until ctx is
// done, whichever comes first.
func wait(ctx context.Context, wg *sync.WaitGroup) error {
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// every runs f every d in a goroutine counted by wg until done is closed.
func every(done <-chan struct{}, wg *sync.WaitGroup, d time.Duration, f func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				// A tick and the stop may be ready together; the stop wins.
				select {
				case <-done:
					return
				default:
				}
				f()
			}
		}
	}()
}
