package webhook

import (
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestSignVerify: what Sign signs, Verify accepts within the replay
// window and refuses changed, unsigned, or outside the window.
func TestSignVerify(t *testing.T) {
	secret, body := []byte("s3cret"), []byte(`{"allow":true}`)
	now := time.Unix(1_765_000_000, 0)
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
	Sign(req, secret, body, now)
	for _, tc := range []struct {
		name   string
		header http.Header
		secret []byte
		body   []byte
		at     time.Time
		want   error
	}{
		{"as signed", req.Header, secret, body, now, nil},
		{"at the window's end", req.Header, secret, body, now.Add(MaxSkew), nil},
		{"past the window", req.Header, secret, body, now.Add(MaxSkew + time.Second), ErrStale},
		{"from the future", req.Header, secret, body, now.Add(-MaxSkew - time.Second), ErrStale},
		{"other secret", req.Header, []byte("other"), body, now, ErrBadSignature},
		{"changed body", req.Header, secret, []byte(`{"allow":false}`), now, ErrBadSignature},
		{"unsigned", http.Header{}, secret, body, now, ErrUnsigned},
		{"no prefix", http.Header{TimestampHeader: req.Header[TimestampHeader], SignatureHeader: {req.Header.Get(SignatureHeader)[len("sha256="):]}}, secret, body, now, ErrBadSignature},
		{"changed timestamp", http.Header{TimestampHeader: {"1765000001"}, SignatureHeader: req.Header[SignatureHeader]}, secret, body, now, ErrBadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(tc.header, tc.secret, tc.body, tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
	unsigned, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/", nil)
	Sign(unsigned, nil, body, now)
	if unsigned.Header.Get(SignatureHeader) != "" {
		t.Error("a nil secret signed the request")
	}
}
