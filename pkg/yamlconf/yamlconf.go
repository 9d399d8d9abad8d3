// Package yamlconf decodes a component's YAML configuration strictly, with
// errors that name the offending key by its full path.
package yamlconf

import (
	"fmt"
	"path"
	"reflect"
	"strings"

	"gopkg.in/yaml.v2"
)

// Decode decodes data strictly over defaults: keys left out keep their
// default, an unknown or ill-typed key is an error. prefix is the mapping's
// key path ("storage.config"), and errors name keys under it as Validate
// errors do, e.g. `line 19: storage.config.gc_interval: cannot unmarshal
// !!str `often` into a duration` or `line 20: unknown key "shard_count" in
// storage.config (redis)`, where redis, the package of T, is whose keys
// these are. The lines are those of data: a caller that cuts data out of a
// larger file keeps the file's lines with Source.Fragment. An empty or null
// document keeps every default.
func Decode[T any](data []byte, prefix string, defaults T) (T, error) {
	cfg := defaults
	var doc interface{}
	if yaml.Unmarshal(data, &doc) == nil && doc == nil {
		// A `config:` left empty would otherwise zero every key.
		return cfg, nil
	}
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		var zero T
		t := reflect.TypeOf(defaults)
		e := Explainer{Path: prefix, Owner: path.Base(t.PkgPath()), Structs: StructNames(t)}
		if err = e.Error(err, data); !strings.HasPrefix(err.Error(), "line ") {
			// yaml.v2's syntax errors say "yaml: line 3: ..." already.
			err = fmt.Errorf("%s: %w", prefix, err)
		}
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
