// Package yamlconf decodes a component's YAML configuration strictly, with
// errors that carry their place as data (Error: a key path and a line).
//
// The flow, the same for every driver and hook: the component's registry
// decodes the component's subtree with Load (strictly, over the
// component's starting values, then its defaults, then its Validate, whose
// errors name keys relative to the component's root with Errorf); the
// registry puts the subtree's own key path in front (Under) and names the
// component (Owned); the daemon, the one caller that has the file, gives
// every error its line (Locate). Nothing reads an error's text to find a
// key, and nothing reads the file twice.
package yamlconf

import (
	"errors"
	"reflect"

	yaml2 "go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"
)

// Decode decodes data strictly over start: keys left out keep start's
// values, an unknown, repeated or ill-typed key is an *Error whose path is
// relative to data's root and whose line is data's. Several are joined
// (errors.Join). An empty or null document keeps start as it is.
//
// yaml.v2 decodes (CONFIG-COMPAT: what upstream accepted stays accepted),
// but it reports problems only as English text naming Go types. So the
// document is first walked as yaml.v3 nodes beside start's type, and each
// problem is placed by its node: its key path and line are data, never
// read back from a message.
func Decode[T any](data []byte, start T) (T, error) {
	var zero T
	var doc interface{}
	if err := yaml2.Unmarshal(data, &doc); err != nil {
		// A syntax error ("yaml: line 3: did not find expected key")
		// stays yaml.v2's: it names its line itself.
		return zero, err
	}
	if doc == nil {
		// A `config:` left empty would otherwise zero every key.
		return start, nil
	}
	var root yaml3.Node
	if t := reflect.TypeOf(start); t != nil && yaml3.Unmarshal(data, &root) == nil &&
		root.Kind == yaml3.DocumentNode && len(root.Content) == 1 {
		c := checker{structs: StructNames(t)}
		c.check(root.Content[0], t, nil)
		if len(c.errs) > 0 {
			return zero, errors.Join(c.errs...)
		}
	}
	cfg := start
	if err := yaml2.UnmarshalStrict(data, &cfg); err != nil {
		// What the walk did not foresee keeps yaml.v2's own words,
		// which name the line.
		return zero, err
	}
	return cfg, nil
}

// Validator is a component's configuration: Validate reports what is
// wrong, naming keys relative to the component's root (Errorf).
type Validator interface {
	Validate() error
}

// Load is a component's whole decoding: Decode over start, then defaults
// (nil: none; for keys whose default depends on what was written), then
// Validate. Errors are relative to data's root, as Decode's.
func Load[T Validator](data []byte, start T, defaults func(T) T) (T, error) {
	cfg, err := Decode(data, start)
	if err != nil {
		return cfg, err
	}
	if defaults != nil {
		cfg = defaults(cfg)
	}
	if err := cfg.Validate(); err != nil {
		var zero T
		return zero, err
	}
	return cfg, nil
}

// StructNames lists the struct types reachable from t by the names yaml.v2
// gives them in errors ("redis.Config"): to an operator, each is a mapping.
func StructNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		if t == nil {
			return
		}
		switch t.Kind() {
		case reflect.Ptr, reflect.Slice, reflect.Array, reflect.Map:
			walk(t.Elem())
		case reflect.Struct:
			if names[t.String()] {
				return
			}
			names[t.String()] = true
			for i := 0; i < t.NumField(); i++ {
				walk(t.Field(i).Type)
			}
		}
	}
	walk(t)
	return names
}
