package yamlconf

import (
	"errors"
	"strconv"
	"strings"

	yaml2 "go.yaml.in/yaml/v2"
	yaml3 "go.yaml.in/yaml/v3"
)

// Source is a YAML document parsed a second time, by yaml.v3, only for the
// positions of its nodes. Decoding stays with yaml.v2 (CONFIG-COMPAT),
// which knows keys only by Go types and lines only of the bytes it was
// given; a Source turns key paths into the lines of the operator's file.
type Source struct {
	node *yaml3.Node
}

// Parse reads doc for the positions of its nodes. An empty document is a
// Source whose At finds nothing.
func Parse(doc []byte) (*Source, error) {
	var n yaml3.Node
	if err := yaml3.Unmarshal(doc, &n); err != nil {
		return nil, err
	}
	s := &Source{}
	if n.Kind == yaml3.DocumentNode && len(n.Content) == 1 {
		s.node = n.Content[0]
	}
	return s, nil
}

// At returns the node at path below s: mapping keys, and for a list the
// index ("prehooks", "[0]" or "0", "options"). It returns nil when the
// path does not exist.
func (s *Source) At(path ...string) *Source {
	if s == nil {
		return nil
	}
	cur := *s
	for _, p := range path {
		n := resolve(cur.node)
		if n == nil {
			return nil
		}
		switch n.Kind {
		case yaml3.MappingNode:
			i := keyIndex(n, p, false)
			if i < 0 {
				return nil
			}
			cur.node = n.Content[i+1]
		case yaml3.SequenceNode:
			i, ok := index(p)
			if !ok || i >= len(n.Content) {
				return nil
			}
			cur.node = n.Content[i]
		default:
			return nil
		}
	}
	if cur.node == nil {
		return nil
	}
	return &cur
}

// Line is the line s's node starts on, 1-based.
func (s *Source) Line() int { return s.node.Line }

// line is the line of the key at path below s, or where it is missing, of
// the nearest mapping or list on the way; 0 when s is nil. With last, the
// key's last occurrence in its mapping is taken (a key set twice).
func (s *Source) line(path Path, last bool) int {
	if s == nil || s.node == nil {
		return 0
	}
	n := s.node
	l := n.Line
	for _, p := range path {
		n = resolve(n)
		switch n.Kind {
		case yaml3.MappingNode:
			i := keyIndex(n, p, last)
			if i < 0 {
				return l
			}
			l, n = n.Content[i].Line, n.Content[i+1]
		case yaml3.SequenceNode:
			i, ok := index(p)
			if !ok || i >= len(n.Content) {
				return l
			}
			n = n.Content[i]
			l = n.Line
		default:
			return l
		}
	}
	return l
}

// index reads a list index path element, "[3]" or "3".
func index(p string) (int, bool) {
	p = strings.TrimSuffix(strings.TrimPrefix(p, "["), "]")
	i, err := strconv.Atoi(p)
	return i, err == nil && i >= 0
}

func resolve(n *yaml3.Node) *yaml3.Node {
	for n != nil && n.Kind == yaml3.AliasNode {
		n = n.Alias
	}
	return n
}

// keyIndex is the index in m.Content of key, its first or last
// occurrence; -1 when m does not have it.
func keyIndex(m *yaml3.Node, key string, last bool) int {
	found := -1
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			if !last {
				return i
			}
			found = i
		}
	}
	return found
}

// problem is one of yaml.v2's decoding messages, taken apart.
type problem struct {
	line int
	kind int // unknownKey, duplicateKey or badValue
	key  string
	// tag and value are what yaml.v2 quotes of an ill-typed value: tag
	// "!!str", value "often" (yaml.v2 cuts values longer than 10 to their
	// first 7 and "..."); goType is the type it wanted.
	tag, value, goType string
}

const (
	unknownKey = iota
	duplicateKey
	badValue
)

