package yamlconf

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Path is a key path: mapping keys, and list indices written "[i]".
// Paths are data: a component names a key relative to its own root, each
// caller above it puts its own keys in front (Under), and the one caller
// that has the file turns the whole path into a line (Locate).
type Path []string

// Key splits a key path written as in the documentation,
// "locality.topology_file" or "whitelist[2]", into its elements.
func Key(path string) Path {
	var p Path
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part[1:], '[')
			if i < 0 {
				p = append(p, part)
				break
			}
			p = append(p, part[:i+1])
			part = part[i+1:]
		}
	}
	return p
}

// Index is the path element of list item i.
func Index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// String writes p as the documentation does: "prehooks[0].options.issuer".
func (p Path) String() string {
	var b strings.Builder
	for _, e := range p {
		if b.Len() > 0 && !strings.HasPrefix(e, "[") {
			b.WriteByte('.')
		}
		b.WriteString(e)
	}
	return b.String()
}

// Kind says what an Error is about.
type Kind uint8

// The kinds of Error.
const (
	// Invalid is a key whose value is wrong (ill-typed, out of range).
	Invalid Kind = iota
	// UnknownKey is a key the mapping does not have: a typo, or a key of
	// another driver or hook. Path's last element is the key.
	UnknownKey
	// DuplicateKey is a key written twice in one mapping. Path's last
	// element is the key; Line is that of its second occurrence.
	DuplicateKey
)

// Error is a configuration error whose place travels as data: the key
// path, and the line once the caller that has the file knows it. Its text
// is "line 4: udp.max_numwant: must be > 0 and <= 3638, got -1".
type Error struct {
	Kind Kind
	// Path names the key, relative to the root of whoever returned the
	// error; callers above put their keys in front with Under.
	Path Path
	// Line is the key's line in the file (1-based); 0 while not known.
	Line int
	// Owner is the driver or hook whose keys these are ("memory", "rate
	// limit"), named where a key can be right for one and wrong for
	// another: an unknown key, or an error about the component's own
	// mapping as a whole.
	Owner string
	// ownerDepth is how many of Path's elements are below the owner's
	// mapping; the owner is named for an Invalid error only at depth 0.
	ownerDepth int
	// Root names the mapping Path is relative to ("chihaya"), for an
	// error about that mapping itself; "" is the top level.
	Root string
	// Err says what is wrong, without naming the key.
	Err error
}

// Errorf returns an Invalid error about key, a path relative to the
// caller's root ("shard_count", "whitelist[2]"), for a Validate method.
func Errorf(key string, format string, a ...any) error {
	return &Error{Path: Key(key), Err: fmt.Errorf(format, a...)}
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line " + strconv.Itoa(e.Line) + ": ")
	}
	switch e.Kind {
	case UnknownKey, DuplicateKey:
		key, in := "", e.mapping(e.Path)
		if n := len(e.Path); n > 0 {
			key, in = e.Path[n-1], e.mapping(e.Path[:n-1])
		}
		if e.Kind == DuplicateKey {
			b.WriteString("key " + strconv.Quote(key) + " set twice in " + in)
			break
		}
		b.WriteString("unknown key " + strconv.Quote(key) + " in " + in)
		if e.Owner != "" {
			b.WriteString(" (" + e.Owner + ")")
		}
	default:
		at := e.Path.String()
		if at == "" {
			at = e.Root
		}
		if e.Owner != "" && e.ownerDepth == 0 {
			at += " (" + e.Owner + ")"
		}
		if at != "" {
			b.WriteString(at + ": ")
		}
		if e.Err != nil {
			b.WriteString(e.Err.Error())
		} else {
			b.WriteString("invalid")
		}
	}
	return b.String()
}

func (e *Error) mapping(p Path) string {
	switch {
	case len(p) > 0:
		return p.String()
	case e.Root != "":
		return e.Root
	}
	return "the top level"
}

// Unwrap returns what is wrong.
func (e *Error) Unwrap() error { return e.Err }

// each rewrites every *Error in err (err itself, or the errors it joins)
// with f; any other error becomes one by plain, or stays as it is when
// plain is nil.
func each(err error, f func(e *Error), plain func(err error) *Error) error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		out := make([]error, len(errs))
		for i, e := range errs {
			out[i] = each(e, f, plain)
		}
		return errors.Join(out...)
	}
	if e, ok := err.(*Error); ok {
		c := *e
		f(&c)
		return &c
	}
	if plain == nil {
		return err
	}
	e := plain(err)
	f(e)
	return e
}

// Under places err below the key path prefix, as the caller that gave a
// component its subtree knows it: "shard_count" under "storage.config" is
// "storage.config.shard_count". An error that is not an *Error (a
// Validate that names no key) becomes one about prefix itself.
func Under(err error, prefix ...string) error {
	return each(err, func(e *Error) {
		e.Path = append(append(Path{}, prefix...), e.Path...)
	}, func(err error) *Error { return &Error{Err: err} })
}

// Owned names owner as whose keys the errors in err are about, at the
// mapping they are relative to now. Errors that name an owner keep it. An
// error that is not an *Error (a Validate that names no key) becomes one
// about that mapping itself.
func Owned(err error, owner string) error {
	return each(err, func(e *Error) {
		if e.Owner == "" {
			e.Owner, e.ownerDepth = owner, len(e.Path)
		}
	}, func(err error) *Error { return &Error{Err: err} })
}

// IsConfig reports whether err is about the configuration, an *Error or
// errors joined that all are: a registry places such errors of a
// constructor and leaves the others (a connection refused) as they are.
func IsConfig(err error) bool {
	if err == nil {
		return false
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			if !IsConfig(e) {
				return false
			}
		}
		return true
	}
	_, ok := err.(*Error)
	return ok
}

// Locate gives every *Error in err its line in the document src was
// parsed from: the line of its key, or where the key is missing (a
// required key left out), of the nearest mapping that holds it. Paths are
// taken relative to src's node, which the caller names root ("chihaya";
// "" for the whole document). Errors already given a line keep it only
// where src does not have their key.
func Locate(err error, src *Source, root string) error {
	return each(err, func(e *Error) {
		if l := src.line(e.Path, e.Kind == DuplicateKey); l > 0 {
			e.Line = l
		}
		e.Root = root
	}, nil)
}

// Within re-keys the errors in err that are about key, a mapping at the
// top of the document, relative to that mapping, which they then name as
// their Root: the daemon names every key relative to `chihaya:`. Other
// errors are left as they are.
func Within(err error, key string) error {
	return each(err, func(e *Error) {
		if len(e.Path) > 0 && e.Path[0] == key {
			e.Path, e.Root = e.Path[1:], key
		}
	}, nil)
}
