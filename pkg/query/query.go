// Package query parses the query string of a tracker request in place.
//
// BitTorrent clients put raw binary (info hashes, peer IDs) into the query,
// percent-encoded byte by byte. A generic form decoder is the wrong tool for
// that: it copies every value, and net/url rejects semicolons and would have
// us build a map per request. Values instead records where each key and
// value sits in the raw string and unescapes on demand, so that the hot
// paths of both frontends read a request without allocating.
//
// The rules: pairs are separated by '&' (empty pairs are skipped); a pair
// without '=' has an empty value; "%XX" escapes accept upper- and lower-case
// hex digits; '+' stands for a space; every other byte is taken literally.
// A '%' not followed by two hex digits makes the whole query invalid
// (bittorrent.ErrInvalidEscape).
package query

import (
	"strings"

	"github.com/chihaya/chihaya/bittorrent"
)

// pair locates one key=value pair in the raw query. The escaped flags tell
// whether the text holds '%' or '+', so that unescaped text can be compared
// and returned without decoding.
type pair struct {
	keyStart, keyEnd uint32
	valStart, valEnd uint32
	keyEscaped       bool
	valEscaped       bool
}

type routeParam struct {
	name, value string
}

// Values is a parsed query. Its zero value is ready to use, and it is meant
// to be reused: Parse forgets the previous request but keeps the memory.
// Values implements bittorrent.Params; a Values must not be used after the
// request it was parsed from has been answered, since the frontend reuses
// it.
type Values struct {
	path   string
	query  string
	pairs  []pair
	routes []routeParam
}

var _ bittorrent.Params = (*Values)(nil)

// Parse resets v and reads rawQuery (the text after '?', without it); path
// is kept for RawPath. Route parameters are reset too: set them with
// SetRouteParam after Parse. It returns bittorrent.ErrInvalidEscape when a
// '%' is not followed by two hex digits, in which case v holds no pairs.
func (v *Values) Parse(path, rawQuery string) error {
	v.path = path
	v.query = rawQuery
	v.pairs = v.pairs[:0]
	v.routes = v.routes[:0]

	for start := 0; start <= len(rawQuery); {
		end := strings.IndexByte(rawQuery[start:], '&')
		if end < 0 {
			end = len(rawQuery)
		} else {
			end += start
		}
		if end > start { // an empty pair ("&&", a trailing '&') is skipped
			p := pair{keyStart: uint32(start), keyEnd: uint32(end), valStart: uint32(end), valEnd: uint32(end)}
			if eq := strings.IndexByte(rawQuery[start:end], '='); eq >= 0 {
				p.keyEnd = uint32(start + eq)
				p.valStart = uint32(start + eq + 1)
			}
			var ok1, ok2 bool
			p.keyEscaped, ok1 = scanEscapes(rawQuery[p.keyStart:p.keyEnd])
			p.valEscaped, ok2 = scanEscapes(rawQuery[p.valStart:p.valEnd])
			if !ok1 || !ok2 {
				v.pairs = v.pairs[:0]
				return bittorrent.ErrInvalidEscape
			}
			v.pairs = append(v.pairs, p)
		}
		start = end + 1
	}
	return nil
}

// scanEscapes reports whether s holds '%' or '+', and whether every '%'
// in it is followed by two hex digits.
func scanEscapes(s string) (escaped, ok bool) {
	i := strings.IndexByte(s, '%')
	if i < 0 {
		return strings.IndexByte(s, '+') >= 0, true
	}
	for ; i < len(s); i++ {
		if s[i] == '%' {
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return true, false
			}
			i += 2
		}
	}
	return true, true
}

// SetRouteParam records a named route parameter, such as the passkey of the
// route "/:passkey/announce", for RouteParam.
func (v *Values) SetRouteParam(name, value string) {
	v.routes = append(v.routes, routeParam{name: name, value: value})
}

// Reset forgets the request v was parsed from, so that a pooled Values does
// not keep a request's strings alive.
func (v *Values) Reset() {
	v.path, v.query = "", ""
	v.pairs = v.pairs[:0]
	for i := range v.routes {
		v.routes[i] = routeParam{}
	}
	v.routes = v.routes[:0]
}

// RawPath returns the path given to Parse.
func (v *Values) RawPath() string { return v.path }

// RawQuery returns the query given to Parse.
func (v *Values) RawQuery() string { return v.query }

// RouteParam returns the route parameter called name.
func (v *Values) RouteParam(name string) (string, bool) {
	for _, r := range v.routes {
		if r.name == name {
			return r.value, true
		}
	}
	return "", false
}

// String returns the unescaped value of the first pair whose unescaped key
// is key. It allocates only when the value holds escapes.
func (v *Values) String(key string) (string, bool) {
	i := v.Index(key)
	if i < 0 {
		return "", false
	}
	return v.Value(i), true
}

// Len returns the number of pairs, for walking repeated keys by index.
func (v *Values) Len() int { return len(v.pairs) }

// Key returns the unescaped key of pair i. It allocates only when the key
// holds escapes, which clients practically never send.
func (v *Values) Key(i int) string {
	p := v.pairs[i]
	return unescaped(v.query[p.keyStart:p.keyEnd], p.keyEscaped)
}

// KeyIs reports whether the unescaped key of pair i is name.
func (v *Values) KeyIs(i int, name string) bool {
	p := v.pairs[i]
	return unescapedIs(v.query[p.keyStart:p.keyEnd], p.keyEscaped, name)
}

