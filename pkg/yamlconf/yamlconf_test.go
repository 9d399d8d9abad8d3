package yamlconf

import (
	"errors"
	"testing"
	"time"
)

type config struct {
	Interval time.Duration `yaml:"interval"`
	Count    int           `yaml:"count"`
	Nested   nested        `yaml:"nested"`
}

type nested struct {
	Names []string `yaml:"names"`
}

func (c config) Validate() error {
	switch {
	case c.Count < 0:
		return Errorf("count", "must be >= 0, got %d", c.Count)
	case len(c.Nested.Names) > 0 && c.Nested.Names[0] == "":
		return Errorf("nested.names[0]", "must not be empty")
	case c.Count == 99:
		return errors.New("count and interval disagree")
	}
	return nil
}

// TestDecode: errors name keys relative to the decoded document, with its
// lines.
func TestDecode(t *testing.T) {
	start := config{Interval: time.Minute, Count: 3}
	for _, tc := range []struct {
		name, yaml string
		want       config
		err        string
	}{
		{name: "empty keeps start", yaml: "", want: start},
		{name: "null keeps start", yaml: "null\n", want: start},
		{name: "one key over start", yaml: "count: 7\n", want: config{Interval: time.Minute, Count: 7}},
		{name: "unknown key", yaml: "count: 7\ncuont: 8\n", err: `line 2: unknown key "cuont" in the top level`},
		{name: "unknown nested key", yaml: "nested:\n  names: []\n  nmes: []\n", err: `line 3: unknown key "nmes" in nested`},
		{name: "ill-typed key", yaml: "interval: often\n", err: "line 1: interval: cannot unmarshal !!str `often` into a duration"},
		{name: "ill-typed list item", yaml: "nested:\n  names:\n    - a\n    - {b: c}\n", err: "line 4: nested.names[1]: cannot unmarshal !!map into a string"},
		{name: "long value cut by yaml.v2", yaml: "count: twenty-seven\n", err: "line 1: count: cannot unmarshal !!str `twenty-...` into an integer"},
		{name: "several errors", yaml: "count: x\ncuont: 8\n", err: "line 1: count: cannot unmarshal !!str `x` into an integer\nline 2: unknown key \"cuont\" in the top level"},
		{name: "not a mapping", yaml: "[1, 2]\n", err: "line 1: cannot unmarshal !!seq into a mapping"},
		{name: "key set twice", yaml: "count: 1\ncount: 2\n", err: `line 2: key "count" set twice in the top level`},
		{name: "lines kept after blank lines", yaml: "\n\n\n    count: 7\n    cuont: 8\n", err: `line 5: unknown key "cuont" in the top level`},
		{name: "YAML 1.1 boolean, as yaml.v2 reads it", yaml: "count: yes\n", err: "line 1: count: cannot unmarshal !!bool `yes` into an integer"},
		{name: "quoted number is a string", yaml: "count: \"7\"\n", err: "line 1: count: cannot unmarshal !!str `7` into an integer"},
		{name: "timestamp", yaml: "count: 2019-01-01\n", err: "line 1: count: cannot unmarshal !!timestamp `2019-01-01` into an integer"},
		{name: "scalar for a mapping", yaml: "nested: x\n", err: "line 1: nested: cannot unmarshal !!str `x` into a mapping"},
		{name: "key set twice, nested", yaml: "nested:\n  names: []\n  names: [a]\n", err: `line 3: key "names" set twice in nested`},
		{name: "through an anchor", yaml: "a: &x\n  count: one\n", err: `line 1: unknown key "a" in the top level`},
		{name: "merged mapping", yaml: "base: &b {count: 2}\n<<: *b\n", err: `line 1: unknown key "base" in the top level`},
		{name: "syntax error", yaml: "count: [\n", err: "yaml: line 1: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.yaml), start)
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

// TestPlaced follows an error from a component's Validate or decoding up
// to the daemon: the registry puts the subtree's path in front and names
// the component, and the daemon gives the line in its file, where the
// subtree may sit anywhere and be written in any style.
func TestPlaced(t *testing.T) {
	file := "top:\n  # the store\n  list:\n    - name: a\n    - name: b\n      cfg:\n\n        count: 7\n        # a typo follows\n        cuont: 8\n        nested: {names: [x,\n          {y: z}]}\n  other: &base {count: one}\n"
	src, err := Parse([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	// What the registry decodes: a copy of the subtree, as yaml.v2
	// writes it back (keys sorted, no comments, other lines).
	copied := "count: 7\ncuont: 8\nnested:\n  names:\n  - x\n  - y: z\n"
	for _, tc := range []struct {
		name string
		err  error // as the component returns it
		want string
	}{
		{"decoding the copy", decodeErr(t, copied), "line 10: unknown key \"cuont\" in list[1].cfg (b)\nline 12: list[1].cfg.nested.names[1]: cannot unmarshal !!map into a string"},
		{"validate, key", config{Count: -1}.Validate(), "line 8: list[1].cfg.count: must be >= 0, got -1"},
		{"validate, list item", config{Nested: nested{Names: []string{""}}}.Validate(), "line 11: list[1].cfg.nested.names[0]: must not be empty"},
		{"validate, no key", config{Count: 99}.Validate(), "line 6: list[1].cfg (b): count and interval disagree"},
		{"missing key", Errorf("interval", "must be set"), "line 6: list[1].cfg.interval: must be set"},
		{"joined", errors.Join(Errorf("count", "a"), Errorf("nested", "b")), "line 8: list[1].cfg.count: a\nline 11: list[1].cfg.nested: b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Under(Owned(tc.err, "b"), "list", Index(1), "cfg")
			err = Locate(err, src.At("top"), "top")
			if err == nil || err.Error() != tc.want {
				t.Errorf("got:\n%v\nwant:\n%s", err, tc.want)
			}
		})
	}
	t.Run("through an anchor", func(t *testing.T) {
		err := Locate(Under(Errorf("count", "bad"), "other"), src.At("top"), "top")
		if want := "line 13: other.count: bad"; err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("root mapping", func(t *testing.T) {
		err := Locate(&Error{Kind: UnknownKey, Path: Path{"x"}}, src.At("top"), "top")
		if want := `line 3: unknown key "x" in top`; err.Error() != want {
			t.Errorf("got %v, want %s", err, want)
		}
	})
	t.Run("not a configuration error", func(t *testing.T) {
		plain := errors.New("connection refused")
		if err := Locate(plain, src, ""); err != plain || IsConfig(err) {
			t.Errorf("Locate changed a plain error: %v", err)
		}
	})
}

func decodeErr(t *testing.T, data string) error {
	t.Helper()
	_, err := Decode([]byte(data), config{})
	if err == nil {
		t.Fatalf("%q decoded", data)
	}
	return err
}

func TestKey(t *testing.T) {
	for in, want := range map[string]string{
		"a":                     "a",
		"a.b":                   "a b",
		"whitelist[2]":          "whitelist [2]",
		"locality.list[3].name": "locality list [3] name",
		"[0].options":           "[0] options",
	} {
		got := ""
		for i, e := range Key(in) {
			if i > 0 {
				got += " "
			}
			got += e
		}
		if got != want {
			t.Errorf("Key(%q) = %q, want %q", in, got, want)
		}
		if s := Key(in).String(); s != in {
			t.Errorf("Key(%q).String() = %q", in, s)
		}
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
	if got := src.At("a", "[0]", "b"); got == nil || got.Line() != 2 {
		t.Errorf("At(a, [0], b) = %v, want line 2", got)
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
