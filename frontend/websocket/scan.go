package websocket

import (
	"math"
	"strconv"
)

// The JSON scanning under the parser: strings, numbers, literals and
// values skipped whole, read in place without allocating.

// escape reads the escape sequence at p.i and returns the code unit it
// stands for (a lone UTF-16 surrogate for half a pair).
func (p *parser) escape() (rune, bool) {
	if p.i+1 >= len(p.b) {
		return 0, false
	}
	c := p.b[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'u':
		if p.i+4 > len(p.b) {
			return 0, false
		}
		var r rune
		for _, h := range p.b[p.i : p.i+4] {
			switch {
			case h >= '0' && h <= '9':
				r = r<<4 | rune(h-'0')
			case h >= 'a' && h <= 'f':
				r = r<<4 | rune(h-'a'+10)
			case h >= 'A' && h <= 'F':
				r = r<<4 | rune(h-'A'+10)
			default:
				return 0, false
			}
		}
		p.i += 4
		return r, true
	}
	return 0, false
}

// rawString reads a string and returns its bytes between the quotes,
// escapes left as they are: keys and the few values compared against
// constants never need them.
func (p *parser) rawString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\':
			if _, ok := p.escape(); !ok {
				return nil, false
			}
		case c < 0x20:
			return nil, false
		default:
			p.i++
		}
	}
	return nil, false
}

// number reads a non-negative JSON number into *dst (truncated to an
// integer, saturated at the largest uint64), or null, which leaves *dst.
func (p *parser) number(dst *uint64) error {
	if p.literal("null") {
		return nil
	}
	start := p.i
	if p.peek() == '-' || !p.jsonNumber() {
		return errInvalidNumber
	}
	num := p.b[start:p.i]
	var v uint64
	integer := true
	for _, c := range num {
		if c < '0' || c > '9' {
			integer = false
			break
		}
		d := uint64(c - '0')
		if v > (math.MaxUint64-d)/10 {
			v = math.MaxUint64
			break
		}
		v = v*10 + d
	}
	if !integer {
		// Rare (no client sends it), so the conversion's copy is fine.
		f, _ := strconv.ParseFloat(string(num), 64)
		if f >= math.MaxUint64 {
			v = math.MaxUint64
		} else {
			v = uint64(f)
		}
	}
	*dst = v
	return nil
}

// skip passes over one JSON value of any type, checking it is well
// formed, at nesting depth d.
func (p *parser) skip(d int) bool {
	if d > maxDepth {
		return false
	}
	switch p.peek() {
	case '"':
		_, ok := p.rawString()
		return ok
	case '{':
		return p.object(errMalformed, func([]byte) error { return p.skipped(d + 1) }) == nil
	case '[':
		return p.array(errMalformed, func() error { return p.skipped(d + 1) }) == nil
	case 't':
		return p.literal("true")
	case 'f':
		return p.literal("false")
	case 'n':
		return p.literal("null")
	}
	return p.jsonNumber()
}

// skipped is skip for object and array: errMalformed where skip fails.
func (p *parser) skipped(d int) error {
	if !p.skip(d) {
		return errMalformed
	}
	return nil
}

// object reads a JSON object, calling member with each key and the
// position at its value; a malformed object is the error bad.
func (p *parser) object(bad error, member func(key []byte) error) error {
	if !p.eat('{') {
		return bad
	}
	p.ws()
	if p.eat('}') {
		return nil
	}
	for {
		p.ws()
		key, ok := p.rawString()
		p.ws()
		if !ok || !p.eat(':') {
			return bad
		}
		p.ws()
		if err := member(key); err != nil {
			return err
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return nil
		}
		return bad
	}
}

// array reads a JSON array, calling elem with the position at each
// element; a malformed array is the error bad.
func (p *parser) array(bad error, elem func() error) error {
	if !p.eat('[') {
		return bad
	}
	p.ws()
	if p.eat(']') {
		return nil
	}
	for {
		p.ws()
		if err := elem(); err != nil {
			return err
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return nil
		}
		return bad
	}
}

// jsonNumber passes over a number in JSON's grammar.
func (p *parser) jsonNumber() bool {
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	first := p.i
	if n := digits(); n == 0 || n > 1 && p.b[first] == '0' {
		return false
	}
	if p.eat('.') && digits() == 0 {
		return false
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if digits() == 0 {
			return false
		}
	}
	return true
}

func (p *parser) literal(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}
