package websocket

import (
	"encoding/binary"
	"math"
	"math/bits"
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
	b, start := p.b, p.i
	for i := start; ; {
		i = plainRun(b, i)
		if i >= len(b) {
			p.i = i
			return nil, false
		}
		switch b[i] {
		case '"':
			p.i = i + 1
			return b[start:i], true
		case '\\':
			p.i = i
			if _, ok := p.escape(); !ok {
				return nil, false
			}
			i = p.i
		default: // a control character
			p.i = i
			return nil, false
		}
	}
}

// Bytes repeated in each of a word's eight lanes, for plainRun.
const (
	lanes1    = 0x0101010101010101
	lanesHigh = 0x8080808080808080
)

// plainRun returns the index of the first byte from i on that ends or
// interrupts a JSON string's plain text (a quote, a backslash or a control
// character), or len(b). Strings are most of a message (an offer's SDP),
// so it tests eight bytes at a time: a lane is flagged if it is below
// 0x20, or zero once xored with a quote or a backslash. A borrow may flag
// a lane above a flagged one too, never one below, so the lowest flagged
// lane is the byte sought.
func plainRun(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		q := w ^ ('"' * lanes1)
		s := w ^ ('\\' * lanes1)
		if m := ((w - 0x20*lanes1) | (q - lanes1) | (s - lanes1)) &^ w & lanesHigh; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' || c < 0x20 {
			return i
		}
	}
	return i
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
