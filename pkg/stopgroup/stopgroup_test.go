package stopgroup

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryRunsUntilStop(t *testing.T) {
	g := New()
	var runs atomic.Int64
	ticked := make(chan struct{}, 1)
	g.Every(time.Millisecond, func() {
		runs.Add(1)
		select {
		case ticked <- struct{}{}:
		default:
		}
	})
	<-ticked
	<-ticked
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	after := runs.Load()
	if after < 2 {
		t.Fatalf("ran %d times before Stop, want at least 2", after)
	}
	time.Sleep(10 * time.Millisecond)
	if n := runs.Load(); n != after {
		t.Errorf("ran %d more times after Stop returned", n-after)
	}
}

func TestStopWaitsForGoroutines(t *testing.T) {
	g := New()
	var drained atomic.Bool
	g.Go(func(done <-chan struct{}) {
		<-done
		time.Sleep(5 * time.Millisecond)
		drained.Store(true)
	})
	if err := g.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !drained.Load() {
		t.Error("Stop returned before the goroutine did")
	}
	select {
	case <-g.Done():
	default:
		t.Error("Done is still open after Stop")
	}
}

func TestStopHonoursDeadline(t *testing.T) {
	g := New()
	release := make(chan struct{})
	g.Go(func(<-chan struct{}) { <-release })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if err := g.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop with a stuck goroutine = %v, want %v", err, context.DeadlineExceeded)
	}
	close(release)
	// A second Stop, once the goroutine has left, succeeds.
	if err := g.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestConcurrentStop(t *testing.T) {
	g := New()
	g.Every(time.Millisecond, func() {})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.Stop(context.Background()); err != nil {
				t.Errorf("Stop: %v", err)
			}
		}()
	}
	wg.Wait()
}
