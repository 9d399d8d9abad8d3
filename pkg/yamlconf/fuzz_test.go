package yamlconf

import (
	"errors"
	"testing"

	yaml2 "go.yaml.in/yaml/v2"
)

// FuzzDecode feeds arbitrary documents to the decoder: it must not panic,
// must reject nothing that yaml.v2 accepts, and every error it places must
// have a text and a path that Locate can follow in the same document
// without panicking.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"count: 7\n",
		"count: 7\ncuont: 8\n",
		"interval: often\nnested:\n  names: [a, {b: c}]\n",
		"count: 1\ncount: 2\n",
		"[1, 2]\n",
		"a: &x {count: one}\nnested: *x\n",
		"nested: {names: [x,\n  {y: z}]}\n",
		"count: twenty-seven\n",
		"count: [\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, err := Decode(doc, config{})
		// The walk places what yaml.v2 rejects; it must never reject
		// what yaml.v2 accepts (CONFIG-COMPAT).
		var strict config
		if v2err := yaml2.UnmarshalStrict(doc, &strict); v2err == nil && err != nil {
			t.Fatalf("%q: rejected (%v), yaml.v2 accepts it", doc, err)
		}
		if err == nil {
			return
		}
		src, perr := Parse(doc)
		if perr != nil {
			src = nil
		}
		placed := Locate(Under(Owned(err, "x"), "root", Index(0)), src, "top")
		if placed.Error() == "" {
			t.Fatalf("an error without text for %q", doc)
		}
		var e *Error
		if errors.As(err, &e) && e.Kind != Invalid && len(e.Path) == 0 {
			t.Fatalf("a key error without a key for %q: %v", doc, err)
		}
	})
}
