package yamlconf

import (
	"encoding"
	"errors"
	"reflect"
	"strings"
	"time"

	yaml2 "go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"
)

// check walks the document node n against the Go type t that yaml.v2
// will decode it into, and returns what strict decoding would reject, as
// Errors placed by the nodes themselves: an unknown key, a key set twice,
// a value of the wrong kind. Values are tried one by one with yaml.v2, so
// that what is accepted stays yaml.v2's (CONFIG-COMPAT); only whether it
// failed is read, never its message.
type checker struct {
	structs map[string]bool // the struct types reachable from the root
	errs    []error
}

func (c *checker) fail(e *Error) { c.errs = append(c.errs, e) }

var (
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	yamlUnmarshaler = reflect.TypeOf((*yaml2.Unmarshaler)(nil)).Elem()
	durationType    = reflect.TypeOf(time.Duration(0))
)

func (c *checker) check(n *yaml3.Node, t reflect.Type, path Path) {
	n = resolve(n)
	if n == nil || isNull(n) {
		return // yaml.v2 leaves the value as it was
	}
	for t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	switch {
	case pt.Implements(yamlUnmarshaler):
		// The type reads its own YAML: ask it.
		c.tryValue(n, t, path)
		return
	case pt.Implements(textUnmarshaler) && t != durationType:
		if n.Kind != yaml3.ScalarNode {
			c.mistyped(n, t, path)
			return
		}
		c.tryValue(n, t, path)
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		// Anything goes.
	case reflect.Struct:
		if n.Kind != yaml3.MappingNode {
			c.mistyped(n, t, path)
			return
		}
		c.mapping(n, path, fieldsOf(t), nil)
	case reflect.Map:
		if n.Kind != yaml3.MappingNode {
			c.mistyped(n, t, path)
			return
		}
		c.mapping(n, path, nil, t)
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml3.SequenceNode {
			c.mistyped(n, t, path)
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), append(path[:len(path):len(path)], Index(i)))
		}
	default:
		if n.Kind != yaml3.ScalarNode {
			c.mistyped(n, t, path)
			return
		}
		c.tryValue(n, t, path)
	}
}

// fields are a struct's keys as yaml.v2 names them, with inline structs'
// keys among them; inline is the element type of an inline map, which
// takes every other key.
type fields struct {
	types  map[string]reflect.Type
	inline reflect.Type
}

func fieldsOf(t reflect.Type) *fields {
	f := &fields{types: map[string]reflect.Type{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if sf.PkgPath != "" && !sf.Anonymous {
				continue // unexported
			}
			tag := sf.Tag.Get("yaml")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if strings.Contains(","+opts+",", ",inline,") {
				switch ft := sf.Type; ft.Kind() {
				case reflect.Struct:
					add(ft)
				case reflect.Map:
					f.inline = ft.Elem()
				}
				continue
			}
			if name == "" {
				name = strings.ToLower(sf.Name)
			}
			f.types[name] = sf.Type
		}
	}
	add(t)
	return f
}

// mapping checks a mapping node's keys and values: against a struct's
// fields (f), or as a map of type m.
func (c *checker) mapping(n *yaml3.Node, path Path, f *fields, m reflect.Type) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k == nil {
			continue
		}
		if k.Kind == yaml3.ScalarNode && k.Tag == "!!merge" {
			// "<<: *base" merges a mapping, or a list of them, in.
			if v = resolve(v); v != nil && v.Kind == yaml3.SequenceNode {
				for _, each := range v.Content {
					if each = resolve(each); each != nil && each.Kind == yaml3.MappingNode {
						c.mapping(each, path, f, m)
					}
				}
			} else if v != nil && v.Kind == yaml3.MappingNode {
				c.mapping(v, path, f, m)
			}
			continue
		}
		key := append(path[:len(path):len(path)], k.Value)
		if seen[k.Value] {
			c.fail(&Error{Kind: DuplicateKey, Path: key, Line: k.Line})
			continue
		}
		seen[k.Value] = true
		switch {
		case m != nil:
			c.check(v, m.Elem(), key)
		case f.types[k.Value] != nil:
			c.check(v, f.types[k.Value], key)
		case f.inline != nil:
			c.check(v, f.inline, key)
		default:
			c.fail(&Error{Kind: UnknownKey, Path: key, Line: k.Line})
		}
	}
}

// tryValue decodes the value at n alone into a fresh t with yaml.v2.
func (c *checker) tryValue(n *yaml3.Node, t reflect.Type, path Path) {
	doc, err := yaml3.Marshal(bare(n))
	if err != nil {
		return // left to yaml.v2's decoding of the whole document
	}
	err = yaml2.Unmarshal(doc, reflect.New(t).Interface())
	var te *yaml2.TypeError
	switch {
	case err == nil:
	case errors.As(err, &te):
		c.mistyped(n, t, path)
	default:
		// The type's own complaint (an UnmarshalText error).
		c.fail(&Error{Path: path, Line: n.Line, Err: err})
	}
}

// bare is n without what would change its meaning alone: its anchor, and
// the comments.
func bare(n *yaml3.Node) *yaml3.Node {
	c := *n
	c.Anchor, c.HeadComment, c.LineComment, c.FootComment = "", "", "", ""
	if len(c.Content) > 0 {
		c.Content = make([]*yaml3.Node, len(n.Content))
		for i, e := range n.Content {
			c.Content[i] = bare(resolve(e))
		}
	}
	return &c
}

// mistyped records that n's value cannot be a t, in yaml.v2's words:
// "cannot unmarshal !!str `often` into a duration".
func (c *checker) mistyped(n *yaml3.Node, t reflect.Type, path Path) {
	tag := tag(n)
	what := tag
	if tag != "!!map" && tag != "!!seq" {
		v := n.Value
		if len(v) > 10 {
			v = v[:7] + "..." // as yaml.v2 cuts it
		}
		what += " `" + v + "`"
	}
	c.fail(&Error{Path: path, Line: n.Line, Err: errors.New("cannot unmarshal " + what + " into " + TypeName(t.String(), c.structs))})
}

// tag is the YAML tag yaml.v2 resolves n to (YAML 1.1: "yes" is a
// boolean), which can differ from yaml.v3's (YAML 1.2).
func tag(n *yaml3.Node) string {
	switch n.Kind {
	case yaml3.MappingNode:
		return "!!map"
	case yaml3.SequenceNode:
		return "!!seq"
	}
	if n.Style&yaml3.TaggedStyle != 0 || n.Style != 0 && n.Style != yaml3.FlowStyle {
		return n.ShortTag() // written out, or quoted: a string
	}
	var v interface{}
	if doc, err := yaml3.Marshal(bare(n)); err == nil && yaml2.Unmarshal(doc, &v) == nil {
		switch v.(type) {
		case nil:
			return "!!null"
		case bool:
			return "!!bool"
		case int, int64, uint64:
			return "!!int"
		case float64:
			return "!!float"
		case time.Time:
			return "!!timestamp"
		}
	}
	if t := n.ShortTag(); t == "!!timestamp" {
		return t
	}
	return "!!str"
}

func isNull(n *yaml3.Node) bool {
	return n.Kind == yaml3.ScalarNode && n.ShortTag() == "!!null" && n.Style&(yaml3.DoubleQuotedStyle|yaml3.SingleQuotedStyle) == 0
}
