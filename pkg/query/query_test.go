package query

import (
	"errors"
	"strings"
	"testing"

	"github.com/chihaya/chihaya/bittorrent"
)

// kv is one decoded pair, as the reference decoder below sees it.
type kv struct{ k, v string }

// refDecode is an independent, allocation-happy decoder of the same rules
// Values implements, used to check Parse in table tests and fuzzing.
func refDecode(q string) ([]kv, bool) {
	var out []kv
	for _, part := range strings.Split(q, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, ok1 := refUnescape(k)
		dv, ok2 := refUnescape(v)
		if !ok1 || !ok2 {
			return nil, false
		}
		out = append(out, kv{dk, dv})
	}
	return out, true
}

func refUnescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '+':
			b.WriteByte(' ')
		case '%':
			if i+2 >= len(s) {
				return "", false
			}
			hi, lo := strings.IndexByte("0123456789abcdef", lower(s[i+1])), strings.IndexByte("0123456789abcdef", lower(s[i+2]))
			if hi < 0 || lo < 0 {
				return "", false
			}
			b.WriteByte(byte(hi<<4 | lo))
			i += 2
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// pairsOf returns what v holds, through its public accessors.
func pairsOf(v *Values) []kv {
	var out []kv
	for i := 0; i < v.Len(); i++ {
		k := v.Key(i)
		out = append(out, kv{k, v.Value(i)})
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []kv
		err   error
	}{
		{name: "empty", query: "", want: nil},
		{name: "one pair", query: "a=b", want: []kv{{"a", "b"}}},
		{name: "several pairs", query: "a=1&b=2&c=3", want: []kv{{"a", "1"}, {"b", "2"}, {"c", "3"}}},
		{name: "key without value", query: "compact&a=1", want: []kv{{"compact", ""}, {"a", "1"}}},
		{name: "empty value", query: "a=&b=2", want: []kv{{"a", ""}, {"b", "2"}}},
		{name: "empty key", query: "=x", want: []kv{{"", "x"}}},
		{name: "empty pairs skipped", query: "&&a=1&&b=2&", want: []kv{{"a", "1"}, {"b", "2"}}},
		{name: "only separators", query: "&&&", want: nil},
		{name: "lower-case escape", query: "a=%ab%cd", want: []kv{{"a", "\xab\xcd"}}},
		{name: "upper-case escape", query: "a=%AB%CD", want: []kv{{"a", "\xab\xcd"}}},
		{name: "plus is a space", query: "a=b+c", want: []kv{{"a", "b c"}}},
		{name: "escaped plus", query: "a=%2B", want: []kv{{"a", "+"}}},
		{name: "escaped key", query: "info%5Fhash=x", want: []kv{{"info_hash", "x"}}},
		{name: "second equals is part of the value", query: "a=b=c", want: []kv{{"a", "b=c"}}},
		{name: "escaped ampersand stays in value", query: "a=%26&b=1", want: []kv{{"a", "&"}, {"b", "1"}}},
		{name: "literal unreserved and other bytes", query: "a=-._~!*'()\xff;", want: []kv{{"a", "-._~!*'()\xff;"}}},
		{name: "repeated keys kept in order", query: "h=1&h=2", want: []kv{{"h", "1"}, {"h", "2"}}},
		{name: "truncated escape at end", query: "a=%4", err: bittorrent.ErrInvalidEscape},
		{name: "lone percent", query: "a=%", err: bittorrent.ErrInvalidEscape},
		{name: "non-hex escape", query: "a=%zz", err: bittorrent.ErrInvalidEscape},
		{name: "bad escape in key", query: "%g1=a", err: bittorrent.ErrInvalidEscape},
		{name: "escape cut by separator", query: "a=%4&b=1", err: bittorrent.ErrInvalidEscape},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Values
			err := v.Parse("/announce", tt.query)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) error = %v, want %v", tt.query, err, tt.err)
			}
			if err != nil {
				if v.Len() != 0 {
					t.Errorf("after an error Len() = %d, want 0", v.Len())
				}
				return
			}
			got := pairsOf(&v)
			if len(got) != len(tt.want) {
				t.Fatalf("Parse(%q) = %q, want %q", tt.query, got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("pair %d = %q, want %q", i, got[i], tt.want[i])
				}
			}
			if v.RawQuery() != tt.query || v.RawPath() != "/announce" {
				t.Errorf("RawQuery, RawPath = %q, %q", v.RawQuery(), v.RawPath())
			}
		})
	}
}

