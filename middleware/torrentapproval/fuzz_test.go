package torrentapproval

import (
	"encoding/hex"
	"testing"
)

// FuzzParseList checks the list-file parser on arbitrary files: it never
// panics, and a file it accepts means the same list once written back in
// canonical form.
func FuzzParseList(f *testing.F) {
	f.Add([]byte(hashA + "\n"))
	f.Add([]byte("# comment\n\n  " + hashB + "  # trailing\r\n" + hashC))
	f.Add([]byte("not a hash\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		set, err := parseList(data)
		if err != nil {
			return
		}
		var canon []byte
		for ih := range set {
			canon = append(canon, hex.EncodeToString(ih[:])+"\n"...)
		}
		again, err := parseList(canon)
		if err != nil {
			t.Fatalf("canonical form %q of an accepted list rejected: %v", canon, err)
		}
		if len(again) != len(set) {
			t.Fatalf("%d hashes became %d", len(set), len(again))
		}
		for ih := range set {
			if _, ok := again[ih]; !ok {
				t.Fatalf("hash %x lost", ih)
			}
		}
	})
}
