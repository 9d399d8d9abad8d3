// Package bencode appends bencoded values (BEP 3) to byte slices.
//
// It only writes: a tracker never has to read bencode. Every function
// appends to a caller-owned buffer, so a frontend that reuses its buffers
// encodes a reply without allocating. Dictionaries are written through
// Dict, which insists on strictly increasing keys, because BEP 3 requires
// sorted keys and some clients reject a dictionary that is not sorted.
package bencode

import (
	"strconv"
)

// AppendInt appends the integer n ("i42e").
func AppendInt(dst []byte, n int64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, 'e')
}

// AppendUint appends the non-negative integer n ("i42e").
func AppendUint(dst []byte, n uint64) []byte {
	dst = append(dst, 'i')
	dst = strconv.AppendUint(dst, n, 10)
	return append(dst, 'e')
}

// AppendString appends the byte string s ("4:spam").
func AppendString(dst []byte, s string) []byte {
	dst = strconv.AppendUint(dst, uint64(len(s)), 10)
	dst = append(dst, ':')
	return append(dst, s...)
}

// AppendBytes appends the byte string b ("4:spam").
func AppendBytes(dst, b []byte) []byte {
	dst = strconv.AppendUint(dst, uint64(len(b)), 10)
	dst = append(dst, ':')
	return append(dst, b...)
}

// AppendStringHeader appends only the length prefix of a byte string of n
// bytes ("300:"), for callers that then append the n bytes themselves, such
// as a compact peer list built in place.
func AppendStringHeader(dst []byte, n int) []byte {
	dst = strconv.AppendUint(dst, uint64(n), 10)
	return append(dst, ':')
}

// AppendListStart opens a list; close it with AppendEnd.
func AppendListStart(dst []byte) []byte { return append(dst, 'l') }

// AppendEnd closes a list or a dictionary.
func AppendEnd(dst []byte) []byte { return append(dst, 'e') }

// Dict writes one dictionary. Open it with BeginDict, write each key
// (with Key or one of the typed helpers) followed by its value, and finish
// with End. Keys must come in strictly increasing byte order: a key out of
// order or repeated is a programming error, and Dict panics rather than
// write a dictionary some clients would reject.
type Dict struct {
	// B is the buffer being written. Values that have no helper (lists,
	// nested dictionaries) are appended to it directly after Key.
	B []byte

	// The previous key sits in B[keyStart:keyEnd]; keeping offsets rather
	// than a copy lets binary keys (info hashes) be checked without
	// allocating.
	keyStart, keyEnd int
	hasKey           bool
}

// BeginDict opens a dictionary at the end of dst.
func BeginDict(dst []byte) Dict {
	return Dict{B: append(dst, 'd')}
}

// Key writes the next key.
func (d *Dict) Key(k string) {
	if d.hasKey && k <= string(d.B[d.keyStart:d.keyEnd]) {
		panic("bencode: dictionary key " + strconv.Quote(k) + " is not after " + strconv.Quote(string(d.B[d.keyStart:d.keyEnd])))
	}
	d.B = AppendStringHeader(d.B, len(k))
	d.keyStart = len(d.B)
	d.B = append(d.B, k...)
	d.keyEnd = len(d.B)
	d.hasKey = true
}

// KeyBytes writes the next key from a byte slice (binary keys such as info
// hashes), with the same ordering rule as Key.
func (d *Dict) KeyBytes(k []byte) {
	if d.hasKey && string(k) <= string(d.B[d.keyStart:d.keyEnd]) {
		panic("bencode: dictionary key " + strconv.Quote(string(k)) + " is not after " + strconv.Quote(string(d.B[d.keyStart:d.keyEnd])))
	}
	d.B = AppendStringHeader(d.B, len(k))
	d.keyStart = len(d.B)
	d.B = append(d.B, k...)
	d.keyEnd = len(d.B)
	d.hasKey = true
}

// Int writes the key k with the integer value v.
func (d *Dict) Int(k string, v int64) {
	d.Key(k)
	d.B = AppendInt(d.B, v)
}

// Uint writes the key k with the non-negative integer value v.
func (d *Dict) Uint(k string, v uint64) {
	d.Key(k)
	d.B = AppendUint(d.B, v)
}

// String writes the key k with the byte string v.
func (d *Dict) String(k, v string) {
	d.Key(k)
	d.B = AppendString(d.B, v)
}

// Bytes writes the key k with the byte string v.
func (d *Dict) Bytes(k string, v []byte) {
	d.Key(k)
	d.B = AppendBytes(d.B, v)
}

// End closes the dictionary and returns the buffer.
func (d *Dict) End() []byte {
	d.B = append(d.B, 'e')
	return d.B
}
