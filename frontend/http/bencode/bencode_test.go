package bencode

import (
	"testing"
)

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		got  []byte
		want string
	}{
		{"int", AppendInt(nil, 42), "i42e"},
		{"negative int", AppendInt(nil, -3), "i-3e"},
		{"zero", AppendInt(nil, 0), "i0e"},
		{"uint max", AppendUint(nil, 1<<64-1), "i18446744073709551615e"},
		{"string", AppendString(nil, "spam"), "4:spam"},
		{"empty string", AppendString(nil, ""), "0:"},
		{"binary bytes", AppendBytes(nil, []byte{0, 'e', 0xff}), "3:\x00e\xff"},
		{"string header", append(AppendStringHeader(nil, 6), "abcdef"...), "6:abcdef"},
		{"list", AppendEnd(AppendInt(AppendString(AppendListStart(nil), "a"), 1)), "l1:ai1ee"},
		{"appends to dst", AppendInt([]byte("x"), 1), "xi1e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if string(tt.got) != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestDict(t *testing.T) {
	d := BeginDict(nil)
	d.Int("a", -1)
	d.Uint("b", 2)
	d.String("c", "x")
	d.Bytes("d", []byte("yz"))
	d.KeyBytes([]byte("e\x00"))
	d.B = AppendEnd(AppendListStart(d.B))
	if got, want := string(d.End()), "d1:ai-1e1:bi2e1:c1:x1:d2:yz2:e\x00lee"; got != want {
		t.Errorf("dict = %q, want %q", got, want)
	}
}

func TestDictRejectsUnsortedKeys(t *testing.T) {
	tests := []struct {
		name  string
		write func(d *Dict)
	}{
		{"descending", func(d *Dict) { d.Key("b"); d.Key("a") }},
		{"repeated", func(d *Dict) { d.Key("a"); d.Key("a") }},
		{"prefix after longer", func(d *Dict) { d.Key("ab"); d.Key("a") }},
		{"binary repeated", func(d *Dict) { d.KeyBytes([]byte{1}); d.KeyBytes([]byte{1}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("Dict accepted a key out of order")
				}
			}()
			d := BeginDict(nil)
			tt.write(&d)
		})
	}
}

func TestDictAllocs(t *testing.T) {
	buf := make([]byte, 0, 256)
	ih := []byte("01234567890123456789")
	allocs := testing.AllocsPerRun(100, func() {
		d := BeginDict(buf[:0])
		d.Uint("complete", 10)
		d.Key("files")
		f := BeginDict(d.B)
		f.KeyBytes(ih)
		d.B = AppendInt(f.B, 1)
		d.B = AppendEnd(d.B)
		buf = d.End()
	})
	if allocs != 0 {
		t.Errorf("%v allocs per dictionary, want 0", allocs)
	}
}