func parseProblem(m string) (problem, bool) {
	rest, ok := strings.CutPrefix(m, "line ")
	if !ok {
		return problem{}, false
	}
	num, rest, ok := strings.Cut(rest, ": ")
	if !ok {
		return problem{}, false
	}
	line, err := strconv.Atoi(num)
	if err != nil {
		return problem{}, false
	}
	p := problem{line: line}
	if f, ok := strings.CutPrefix(rest, "field "); ok {
		if key, _, ok := strings.Cut(f, " not found in type "); ok {
			p.kind, p.key = unknownKey, key
			return p, true
		}
		if key, _, ok := strings.Cut(f, " already set in type "); ok {
			p.kind, p.key = duplicateKey, key
			return p, true
		}
		return problem{}, false
	}
	f, ok := strings.CutPrefix(rest, "cannot unmarshal ")
	if !ok {
		return problem{}, false
	}
	i := strings.LastIndex(f, " into ")
	if i < 0 {
		return problem{}, false
	}
	what := f[:i]
	p.kind, p.goType = badValue, f[i+len(" into "):]
	p.tag, p.value, _ = strings.Cut(what, " ")
	p.value = strings.TrimSuffix(strings.TrimPrefix(p.value, "`"), "`")
	return p, true
}

// find returns the path from s of the node p is about: for a key, the
// key (its mapping's path and the key); for a value, the value.
func (s *Source) find(p problem) (Path, bool) {
	var path Path
	var walk func(n *yaml3.Node) bool
	walk = func(n *yaml3.Node) bool {
		switch n.Kind {
		case yaml3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path = append(path, k.Value)
				if p.kind != badValue && k.Line == p.line && k.Value == p.key {
					return true
				}
				if p.kind == badValue && matches(v, p) || walk(v) {
					return true
				}
				path = path[:len(path)-1]
			}
		case yaml3.SequenceNode:
			for i, v := range n.Content {
				path = append(path, Index(i))
				if p.kind == badValue && matches(v, p) || walk(v) {
					return true
				}
				path = path[:len(path)-1]
			}
		}
		return false
	}
	if s == nil || s.node == nil {
		return nil, false
	}
	if p.kind == badValue && matches(s.node, p) {
		return nil, true
	}
	return path, walk(s.node)
}

func matches(n *yaml3.Node, p problem) bool {
	if n.Line != p.line {
		return false
	}
	switch p.tag {
	case "!!map":
		return n.Kind == yaml3.MappingNode
	case "!!seq":
		return n.Kind == yaml3.SequenceNode
	}
	if n.Kind != yaml3.ScalarNode {
		return false
	}
	if cut, ok := strings.CutSuffix(p.value, "..."); ok && len(p.value) == 10 {
		return strings.HasPrefix(n.Value, cut)
	}
	return n.Value == p.value
}

// explain turns yaml.v2's decoding error of data into Errors whose paths
// are relative to data's root and whose lines are data's. yaml.v2 reports
// these problems only as English text naming Go types; this is the one
// place that reads it, and what it cannot place stays yaml.v2's text.
func explain(te *yaml2.TypeError, data []byte, structs map[string]bool) error {
	in, err := Parse(data)
	if err != nil {
		in = nil
	}
	errs := make([]error, len(te.Errors))
	for i, m := range te.Errors {
		errs[i] = errors.New(m)
		p, ok := parseProblem(m)
		if !ok {
			continue
		}
		path, found := in.find(p)
		if !found {
			continue
		}
		e := &Error{Path: path, Line: p.line}
		switch p.kind {
		case unknownKey:
			e.Kind = UnknownKey
		case duplicateKey:
			e.Kind = DuplicateKey
		default:
			what := p.tag
			if p.tag != "!!map" && p.tag != "!!seq" {
				what += " `" + p.value + "`"
			}
			e.Err = errors.New("cannot unmarshal " + what + " into " + TypeName(p.goType, structs))
		}
		errs[i] = e
	}
	return errors.Join(errs...)
}

// TypeName says what yaml.v2's Go type name means to someone writing YAML:
// "time.Duration" is "a duration", "[]string" "a list". A type it does not
// know keeps its Go name.
func TypeName(goType string, structs map[string]bool) string {
	t := strings.TrimLeft(goType, "*")
	switch {
	case t == "time.Duration":
		return "a duration"
	case t == "bool":
		return "a boolean"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), structs[t]:
		return "a mapping"
	}
	return goType
}
