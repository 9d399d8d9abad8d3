// Package middleware builds the TrackerLogic from a chain of hooks: the
// configured prehooks in order, then Logic's own response step
// (respondAnnounce, which reads the PeerStore); after the reply,
// AfterAnnounce applies the swarm update and runs the posthooks. The
// response and the swarm update are steps of Logic, not hooks: no
// configuration adds, removes or reorders them.
package middleware

import (
	"context"
	"errors"
	"strings"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/pkg/registry"
	"github.com/chihaya/chihaya/pkg/yamlconf"
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

// Plugin is what a hook registers: how its `options` mapping is decoded,
// and how the hook is built from it. Every hook decodes the same way
// (yamlconf.Load): strictly, over Start, then Defaults, then the config's
// Validate, whose errors name options relative to the `options` mapping
// ("whitelist[0]"); the registry puts the entry's place in front of them
// and names the hook, and the daemon adds the line.
type Plugin[C yamlconf.Validator] struct {
	// Name is the name operators write in the `prehooks`/`posthooks`
	// lists.
	Name string
	// Start is what options left out keep (usually the zero value).
	Start C
	// Defaults, if set, fills options left unset; it runs before Validate.
	Defaults func(C) C
	// New builds the hook. Its errors are placed like Validate's: one
	// keyed with yamlconf.Errorf (a list file that does not load) under
	// `options`, any other as about the hook's options as a whole.
	New func(C) (Hook, error)
	// Check, if set, checks what New would beyond Validate, without side
	// effects: a hook whose construction reaches out (fetches a key set)
	// sets it, so that `chihaya validate` starts nothing. Without it,
	// validating builds the hook and stops it again.
	Check func(C) error
	// Reasons are the Reason labels of the Refusals the hook returns for
	// announces, and ScrapeReasons for scrapes: their series of
	// chihaya_middleware_hook_refusals_total are created, at 0, when the
	// hook is built, so that they exist before the first refusal.
	Reasons, ScrapeReasons []string
}

// plugin is a registered Plugin, its config type erased.
type plugin struct {
	build func(optionsYAML []byte) (Hook, error)
	check func(optionsYAML []byte) error // nil: build and stop
	// reasons are the refusal reasons by action.
	reasons map[string][]string
}

var hooks = registry.New[plugin]("hook")

// Register makes a hook available under its name. Registering a name twice
// panics.
func Register[C yamlconf.Validator](p Plugin[C]) {
	if p.New == nil {
		panic("middleware: Register " + p.Name + " without New")
	}
	r := plugin{reasons: map[string][]string{"announce": p.Reasons, "scrape": p.ScrapeReasons}}
	r.build = func(b []byte) (Hook, error) {
		cfg, err := p.Load(b)
		if err != nil {
			return nil, err
		}
		h, err := p.New(cfg)
		if err != nil {
			return nil, p.place(err)
		}
		return h, nil
	}
	if p.Check != nil {
		r.check = func(b []byte) error {
			cfg, err := p.Load(b)
			if err != nil {
				return err
			}
			return p.place(p.Check(cfg))
		}
	}
	hooks.Register(p.Name, r)
}

// Load decodes the YAML of the `options` mapping as the registered hook
// does, with the same errors: keyed from the entry ("options.whitelist[0]")
// and naming the hook.
func (p Plugin[C]) Load(optionsYAML []byte) (C, error) {
	cfg, err := yamlconf.Load(optionsYAML, p.Start, p.Defaults)
	return cfg, p.place(err)
}

// place puts an error of the hook where its options are; an error that
// names no option is about the hook's options as a whole.
func (p Plugin[C]) place(err error) error {
	return yamlconf.Under(yamlconf.Owned(err, p.Name), "options")
}

// HookNames lists the registered hooks, sorted.
func HookNames() []string { return hooks.Names() }

// ErrUnknownHook is wrapped by NewHook when no hook has the given name.
var ErrUnknownHook = errors.New("unknown hook")

func lookup(name string) (plugin, error) {
	p, ok := hooks.Lookup(name)
	if !ok {
		return p, yamlconf.Errorf("name", "%w %q (known: %s)", ErrUnknownHook, name, strings.Join(HookNames(), ", "))
	}
	return p, nil
}

// NewHook builds the named hook from the YAML of its `options` mapping.
// Errors are *yamlconf.Error keyed from the hook's entry in its list
// ("options.whitelist[0]", "name").
func NewHook(name string, optionsYAML []byte) (Hook, error) {
	p, err := lookup(name)
	if err != nil {
		return nil, err
	}
	return p.build(optionsYAML)
}

// CheckHook checks the named hook's options as NewHook would, with the
// same errors, without side effects (see Plugin.Check).
func CheckHook(name string, optionsYAML []byte) error {
	p, err := lookup(name)
	if err != nil {
		return err
	}
	if p.check != nil {
		return p.check(optionsYAML)
	}
	h, err := p.build(optionsYAML)
	if err != nil {
		return err
	}
	StopHooks([]Hook{h})
	return nil
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
