package frontendtest

import (
	"reflect"
	"testing"
)

func TestDecodeBencode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any // nil: an error
	}{
		{"i42e", int64(42)},
		{"i-7e", int64(-7)},
		{"i18446744073709551615e", uint64(18446744073709551615)},
		{"4:spam", "spam"},
		{"0:", ""},
		{"l4:spami1ee", []any{"spam", int64(1)}},
		{"d1:ai1e1:bli2eee", map[string]any{"a": int64(1), "b": []any{int64(2)}}},
		{"i042e", nil},          // not canonical
		{"i-0e", nil},           // not canonical
		{"d1:bi1e1:ai2ee", nil}, // keys out of order
		{"d1:ai1e1:ai2ee", nil}, // duplicate key
		{"5:spam", nil},         // string past the end
		{"i1ei2e", nil},         // trailing bytes
		{"di1ei2ee", nil},       // key not a string
		{"l", nil},              // unterminated
		{"x", nil},              // not bencode
	} {
		got, err := DecodeBencode([]byte(tc.in))
		if tc.want == nil {
			if err == nil {
				t.Errorf("DecodeBencode(%q) = %#v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("DecodeBencode(%q) = %#v, %v; want %#v", tc.in, got, err, tc.want)
		}
	}
}

func TestDecodeBencodePrefix(t *testing.T) {
	v, n, err := DecodeBencodePrefix([]byte("d4:infod1:xi1eee"))
	if err != nil || n != 16 || !reflect.DeepEqual(v, map[string]any{"info": map[string]any{"x": int64(1)}}) {
		t.Errorf("DecodeBencodePrefix = %v, %d, %v", v, n, err)
	}
	if _, n, err := DecodeBencodePrefix([]byte("i1eXYZ")); err != nil || n != 3 {
		t.Errorf("DecodeBencodePrefix of a value with bytes after it = %d, %v; want 3, nil", n, err)
	}
}

func TestEscapeBytes(t *testing.T) {
	if got := EscapeBytes([]byte{0, '%', '+', 0xff, 'a'}); got != "%00%25%2B%FF%61" {
		t.Errorf("EscapeBytes = %q", got)
	}
}
