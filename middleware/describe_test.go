package middleware

import (
	"strings"
	"testing"

	"github.com/chihaya/chihaya/pkg/query"
)

// pathParams is a UDP request's parameters: a BEP 41 path, no router.
func pathParams(path string) *query.Values {
	v := &query.Values{}
	_ = v.Parse(path, "")
	return v
}

func TestRouteParamsFromPaths(t *testing.T) {
	d, err := NewDescriber([]string{"/announce", "/t/:passkey/announce", "/u/:user/:passkey/announce", "/x/*rest"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, name, want string
		ok               bool
	}{
		{"/t/abc/announce", "passkey", "abc", true},
		{"/u/joe/k1/announce", "user", "joe", true},
		{"/u/joe/k1/announce", "passkey", "k1", true},
		{"/t/abc/announce/more", "passkey", "", false},
		{"/t//announce", "passkey", "", false},
		{"/announce", "passkey", "", false},
		{"/x/a/b", "rest", "/a/b", true},
		{"", "passkey", "", false},
		{"t/abc/announce", "passkey", "", false},
	} {
		got, ok := d.RouteParam(pathParams(tc.path), tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s %s: got %q %v, want %q %v", tc.path, tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// FuzzRouteParam checks the matching of request paths against routes on
// arbitrary input: it never panics, and a value it finds is a non-empty
// part of the path (a catch-all's value starts with its slash).
func FuzzRouteParam(f *testing.F) {
	f.Add("/:passkey/announce", "/abc/announce", "passkey")
	f.Add("/x/*rest", "/x/a/b", "rest")
	f.Fuzz(func(t *testing.T, route, path, name string) {
		d, err := NewDescriber([]string{route}, nil)
		if err != nil {
			return
		}
		v, ok := d.RouteParam(pathParams(path), name)
		if !ok {
			return
		}
		if v == "" || !strings.Contains(path, v) {
			t.Fatalf("route %q, path %q: %q = %q", route, path, name, v)
		}
		if !strings.HasPrefix(v, "/") && strings.Contains(v, "/") {
			t.Fatalf("route %q, path %q: segment value %q holds a slash", route, path, v)
		}
	})
}
