package yamlconf

import (
	"testing"
	"time"

	"gopkg.in/yaml.v2"
)

type config struct {
	Interval time.Duration `yaml:"interval"`
	Count    int           `yaml:"count"`
	Nested   nested        `yaml:"nested"`
}

type nested struct {
	Names []string `yaml:"names"`
}

func TestDecode(t *testing.T) {
	defaults := config{Interval: time.Minute, Count: 3}
	for _, tc := range []struct {
		name, yaml string
		want       config
		err        string
	}{
		{name: "empty keeps defaults", yaml: "", want: defaults},
		{name: "null keeps defaults", yaml: "null\n", want: defaults},
		{name: "one key over the defaults", yaml: "count: 7\n", want: config{Interval: time.Minute, Count: 7}},
		{name: "unknown key", yaml: "count: 7\ncuont: 8\n", err: `line 2: unknown key "cuont" in x.y (yamlconf)`},
		{name: "unknown nested key", yaml: "nested:\n  names: []\n  nmes: []\n", err: `line 3: unknown key "nmes" in x.y.nested (yamlconf)`},
		{name: "ill-typed key", yaml: "interval: often\n", err: "line 1: x.y.interval: cannot unmarshal !!str `often` into a duration"},
		{name: "ill-typed list item", yaml: "nested:\n  names:\n    - a\n    - {b: c}\n", err: "line 4: x.y.nested.names[1]: cannot unmarshal !!map into a string"},
		{name: "long value cut by yaml.v2", yaml: "count: twenty-seven\n", err: "line 1: x.y.count: cannot unmarshal !!str `twenty-...` into an integer"},
		{name: "several errors", yaml: "count: x\ncuont: 8\n", err: "line 1: x.y.count: cannot unmarshal !!str `x` into an integer; line 2: unknown key \"cuont\" in x.y (yamlconf)"},
		{name: "not a mapping", yaml: "[1, 2]\n", err: "line 1: x.y: cannot unmarshal !!seq into a mapping"},
		{name: "lines kept after blank lines", yaml: "\n\n\n    count: 7\n    cuont: 8\n", err: `line 5: unknown key "cuont" in x.y (yamlconf)`},
		{name: "syntax error", yaml: "count: [\n", err: "x.y: yaml: line 1: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.yaml), "x.y", defaults)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v\nwant  %s", err, tc.err)
				}
				return
			}
			if err != nil || got.Interval != tc.want.Interval || got.Count != tc.want.Count {
				t.Fatalf("Decode = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestFragment cuts a subtree out of a file and decodes it on its own, as
// the daemon does with storage.config: the error must name the file's line.
func TestFragment(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		path      []string
		err       string // decoding the fragment into config
	}{
		{
			name: "block mapping, comments and blank lines",
			doc:  "top:\n  # the store\n  cfg:\n\n    count: 7\n    # a typo follows\n    cuont: 8\n  other: 1\n",
			path: []string{"top", "cfg"},
			err:  `line 7: unknown key "cuont" in c (yamlconf)`,
		},
		{
			name: "flow mapping",
			doc:  "top:\n  other: 1\n  cfg: {count: 7, interval: often}\n",
			path: []string{"top", "cfg"},
			err:  "line 3: c.interval: cannot unmarshal !!str `often` into a duration",
		},
		{
			name: "flow mapping over two lines",
			doc:  "top:\n  cfg: {count: 7,\n    interval: often}\n  other: 1\n",
			path: []string{"top", "cfg"},
			err:  "line 3: c.interval: cannot unmarshal !!str `often` into a duration",
		},
		{
			name: "list item",
			doc:  "hooks:\n  - name: a\n  - count: 1\n    interval: x\n  - name: c\n",
			path: []string{"hooks", "1"},
			err:  "line 4: c.interval: cannot unmarshal !!str `x` into a duration",
		},
		{
			name: "last in the file, after wide characters",
			doc:  "é: 1\nñ:\n  count: 1\n  nested: {nmes: []}",
			path: []string{"ñ"},
			err:  `line 4: unknown key "nmes" in c.nested (yamlconf)`,
		},
		{
			name: "anchor on the subtree itself",
			doc:  "a: &base\n  count: one\nb: 2\n",
			path: []string{"a"},
			err:  "line 2: c.count: cannot unmarshal !!str `one` into an integer",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := Parse([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			at := src.At(tc.path...)
			if at == nil {
				t.Fatalf("At(%q) found nothing", tc.path)
			}
			frag := at.Fragment()
			if frag == nil {
				t.Fatalf("Fragment() = nil")
			}
			_, err = Decode(frag, "c", config{})
			if err == nil || err.Error() != tc.err {
				t.Errorf("decoding the fragment %q:\n got: %v\nwant: %s", frag, err, tc.err)
			}
		})
	}
}

func TestFragmentCannotStandAlone(t *testing.T) {
	src, err := Parse([]byte("base: &b {count: 1}\ncfg:\n  <<: *b\n  interval: 1m\n"))
	if err != nil {
		t.Fatal(err)
	}
	if frag := src.At("cfg").Fragment(); frag != nil {
		t.Errorf("Fragment() of a mapping using an outside anchor = %q, want nil (the caller re-marshals)", frag)
	}
}

func TestAtMissing(t *testing.T) {
	src, err := Parse([]byte("a:\n  - b: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range [][]string{{"x"}, {"a", "1"}, {"a", "b"}, {"a", "0", "b", "c"}} {
		if got := src.At(path...); got != nil {
			t.Errorf("At(%q) = line %d, want nil", path, got.Line())
		}
	}
	if got := src.At("a", "0", "b"); got == nil || got.Line() != 2 {
		t.Errorf("At(a, 0, b) = %v, want line 2", got)
	}
}

// TestExplainerFrom is the hooks' case: a hook decodes a re-marshalled
// copy of its options, and the error is moved to the file's lines.
func TestExplainerFrom(t *testing.T) {
	doc := "hooks:\n  - name: x\n    options:\n      # tuning\n      nested:\n        names: [a, {b: c}]\n      count: 1\n      cuont: 2\n"
	src, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	// What yaml.v2 re-marshals of the options: keys sorted, no comments.
	copied := "count: 1\ncuont: 2\nnested:\n  names:\n  - a\n  - b: c\n"
	e := Explainer{Path: "hooks[0].options", Owner: "x", From: src.At("hooks", "0", "options")}
	want := `line 8: unknown key "cuont" in hooks[0].options (x); line 6: hooks[0].options.nested.names[1]: cannot unmarshal !!map into a string`
	if got := e.Error(rawError(t, copied), []byte(copied)); got.Error() != want {
		t.Errorf("Explainer.Error:\n got: %v\nwant: %s", got, want)
	}
}

func TestTypeName(t *testing.T) {
	structs := map[string]bool{"redis.Config": true}
	for goType, want := range map[string]string{
		"time.Duration":           "a duration",
		"*int":                    "an integer",
		"uint16":                  "an integer",
		"float64":                 "a number",
		"bool":                    "a boolean",
		"string":                  "a string",
		"[]string":                "a list",
		"map[string]interface {}": "a mapping",
		"redis.Config":            "a mapping",
		"netip.Prefix":            "netip.Prefix",
	} {
		if got := TypeName(goType, structs); got != want {
			t.Errorf("TypeName(%q) = %q, want %q", goType, got, want)
		}
	}
}

// rawError is yaml.v2's own error decoding data into config.
func rawError(t *testing.T, data string) error {
	t.Helper()
	var c config
	err := yaml.UnmarshalStrict([]byte(data), &c)
	if err == nil {
		t.Fatalf("%q decoded", data)
	}
	return err
}
