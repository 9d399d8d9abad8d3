package middleware_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/middleware"
)

// budgetHook is a test hook with state, as the rate limiter has: it admits
// `budget` announces, then refuses. It records its reloads and its stop.
type budgetHook struct {
	left    atomic.Int64
	reloads atomic.Int64
	stopped atomic.Bool
}

var errSpent = bittorrent.ClientError("budget spent")

func (h *budgetHook) HandleAnnounce(context.Context, *bittorrent.AnnounceRequest, *bittorrent.AnnounceResponse) error {
	if h.left.Add(-1) < 0 {
		return errSpent
	}
	return nil
}

func (h *budgetHook) HandleScrape(context.Context, *bittorrent.ScrapeRequest, *bittorrent.ScrapeResponse) error {
	return nil
}

func (h *budgetHook) Stop()         { h.stopped.Store(true) }
func (h *budgetHook) Reload() error { h.reloads.Add(1); return nil }

// budgets are the budget hooks built, in order.
var budgets struct {
	sync.Mutex
	built []*budgetHook
}

type budgetConfig struct {
	Budget int `yaml:"budget"`
}

func (budgetConfig) Validate() error { return nil }

func init() {
	middleware.Register(middleware.Plugin[budgetConfig]{
		Name: "test budget",
		New: func(c budgetConfig) (middleware.Hook, error) {
			h := &budgetHook{}
			h.left.Store(int64(c.Budget))
			budgets.Lock()
			budgets.built = append(budgets.built, h)
			budgets.Unlock()
			return h, nil
		},
	})
}

func lastBudget(t *testing.T) *budgetHook {
	t.Helper()
	budgets.Lock()
	defer budgets.Unlock()
	return budgets.built[len(budgets.built)-1]
}

// TestReloadHooks: a reload keeps the running hook of an unchanged entry,
// with its state, and asks it to reload; a changed entry gets a new hook
// and the old one is stopped; a bad list changes nothing.
func TestReloadHooks(t *testing.T) {
	budget := func(n int) middleware.HookConfig {
		return middleware.HookConfig{Name: "test budget", Options: map[string]interface{}{"budget": n}}
	}
	deny := middleware.HookConfig{Name: "test deny"}
	v1 := []middleware.HookConfig{budget(2), deny}
	pre, err := middleware.NewHooks(v1)
	if err != nil {
		t.Fatal(err)
	}
	first := lastBudget(t)
	l := newLogic(t, newStore(t), pre...)
	ann := func() error {
		return l.HandleAnnounce(context.Background(), announce(bittorrent.InfoHash{1}, peer(1, 1), 1, bittorrent.None), &bittorrent.AnnounceResponse{})
	}
	if err := ann(); err != nil {
		t.Fatalf("first announce: %v", err)
	}

	// The deny hook's entry changes (now a posthook too), the budget's
	// does not: the budget hook is kept, one announce still left.
	v2 := []middleware.HookConfig{budget(2)}
	if err := l.ReloadHooks(v1, nil, v2, []middleware.HookConfig{deny}); err != nil {
		t.Fatal(err)
	}
	if lastBudget(t) != first || first.stopped.Load() || first.reloads.Load() != 1 {
		t.Fatalf("unchanged entry: new hook built %v, kept hook stopped %v, reloads %d; want the running hook, not stopped, reloaded once",
			lastBudget(t) != first, first.stopped.Load(), first.reloads.Load())
	}
	if err := ann(); err != nil {
		t.Fatalf("second announce: %v", err)
	}
	if err := ann(); !errors.Is(err, errSpent) {
		t.Fatalf("third announce: %v, want %v: the budget was refilled by the reload", err, errSpent)
	}

	// A list that does not build: nothing changes, nothing is stopped.
	bad := []middleware.HookConfig{budget(5), {Name: "test deny", Options: map[string]interface{}{"x": "bad"}}}
	err = l.ReloadHooks(v2, nil, bad, nil)
	if want := "prehooks[1].options (test deny): deny: bad option"; err == nil || err.Error() != want {
		t.Fatalf("bad reload: %v, want %q", err, want)
	}
	if built := lastBudget(t); built == first || !built.stopped.Load() || first.stopped.Load() {
		t.Fatal("a failed reload must stop the hooks it built and keep the running ones")
	}
	if err := ann(); !errors.Is(err, errSpent) {
		t.Fatalf("after a failed reload: %v, want the running chain's %v", err, errSpent)
	}

	// A changed budget: a new hook with a full budget; the old one stops.
	if err := l.ReloadHooks(v2, []middleware.HookConfig{deny}, []middleware.HookConfig{budget(1)}, nil); err != nil {
		t.Fatal(err)
	}
	if !first.stopped.Load() || lastBudget(t) == first {
		t.Fatal("a changed entry must get a new hook and stop the old one")
	}
	if err := ann(); err != nil {
		t.Fatalf("announce with the new budget: %v", err)
	}
}
