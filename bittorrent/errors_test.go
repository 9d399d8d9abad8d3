package bittorrent

import (
	"errors"
	"fmt"
	"testing"
)

func TestClientText(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"a client error", ErrInvalidPort, string(ErrInvalidPort)},
		{"wrapped", fmt.Errorf("hook: %w", ClientError("unapproved torrent")), "unapproved torrent"},
		{"internal", errors.New("redis: connection refused"), string(ErrInternal)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ClientText(tc.err); got != tc.want {
				t.Errorf("ClientText(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}
