package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya/internal/cleanup"
)

func startServer(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := NewServer("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	cleanup.Stop(t, s.Stop)
	return s
}

func get(t *testing.T, s *Server, path string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + s.Addr().String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestRoutes(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		path       string
		wantStatus int
		wantBody   string
	}{
		{"metrics has go collector", Options{}, "/metrics", 200, "go_goroutines"},
		{"metrics has process collector", Options{}, "/metrics", 200, "process_start_time_seconds"},
		{"healthz", Options{}, "/healthz", 200, "ok\n"},
		{"readyz without checks", Options{}, "/readyz", 200, "ok\n"},
		{"pprof off by default", Options{}, "/debug/pprof/", 404, ""},
		{"pprof when enabled", Options{EnablePprof: true}, "/debug/pprof/", 200, "goroutine"},
		{"pprof cmdline when enabled", Options{EnablePprof: true}, "/debug/pprof/cmdline", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.opts)
			status, body := get(t, s, tt.path)
			if status != tt.wantStatus {
				t.Errorf("GET %s = %d, want %d", tt.path, status, tt.wantStatus)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("GET %s body lacks %q:\n%.300s", tt.path, tt.wantBody, body)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	s := startServer(t, Options{})
	ok := func(context.Context) error { return nil }
	s.SetCheck("storage", ok)
	s.SetCheck("frontends", func(context.Context) error { return errors.New("not started") })
	if status, body := get(t, s, "/readyz"); status != 503 || body != "not ready: frontends: not started\n" {
		t.Errorf("with a failing check: %d %q", status, body)
	}
	s.SetCheck("frontends", ok)
	if status, body := get(t, s, "/readyz"); status != 200 || body != "ok\n" {
		t.Errorf("with passing checks: %d %q", status, body)
	}
	s.SetCheck("storage", func(context.Context) error { return errors.New("connection refused") })
	if status, body := get(t, s, "/readyz"); status != 503 || body != "not ready: storage: connection refused\n" {
		t.Errorf("with failing storage: %d %q", status, body)
	}
	s.SetCheck("storage", nil)
	if status, _ := get(t, s, "/readyz"); status != 200 {
		t.Errorf("after removing the failing check: %d", status)
	}
}

func TestAddressInUse(t *testing.T) {
	s := startServer(t, Options{})
	if _, err := NewServer(s.Addr().String(), Options{}); err == nil || !strings.HasPrefix(err.Error(), "metrics: ") {
		t.Errorf("binding a used address: err = %v, want a metrics: error", err)
	}
}
