package middleware

import (
	"reflect"

	"github.com/sirupsen/logrus"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// Reloader is a hook that loads something from outside its options (a
// list file) and reads it again when the daemon is asked to reload
// (SIGUSR1, SIGHUP). On error the hook keeps what it had.
type Reloader interface {
	Reload() error
}

// ReloadHooks replaces the hook chain with the one pre and post configure,
// for a configuration reload. An entry whose name and options are those of
// an entry of the running chain (which oldPre and oldPost configured)
// keeps that running hook, and with it its state: the jwt hook's signing
// keys, which a new hook would have to fetch again and would not get from
// a key server that is down at that moment, and the rate limiter's
// budgets, which a new hook would refill. Kept hooks that are Reloaders
// read their files again; a failure is logged and the hook keeps its old
// list. The other entries are built anew, and the running hooks not kept
// are stopped once the new chain is in place.
//
// On error nothing changes: the hooks built so far are stopped, and the
// error is keyed from the list's key ("prehooks[0].options.whitelist").
func (l *Logic) ReloadHooks(oldPre, oldPost, pre, post []HookConfig) error {
	cur := l.hooks.Load()
	keptPre, keptPost := make([]bool, len(cur.pre)), make([]bool, len(cur.post))
	var built []Hook
	newPre, err := rebuild(cur.pre, oldPre, pre, keptPre, &built)
	if err != nil {
		StopHooks(built)
		return yamlconf.Under(err, "prehooks")
	}
	newPost, err := rebuild(cur.post, oldPost, post, keptPost, &built)
	if err != nil {
		StopHooks(built)
		return yamlconf.Under(err, "posthooks")
	}
	l.hooks.Store(&chain{pre: newPre, post: newPost})
	for _, list := range []struct {
		hooks []Hook
		kept  []bool
	}{{cur.pre, keptPre}, {cur.post, keptPost}} {
		for i, h := range list.hooks {
			if !list.kept[i] {
				StopHooks([]Hook{h})
				continue
			}
			if r, ok := h.(Reloader); ok {
				if err := r.Reload(); err != nil {
					logrus.WithError(err).Error("middleware: hook not reloaded; it keeps what it had")
				}
			}
		}
	}
	return nil
}

// rebuild builds the hooks of cfgs, taking a running hook instead of a
// new one for an entry equal to an entry of oldCfgs not taken yet
// (running[j] was built from oldCfgs[j]). kept marks the running hooks
// taken; built collects the new ones.
func rebuild(running []Hook, oldCfgs, cfgs []HookConfig, kept []bool, built *[]Hook) ([]Hook, error) {
	hooks := make([]Hook, 0, len(cfgs))
	i := 0
	err := eachHook(cfgs, func(name string, opts []byte) error {
		c := cfgs[i]
		i++
		for j, oc := range oldCfgs {
			if j < len(running) && !kept[j] && oc.Name == c.Name && reflect.DeepEqual(oc.Options, c.Options) {
				kept[j] = true
				hooks = append(hooks, running[j])
				return nil
			}
		}
		h, err := NewHook(name, opts)
		if err != nil {
			return err
		}
		expectRefusals(name)
		nh := namedHook{name: name, Hook: h}
		*built = append(*built, nh)
		hooks = append(hooks, nh)
		return nil
	})
	return hooks, err
}