// Index returns the index of the first pair whose key is name, or -1.
func (v *Values) Index(name string) int {
	for i := range v.pairs {
		if v.KeyIs(i, name) {
			return i
		}
	}
	return -1
}

// Count returns how many pairs have the key name.
func (v *Values) Count(name string) int {
	n := 0
	for i := range v.pairs {
		if v.KeyIs(i, name) {
			n++
		}
	}
	return n
}

// RawValue returns the value of pair i as it was received (still escaped).
func (v *Values) RawValue(i int) string {
	p := v.pairs[i]
	return v.query[p.valStart:p.valEnd]
}

// Value returns the unescaped value of pair i. Like String, it allocates
// only when the value holds escapes.
func (v *Values) Value(i int) string {
	p := v.pairs[i]
	return unescaped(v.query[p.valStart:p.valEnd], p.valEscaped)
}

// ValueIs reports whether the unescaped value of pair i is s, without
// allocating.
func (v *Values) ValueIs(i int, s string) bool {
	p := v.pairs[i]
	return unescapedIs(v.query[p.valStart:p.valEnd], p.valEscaped, s)
}

// unescaped returns raw unescaped; it allocates only when escaped says raw
// holds escapes.
func unescaped(raw string, escaped bool) string {
	if !escaped {
		return raw
	}
	return string(appendUnescaped(make([]byte, 0, len(raw)), raw))
}

// unescapedIs reports whether raw, unescaped, is s, without allocating.
func unescapedIs(raw string, escaped bool, s string) bool {
	if !escaped {
		return raw == s
	}
	return equalUnescaped(raw, s)
}

// AppendValue appends the unescaped value of pair i to dst.
func (v *Values) AppendValue(dst []byte, i int) []byte {
	p := v.pairs[i]
	return appendUnescaped(dst, v.query[p.valStart:p.valEnd])
}

// Value20 unescapes the value of pair i into a 20-byte array, the size of
// info hashes and peer IDs. ok is false unless the value is exactly 20
// bytes once unescaped.
func (v *Values) Value20(i int) (out [20]byte, ok bool) {
	p := v.pairs[i]
	raw := v.query[p.valStart:p.valEnd]
	if !p.valEscaped {
		if len(raw) != 20 {
			return out, false
		}
		copy(out[:], raw)
		return out, true
	}
	n := 0
	for j := 0; j < len(raw); n++ {
		if n == 20 {
			return out, false
		}
		out[n], j = decodeAt(raw, j)
	}
	return out, n == 20
}

// Uint returns the value of pair i as a decimal integer of at most bits
// bits. ok is false for an empty value, a sign, any non-digit, or an
// overflow.
func (v *Values) Uint(i int, bits int) (n uint64, ok bool) {
	limit := uint64(1)<<uint(bits) - 1
	if bits >= 64 {
		limit = ^uint64(0)
	}
	n, over, ok := v.uintUpTo(i, limit)
	if over || !ok {
		return 0, false
	}
	return n, true
}

// UintClamp is Uint for values that may be capped instead of refused: it
// returns max for any well-formed number above max, however long. ok is
// false for an empty value, a sign or any non-digit.
func (v *Values) UintClamp(i int, max uint64) (n uint64, ok bool) {
	n, over, ok := v.uintUpTo(i, max)
	if over && ok {
		return max, true
	}
	return n, ok
}

// uintUpTo reads pair i as a decimal integer; over reports a well-formed
// number above max, whose digits are all checked but not accumulated.
func (v *Values) uintUpTo(i int, max uint64) (n uint64, over, ok bool) {
	p := v.pairs[i]
	raw := v.query[p.valStart:p.valEnd]
	if len(raw) == 0 {
		return 0, false, false
	}
	for j := 0; j < len(raw); {
		var c byte
		if p.valEscaped {
			c, j = decodeAt(raw, j)
		} else {
			c, j = raw[j], j+1
		}
		if c < '0' || c > '9' {
			return 0, false, false
		}
		d := uint64(c - '0')
		if over || n > (max-min(d, max))/10 || n*10+d > max {
			over = true
			continue
		}
		n = n*10 + d
	}
	return n, over, true
}

// decodeAt returns the byte that s[i:] starts with once unescaped, and the
// index after it. s must have passed Parse's escape check.
func decodeAt(s string, i int) (byte, int) {
	switch c := s[i]; c {
	case '%':
		return unhex(s[i+1])<<4 | unhex(s[i+2]), i + 3
	case '+':
		return ' ', i + 1
	default:
		return c, i + 1
	}
}

func appendUnescaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		var c byte
		c, i = decodeAt(s, i)
		dst = append(dst, c)
	}
	return dst
}

// equalUnescaped reports whether escaped text s unescapes to plain.
func equalUnescaped(s, plain string) bool {
	n := 0
	for i := 0; i < len(s); n++ {
		if n == len(plain) {
			return false
		}
		var c byte
		c, i = decodeAt(s, i)
		if c != plain[n] {
			return false
		}
	}
	return n == len(plain)
}

// hexVal maps a byte to its hex digit value, or 0xff for a non-digit; a
// table lookup is what keeps escape-heavy info hashes cheap to parse.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "0123456789abcdef" {
		t[c] = byte(i)
	}
	for i, c := range "ABCDEF" {
		t[c] = byte(10 + i)
	}
	return t
}()

func isHex(c byte) bool { return hexVal[c] != 0xff }

func unhex(c byte) byte { return hexVal[c] }
