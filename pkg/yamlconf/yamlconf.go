// Package yamlconf decodes a component's YAML configuration strictly, with
// errors that name the offending key by its full path.
package yamlconf

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v2"
)

// Decode decodes data strictly over defaults: keys left out keep their
// default, an unknown or ill-typed key is an error. prefix is the mapping's
// path in the whole file ("storage.config"); an error names the key under
// it, e.g. `storage.config.gc_interval: line 1: cannot unmarshal !!str
// `often` into time.Duration`, even where yaml.v2 gives only a line and a
// type. An empty or null document keeps every default.
func Decode[T any](data []byte, prefix string, defaults T) (T, error) {
	cfg := defaults
	var doc interface{}
	if yaml.Unmarshal(data, &doc) == nil && doc == nil {
		// A `config:` left empty would otherwise zero every key.
		return cfg, nil
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		var zero T
		return zero, fmt.Errorf("%s%s: %s", prefix, badKey[T](data), errorText(err))
	}
	return cfg, nil
}

// badKey finds the top-level key a strict decoding error is about, as
// ".key", by decoding the keys one at a time. It returns "" when the
// document is not a mapping at all.
func badKey[T any](data []byte) string {
	var items yaml.MapSlice
	if yaml.Unmarshal(data, &items) != nil {
		return ""
	}
	for _, item := range items {
		one, err := yaml.Marshal(yaml.MapSlice{item})
		if err != nil {
			continue
		}
		var c T
		if yaml.UnmarshalStrict(one, &c) != nil {
			return "." + fmt.Sprint(item.Key)
		}
	}
	return ""
}

// errorText flattens yaml.v2's multi-line "unmarshal errors" into one line,
// keeping the line numbers it gives.
func errorText(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return err.Error()
}