func TestString(t *testing.T) {
	var v Values
	if err := v.Parse("/", "jwt=a.b.c&x=%41%62&x=second&flag&info%5fhash=ih"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"jwt", "a.b.c", true},
		{"x", "Ab", true},
		{"flag", "", true},
		{"info_hash", "ih", true},
		{"missing", "", false},
		{"fla", "", false},
	}
	for _, tt := range tests {
		got, ok := v.String(tt.key)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("String(%q) = %q, %v, want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
		}
	}
	if n := v.Count("x"); n != 2 {
		t.Errorf("Count(x) = %d, want 2", n)
	}
}

func TestValue20(t *testing.T) {
	twenty := strings.Repeat("a", 20)
	esc := strings.Repeat("%61", 20)
	tests := []struct {
		name   string
		value  string
		wantOK bool
	}{
		{"literal 20", twenty, true},
		{"escaped 20", esc, true},
		{"mixed 20", "%61" + twenty[1:], true},
		{"literal 19", twenty[1:], false},
		{"literal 21", twenty + "a", false},
		{"escaped 19", esc[3:], false},
		{"escaped 21", esc + "%61", false},
		{"plus counts as one byte", "+" + twenty[1:], true},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Values
			if err := v.Parse("/", "k="+tt.value); err != nil {
				t.Fatal(err)
			}
			got, ok := v.Value20(0)
			if ok != tt.wantOK {
				t.Fatalf("Value20 ok = %v, want %v", ok, tt.wantOK)
			}
			if ok {
				want, _ := refUnescape(tt.value)
				if string(got[:]) != want {
					t.Errorf("Value20 = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestUint(t *testing.T) {
	tests := []struct {
		name   string
		value  string
		bits   int
		want   uint64
		wantOK bool
	}{
		{"zero", "0", 64, 0, true},
		{"number", "6881", 16, 6881, true},
		{"max 16", "65535", 16, 65535, true},
		{"overflow 16", "65536", 16, 0, false},
		{"max 64", "18446744073709551615", 64, 1<<64 - 1, true},
		{"overflow 64", "18446744073709551616", 64, 0, false},
		{"max 32", "4294967295", 32, 1<<32 - 1, true},
		{"overflow 32", "4294967296", 32, 0, false},
		{"escaped digits", "%31%32", 64, 12, true},
		{"leading zeros", "007", 64, 7, true},
		{"empty", "", 64, 0, false},
		{"negative", "-1", 64, 0, false},
		{"plus sign", "%2B1", 64, 0, false},
		{"space", "+1", 64, 0, false},
		{"garbage", "12a", 64, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Values
			if err := v.Parse("/", "n="+tt.value); err != nil {
				t.Fatal(err)
			}
			got, ok := v.Uint(0, tt.bits)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Uint(%q, %d) = %d, %v, want %d, %v", tt.value, tt.bits, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestUintClamp(t *testing.T) {
	tests := []struct {
		name   string
		value  string
		max    uint64
		want   uint64
		wantOK bool
	}{
		{"below", "50", 100, 50, true},
		{"at max", "100", 100, 100, true},
		{"above", "101", 100, 100, true},
		{"far above", "99999999999999999999999999", 100, 100, true},
		{"max is the largest uint64", "99999999999999999999999999", 1<<64 - 1, 1<<64 - 1, true},
		{"exactly the largest uint64", "18446744073709551615", 1<<64 - 1, 1<<64 - 1, true},
		{"single digit above a tiny max", "7", 5, 5, true},
		{"zero", "0", 100, 0, true},
		{"empty", "", 100, 0, false},
		{"negative", "-1", 100, 0, false},
		{"garbage after overflow", "99999999999999999999999x", 100, 0, false},
		{"escaped", "%35", 100, 5, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v Values
			if err := v.Parse("/", "n="+tt.value); err != nil {
				t.Fatal(err)
			}
			got, ok := v.UintClamp(0, tt.max)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("UintClamp(%q, %d) = %d, %v, want %d, %v", tt.value, tt.max, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestValueIsAndKeyIs(t *testing.T) {
	var v Values
	if err := v.Parse("/", "ev%65nt=st%61rted&compact=0"); err != nil {
		t.Fatal(err)
	}
	if !v.KeyIs(0, "event") || v.KeyIs(0, "even") || v.KeyIs(0, "events") {
		t.Error("KeyIs does not match the escaped key \"event\" exactly")
	}
	if !v.ValueIs(0, "started") || v.ValueIs(0, "start") || v.ValueIs(0, "startedx") {
		t.Error("ValueIs does not match the escaped value \"started\" exactly")
	}
	if !v.ValueIs(1, "0") || v.ValueIs(1, "1") {
		t.Error("ValueIs does not match the literal value \"0\" exactly")
	}
	if got := string(v.AppendValue([]byte("x"), 0)); got != "xstarted" {
		t.Errorf("AppendValue = %q, want %q", got, "xstarted")
	}
}

func TestRouteParams(t *testing.T) {
	var v Values
	if err := v.Parse("/secret/announce", "a=1"); err != nil {
		t.Fatal(err)
	}
	v.SetRouteParam("passkey", "secret")
	if got, ok := v.RouteParam("passkey"); got != "secret" || !ok {
		t.Errorf("RouteParam(passkey) = %q, %v", got, ok)
	}
	if _, ok := v.RouteParam("other"); ok {
		t.Error("RouteParam(other) found a parameter that was never set")
	}
	if err := v.Parse("/announce", ""); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.RouteParam("passkey"); ok {
		t.Error("Parse kept the route parameters of the previous request")
	}
	v.Reset()
	if v.Len() != 0 || v.RawPath() != "" || v.RawQuery() != "" {
		t.Error("Reset kept the previous request")
	}
}

func TestParseAllocs(t *testing.T) {
	var v Values
	q := "info_hash=%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9a&peer_id=-TR3000-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=100&compact=1&event=started"
	_ = v.Parse("/announce", q) // grow the pair slice once
	allocs := testing.AllocsPerRun(100, func() {
		if err := v.Parse("/announce", q); err != nil {
			t.Fatal(err)
		}
		i := v.Index("info_hash")
		if _, ok := v.Value20(i); !ok {
			t.Fatal("info_hash not 20 bytes")
		}
		if _, ok := v.Uint(v.Index("port"), 16); !ok {
			t.Fatal("bad port")
		}
		if _, ok := v.String("peer_id"); !ok {
			t.Fatal("no peer_id")
		}
	})
	if allocs != 0 {
		t.Errorf("Parse and accessors: %v allocs per run, want 0", allocs)
	}
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range []string{
		"",
		"a=b",
		"info_hash=%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9a&port=6881",
		"a=%zz",
		"a=%4",
		"&&a&=b&c=d=e+f",
		"info%5Fhash=aaaaaaaaaaaaaaaaaaaa&info_hash=%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61%61",
		"n=18446744073709551616",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		var v Values
		err := v.Parse("/", q)
		want, ok := refDecode(q)
		if (err == nil) != ok {
			t.Fatalf("Parse(%q) error = %v, reference ok = %v", q, err, ok)
		}
		if err != nil {
			return
		}
		got := pairsOf(&v)
		if len(got) != len(want) {
			t.Fatalf("Parse(%q) = %q, reference %q", q, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("pair %d = %q, reference %q", i, got[i], want[i])
			}
			if !v.KeyIs(i, want[i].k) || !v.ValueIs(i, want[i].v) {
				t.Fatalf("KeyIs/ValueIs disagree with the reference on pair %d %q", i, want[i])
			}
			b20, ok20 := v.Value20(i)
			if ok20 != (len(want[i].v) == 20) || (ok20 && string(b20[:]) != want[i].v) {
				t.Fatalf("Value20 of %q = %q, %v", want[i].v, b20, ok20)
			}
			if s, found := v.String(want[i].k); !found || (v.Index(want[i].k) == i && s != want[i].v) {
				t.Fatalf("String(%q) = %q, %v", want[i].k, s, found)
			}
			n, okU := v.Uint(i, 64)
			c, okC := v.UintClamp(i, 1<<64-1)
			if okU && (!okC || c != n) {
				t.Fatalf("Uint = %d, %v but UintClamp = %d, %v for %q", n, okU, c, okC, want[i].v)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	q := "info_hash=%12%34%56%78%9a%bc%de%f1%23%45%67%89%ab%cd%ef%12%34%56%78%9a&peer_id=-TR3000-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=100&compact=1&event=started&numwant=50&key=abcd"
	var v Values
	b.ReportAllocs()
	for b.Loop() {
		if err := v.Parse("/announce", q); err != nil {
			b.Fatal(err)
		}
	}
}
