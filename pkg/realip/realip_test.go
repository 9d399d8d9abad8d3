package realip

import (
	"net/netip"
	"testing"
)

func TestClientAddr(t *testing.T) {
	trusted, err := New("x-forwarded-for", []string{"10.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	anyone, err := New("X-Real-IP", nil)
	if err != nil {
		t.Fatal(err)
	}
	none, _ := New("", nil)
	for _, tc := range []struct {
		name   string
		r      *Resolver
		remote string
		header map[string][]string
		want   string
		err    error
	}{
		{"no header configured", none, "192.0.2.1:5000", map[string][]string{"X-Real-Ip": {"203.0.113.9"}}, "192.0.2.1", nil},
		{"mapped IPv4 is unmapped", none, "[::ffff:192.0.2.1]:5000", nil, "192.0.2.1", nil},
		{"trusted proxy, last entry", trusted, "10.1.2.3:5000", map[string][]string{"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}}, "203.0.113.9", nil},
		{"trusted proxy, with a port", trusted, "[::1]:5000", map[string][]string{"X-Forwarded-For": {"[2001:db8::7]:443"}}, "2001:db8::7", nil},
		{"untrusted sender", trusted, "192.0.2.1:5000", map[string][]string{"X-Forwarded-For": {"203.0.113.9"}}, "192.0.2.1", nil},
		{"trusted proxy without the header", trusted, "10.1.2.3:5000", nil, "10.1.2.3", nil},
		{"empty list trusts anyone", anyone, "192.0.2.1:5000", map[string][]string{"X-Real-Ip": {"203.0.113.9"}}, "203.0.113.9", nil},
		{"garbage in the header", anyone, "192.0.2.1:5000", map[string][]string{"X-Real-Ip": {"nope"}}, "", ErrUnknown},
		{"unspecified address", anyone, "192.0.2.1:5000", map[string][]string{"X-Real-Ip": {"0.0.0.0"}}, "", ErrUnknown},
		{"bad remote address", none, "pipe", nil, "", ErrUnknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.r.ClientAddr(tc.remote, tc.header)
			if err != tc.err {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if err == nil && got != netip.MustParseAddr(tc.want) {
				t.Errorf("got %v, want %s", got, tc.want)
			}
		})
	}
	if _, err := New("X-Real-IP", []string{"10.0.0.0/33"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}
