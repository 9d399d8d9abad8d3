package yamlconf

import (
	"strconv"
	"strings"

	yaml3 "go.yaml.in/yaml/v3"
)

// Source is a YAML document parsed by yaml.v3 for the positions of its
// nodes. Decoding stays with yaml.v2 (CONFIG-COMPAT), which knows lines
// only of the bytes it was given (a component decodes a copy of its
// subtree); a Source turns key paths into the lines of the operator's
// file.
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
