package yamlconf

import (
	"bytes"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"

	yaml2 "gopkg.in/yaml.v2"
	yaml3 "gopkg.in/yaml.v3"
)

// Source is a YAML document parsed a second time, by yaml.v3, only for the
// positions of its nodes. Decoding stays with yaml.v2 (CONFIG-COMPAT), but
// yaml.v2 gives a line relative to the bytes it decoded and knows keys
// only by Go types, so a subtree handed on as YAML of its own would report
// lines of that fragment, not of the operator's file.
type Source struct {
	doc  []byte
	node *yaml3.Node
	// next is the first node after node in document order (a following
	// key or list item of an ancestor); nil when node runs to the end.
	next *yaml3.Node
}

// Parse reads doc for the positions of its nodes. An empty document is a
// Source whose At finds nothing.
func Parse(doc []byte) (*Source, error) {
	var n yaml3.Node
	if err := yaml3.Unmarshal(doc, &n); err != nil {
		return nil, err
	}
	s := &Source{doc: doc}
	if n.Kind == yaml3.DocumentNode && len(n.Content) == 1 {
		s.node = n.Content[0]
	}
	return s, nil
}

// At returns the node at path below s: mapping keys, and for a list the
// index in decimal ("prehooks", "0", "options"). It returns nil when the
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
			i := keyIndex(n, p)
			if i < 0 {
				return nil
			}
			if i+2 < len(n.Content) {
				cur.next = n.Content[i+2]
			}
			cur.node = n.Content[i+1]
		case yaml3.SequenceNode:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(n.Content) {
				return nil
			}
			if i+1 < len(n.Content) {
				cur.next = n.Content[i+1]
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

// Fragment returns the YAML of s's node alone, with the node on the line
// it has in the whole document: errors decoding the fragment then name
// the document's lines. It returns nil when the node cannot stand alone
// (an alias to an anchor outside it), so that the caller can fall back to
// re-marshalling it.
func (s *Source) Fragment() []byte {
	n := s.node
	var frag []byte
	if n.Kind == yaml3.MappingNode || n.Kind == yaml3.SequenceNode {
		// Block or flow: the lines it spans, as written, so that a flow
		// collection broken over lines keeps them too.
		frag = s.blockText()
	} else {
		// A scalar: yaml.v3 writes it back on one line (it does not
		// wrap), the line it started on.
		b, err := yaml3.Marshal(n)
		if err != nil {
			return nil
		}
		frag = append(bytes.Repeat([]byte("\n"), n.Line-1), b...)
	}
	if frag == nil || !sameValue(n, frag) {
		return nil
	}
	return frag
}

// blockText cuts a collection out of the document: every line before
// it becomes empty, so do the columns before it on its first line, and the
// text ends where the next node's line starts.
func (s *Source) blockText() []byte {
	lines := bytes.SplitAfter(s.doc, []byte("\n"))
	first, last := s.node.Line-1, len(lines)
	if s.next != nil {
		last = s.next.Line - 1
	}
	if first >= len(lines) || last <= first {
		return nil
	}
	var b bytes.Buffer
	b.Write(bytes.Repeat([]byte("\n"), first))
	head := lines[first]
	for col := 1; col < s.node.Column && len(head) > 0; col++ {
		_, size := utf8.DecodeRune(head)
		head = head[size:]
		b.WriteByte(' ')
	}
	b.Write(head)
	for _, l := range lines[first+1 : last] {
		b.Write(l)
	}
	return b.Bytes()
}

// sameValue reports whether frag decodes to what n does in its document.
func sameValue(n *yaml3.Node, frag []byte) bool {
	var want, got interface{}
	if n.Decode(&want) != nil || yaml3.Unmarshal(frag, &got) != nil {
		return false
	}
	return reflect.DeepEqual(want, got)
}

func resolve(n *yaml3.Node) *yaml3.Node {
	for n != nil && n.Kind == yaml3.AliasNode {
		n = n.Alias
	}
	return n
}

func keyIndex(m *yaml3.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
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

// find returns the node p is about below s, and its path from s: for a
// key, the mapping holding it (the key itself is the path's last
// element); for a value, the value.
func (s *Source) find(p problem) (path []string, lists []bool, found bool) {
	var walk func(n *yaml3.Node) bool
	walk = func(n *yaml3.Node) bool {
		switch n.Kind {
		case yaml3.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				path, lists = append(path, k.Value), append(lists, false)
				if p.kind != badValue && k.Line == p.line && k.Value == p.key {
					return true
				}
				if p.kind == badValue && matches(v, p) {
					return true
				}
				if walk(v) {
					return true
				}
				path, lists = path[:len(path)-1], lists[:len(lists)-1]
			}
		case yaml3.SequenceNode:
			for i, v := range n.Content {
				path, lists = append(path, strconv.Itoa(i)), append(lists, true)
				if p.kind == badValue && matches(v, p) {
					return true
				}
				if walk(v) {
					return true
				}
				path, lists = path[:len(path)-1], lists[:len(lists)-1]
			}
		}
		return false
	}
	if s == nil || s.node == nil {
		return nil, nil, false
	}
	if p.kind == badValue && matches(s.node, p) {
		return nil, nil, true
	}
	found = walk(s.node)
	return path, lists, found
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

// lineOf is the line, in s, of the key or value at path.
func (s *Source) lineOf(path []string, p problem) (int, bool) {
	if len(path) == 0 {
		return s.node.Line, true
	}
	parent := s.At(path[:len(path)-1]...)
	if parent == nil {
		return 0, false
	}
	if p.kind != badValue {
		m := resolve(parent.node)
		if m.Kind != yaml3.MappingNode {
			return 0, false
		}
		i := keyIndex(m, path[len(path)-1])
		if i < 0 {
			return 0, false
		}
		return m.Content[i].Line, true
	}
	n := parent.At(path[len(path)-1])
	if n == nil {
		return 0, false
	}
	return n.node.Line, true
}

// Explainer rewords yaml.v2's decoding errors for operators: `line 18:
// unknown key "gc_intervall" in storage.config (redis)` and `line 19:
// storage.config.peer_lifetime: cannot unmarshal !!str `often` into a
// duration`, instead of Go type names and, for a subtree decoded on its
// own, lines of that subtree.
type Explainer struct {
	// Path is the decoded mapping's key path, as Validate writes paths
	// ("storage.config", "prehooks[0].options").
	Path string
	// Owner is whose keys the mapping holds ("redis", "rate limit"),
	// named in unknown-key errors: a key can be right for one driver or
	// hook and wrong for another.
	Owner string
	// From, if set, is where the decoded YAML came from: the YAML was a
	// re-marshalled copy of From's node, and lines are taken from From.
	From *Source
	// Structs lists the Go types that are mappings to the operator.
	Structs map[string]bool
}

// Error rewords err, yaml.v2's error decoding data; any other error is
// returned as it is.
func (e Explainer) Error(err error, data []byte) error {
	var te *yaml2.TypeError
	if !errors.As(err, &te) {
		return err
	}
	in, perr := Parse(data)
	if perr != nil {
		in = nil
	}
	msgs := make([]string, len(te.Errors))
	for i, m := range te.Errors {
		msgs[i] = e.Message(m, in)
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Message rewords m, one of yaml.v2's decoding messages about in. A
// message it cannot place is returned as it is.
func (e Explainer) Message(m string, in *Source) string {
	p, ok := parseProblem(m)
	if !ok {
		return m
	}
	path, lists, found := in.find(p)
	if !found {
		return m
	}
	line := "line " + strconv.Itoa(p.line) + ": "
	if e.From != nil {
		// Without the node in the file, no line beats a wrong one.
		line = ""
		if l, ok := e.From.lineOf(path, p); ok {
			line = "line " + strconv.Itoa(l) + ": "
		}
	}
	switch p.kind {
	case unknownKey, duplicateKey:
		at := keyPath(e.Path, path[:len(path)-1], lists)
		if at == "" {
			at = "the top level"
		}
		if p.kind == duplicateKey {
			return line + "key " + strconv.Quote(p.key) + " set twice in " + at
		}
		if e.Owner != "" {
			at += " (" + e.Owner + ")"
		}
		return line + "unknown key " + strconv.Quote(p.key) + " in " + at
	default:
		what := p.tag
		if p.tag != "!!map" && p.tag != "!!seq" {
			what += " `" + p.value + "`"
		}
		at := keyPath(e.Path, path, lists)
		if at != "" {
			at += ": "
		}
		return line + at + "cannot unmarshal " + what + " into " + TypeName(p.goType, e.Structs)
	}
}

func keyPath(prefix string, path []string, lists []bool) string {
	var b strings.Builder
	b.WriteString(prefix)
	for i, p := range path {
		switch {
		case lists[i]:
			b.WriteString("[" + p + "]")
		case b.Len() > 0:
			b.WriteString("." + p)
		default:
			b.WriteString(p)
		}
	}
	return b.String()
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
