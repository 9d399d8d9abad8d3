package httpapproval

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/chihaya/chihaya/bittorrent"
)

// FuzzParseAnswer checks the reading of a service's answer on arbitrary
// bytes: it never panics, and a refusal's text is always safe to show.
func FuzzParseAnswer(f *testing.F) {
	f.Add([]byte(`{"allow": true}`))
	f.Add([]byte(`{"allow": false, "reason": "unknown passkey", "interval": 600}`))
	f.Add([]byte(`{"allow": "yes"}`))
	f.Add([]byte(`<html></html>`))
	f.Add([]byte(`{"allow": false, "reason": "\u0000\r\n\u00ff"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseAnswer(data)
		if err != nil {
			return
		}
		if a.interval < 0 || a.interval > MaxInterval {
			t.Fatalf("interval %s accepted", a.interval)
		}
		if a.err == nil {
			return
		}
		var ce bittorrent.ClientError
		if !errors.As(a.err, &ce) {
			t.Fatalf("refusal %v is not a ClientError", a.err)
		}
		s := string(ce)
		if s == "" || len(s) > MaxReasonBytes || !utf8.ValidString(s) {
			t.Fatalf("unsafe reason %q", s)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("control character in reason %q", s)
			}
		}
	})
}
