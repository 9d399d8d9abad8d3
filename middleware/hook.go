// Package middleware builds the TrackerLogic from a chain of hooks: the
// configured prehooks in order, then the response hook that reads the
// PeerStore; after the reply, the swarm update and the posthooks.
package middleware

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/registry"
)

// Hook sees a request and the response under construction. It may fill or
// change the response, or stop the chain by returning an error: a
// bittorrent.ClientError is shown to the client; any other error is logged
// and the client sees a generic failure.
type Hook interface {
	HandleAnnounce(ctx context.Context, req *bittorrent.AnnounceRequest, resp *bittorrent.AnnounceResponse) error
	HandleScrape(ctx context.Context, req *bittorrent.ScrapeRequest, resp *bittorrent.ScrapeResponse) error
}

// Stopper is implemented by hooks that run background work (refreshing a
// key set, watching a file). Stop is called when the hook is replaced by a
// reload or the tracker shuts down.
type Stopper interface {
	Stop()
}

// Constructor builds a hook from the YAML of its `options` mapping. It
// decodes strictly, applies defaults, and validates, naming the offending
// option in its error.
type Constructor func(optionsYAML []byte) (Hook, error)

var hooks = registry.New[Constructor]("hook")

// RegisterHook makes a hook available under name, the name operators write
// in the YAML `prehooks`/`posthooks` lists. Registering a name twice panics.
func RegisterHook(name string, c Constructor) {
	if c == nil {
		panic("middleware: RegisterHook " + name + " with a nil constructor")
	}
	hooks.Register(name, c)
}

// Checker validates a hook's options without constructing the hook. A hook
// whose construction does more than build values in memory (fetch a key
// set over the network) registers one, so that `chihaya validate` checks
// its options without side effects.
type Checker func(optionsYAML []byte) error

var checkers = registry.New[Checker]("hook checker")

// RegisterChecker registers the Checker of the hook registered as name.
func RegisterChecker(name string, c Checker) {
	if c == nil {
		panic("middleware: RegisterChecker " + name + " with a nil checker")
	}
	checkers.Register(name, c)
}

// HookNames lists the registered hooks, sorted.
func HookNames() []string { return hooks.Names() }

// ErrUnknownHook is wrapped by NewHook when no hook has the given name.
var ErrUnknownHook = errors.New("unknown hook")

// NewHook builds the named hook.
func NewHook(name string, optionsYAML []byte) (Hook, error) {
	c, ok := hooks.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownHook, name, strings.Join(HookNames(), ", "))
	}
	return c(optionsYAML)
}

// Refusal is the error a hook returns to refuse a request: the client is
// shown Err, and the refusal is counted under the hook's name and Reason,
// a short fixed label such as "unapproved_torrent" (never an address or an
// info hash).
type Refusal struct {
	Reason string
	Err    bittorrent.ClientError
}

// Error returns the text the client sees.
func (r Refusal) Error() string { return string(r.Err) }

// Unwrap returns the ClientError, so frontends show its text.
func (r Refusal) Unwrap() error { return r.Err }
