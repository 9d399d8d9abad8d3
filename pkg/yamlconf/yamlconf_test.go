package yamlconf

import (
	"testing"
	"time"
)

type config struct {
	Interval time.Duration `yaml:"interval"`
	Count    int           `yaml:"count"`
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
		{name: "unknown key", yaml: "count: 7\ncuont: 8\n", err: "x.y.cuont: line 2: field cuont not found in type yamlconf.config"},
		{name: "ill-typed key", yaml: "interval: often\n", err: "x.y.interval: line 1: cannot unmarshal !!str `often` into time.Duration"},
		{name: "not a mapping", yaml: "[1, 2]\n", err: "x.y: line 1: cannot unmarshal !!seq into yamlconf.config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode([]byte(tc.yaml), "x.y", defaults)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Decode = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
