package frontendtest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// DecodeBencode is the tests' own bencode reader, written apart from the
// HTTP frontend's writer so that what the tracker writes is checked against
// an independent idea of the format. It is strict: canonical integers only
// (an int64, or a uint64 above its range), dictionary keys strictly
// increasing, nothing after the value. Strings come back as string, lists
// as []any, dictionaries as map[string]any.
func DecodeBencode(b []byte) (any, error) {
	v, n, err := DecodeBencodePrefix(b)
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, fmt.Errorf("bencode: %d trailing bytes", len(b)-n)
	}
	return v, nil
}

// DecodeBencodePrefix decodes the value at the start of b and returns it
// with its length in bytes, so that a caller can find a value's raw bytes
// (a torrent's info dictionary, whose SHA-1 is its info hash).
func DecodeBencodePrefix(b []byte) (v any, n int, err error) {
	return decodeAt(b, 0, 0)
}

func decodeAt(b []byte, i, depth int) (any, int, error) {
	if depth > 32 {
		return nil, 0, errors.New("bencode: nested too deep")
	}
	if i >= len(b) {
		return nil, 0, errors.New("bencode: unexpected end")
	}
	switch c := b[i]; {
	case c == 'i':
		end := bytes.IndexByte(b[i:], 'e')
		if end < 0 {
			return nil, 0, errors.New("bencode: unterminated integer")
		}
		s := string(b[i+1 : i+end])
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || strconv.FormatInt(n, 10) != s {
			// Canonical form only: no leading zeros, no "-0", no '+'.
			u, uerr := strconv.ParseUint(s, 10, 64)
			if uerr != nil || strconv.FormatUint(u, 10) != s {
				return nil, 0, fmt.Errorf("bencode: bad integer %q", s)
			}
			return u, i + end + 1, nil
		}
		return n, i + end + 1, nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b[i:], ':')
		if colon < 0 {
			return nil, 0, errors.New("bencode: unterminated string length")
		}
		s := string(b[i : i+colon])
		n, err := strconv.Atoi(s)
		if err != nil || strconv.Itoa(n) != s {
			return nil, 0, fmt.Errorf("bencode: bad string length %q", s)
		}
		start := i + colon + 1
		if n > len(b)-start {
			return nil, 0, errors.New("bencode: string past the end")
		}
		return string(b[start : start+n]), start + n, nil
	case c == 'l':
		list := []any{}
		i++
		for {
			if i >= len(b) {
				return nil, 0, errors.New("bencode: unterminated list")
			}
			if b[i] == 'e' {
				return list, i + 1, nil
			}
			v, n, err := decodeAt(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			list, i = append(list, v), n
		}
	case c == 'd':
		dict := map[string]any{}
		i++
		prev, first := "", true
		for {
			if i >= len(b) {
				return nil, 0, errors.New("bencode: unterminated dictionary")
			}
			if b[i] == 'e' {
				return dict, i + 1, nil
			}
			k, n, err := decodeAt(b, i, depth+1)
			if err != nil {
				return nil, 0, err
			}
			key, ok := k.(string)
			if !ok {
				return nil, 0, errors.New("bencode: dictionary key is not a string")
			}
			if !first && key <= prev {
				return nil, 0, fmt.Errorf("bencode: dictionary key %q not after %q", key, prev)
			}
			prev, first = key, false
			v, n, err := decodeAt(b, n, depth+1)
			if err != nil {
				return nil, 0, err
			}
			dict[key], i = v, n
		}
	}
	return nil, 0, fmt.Errorf("bencode: unexpected byte %q at %d", b[i], i)
}

// EscapeBytes percent-encodes every byte of b, as clients send info hashes
// and peer IDs.
func EscapeBytes(b []byte) string {
	const hexdig = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(b))
	for _, c := range b {
		out = append(out, '%', hexdig[c>>4], hexdig[c&15])
	}
	return string(out)
}
