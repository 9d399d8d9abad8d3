package operator

import (
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzParseTokens: no file makes the parser panic, no error shows a
// token, and every token it accepts has a role.
func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{
		"abcdefghijklmnopqr read\n",
		"# c\nabcdefghijklmnopqr admin # x\n\n",
		"abcdefghijklmnopqr write\n",
		"short read\n",
		"a b c\n",
		"abcdefghijklmnopqr read\nabcdefghijklmnopqr read\n",
		"\x00\xff read\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, file string) {
		ts, err := parseTokens([]byte(file))
		if err != nil {
			for _, field := range strings.Fields(file) {
				if len(field) >= minTokenLen && strings.Contains(err.Error(), field) {
					t.Fatalf("error %q shows a token", err)
				}
			}
			return
		}
		for i, r := range ts.roles {
			if r != Read && r != Admin {
				t.Fatalf("token %d has role %v", i, r)
			}
		}
	})
}

// FuzzParseCursor: a cursor that parses prints back as itself.
func FuzzParseCursor(f *testing.F) {
	f.Add(cursor{offset: 100, sort: sortSnatches}.String())
	f.Add("AAAAAAAAAAAAAAAAAA")
	f.Add("!!!!!!!!!!!!!!!!!!")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			return
		}
		if c.String() != s {
			t.Fatalf("cursor %q prints back as %q", s, c.String())
		}
		if int(c.sort) >= len(sortNames) {
			t.Fatalf("cursor %q has sort %d", s, c.sort)
		}
	})
}

// FuzzParseInfoHash: what parses is 40 hex digits and prints back as
// them, in lower case.
func FuzzParseInfoHash(f *testing.F) {
	f.Add("0123456789abcdef0123456789ABCDEF01234567")
	f.Add("xyz")
	f.Fuzz(func(t *testing.T, s string) {
		ih, ok := parseInfoHash(s)
		if ok && hex.EncodeToString(ih[:]) != strings.ToLower(s) {
			t.Fatalf("%q parsed as %x", s, ih)
		}
	})
}
