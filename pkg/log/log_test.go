package log

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
)

func TestSetup(t *testing.T) {
	t.Cleanup(func() { Setup(new(bytes.Buffer), Options{}) })
	tests := []struct {
		name      string
		opts      Options
		wantDebug bool
		check     func(t *testing.T, out string)
	}{
		{
			name: "text",
			opts: Options{},
			check: func(t *testing.T, out string) {
				t.Helper()
				if !strings.Contains(out, `msg=listening`) || !strings.Contains(out, `frontend=udp`) {
					t.Errorf("text output %q lacks msg or field", out)
				}
			},
		},
		{
			name:      "json debug",
			opts:      Options{JSON: true, Debug: true},
			wantDebug: true,
			check: func(t *testing.T, out string) {
				t.Helper()
				var line map[string]interface{}
				first := strings.SplitN(out, "\n", 2)[0]
				if err := json.Unmarshal([]byte(first), &line); err != nil {
					t.Fatalf("output %q is not JSON: %v", first, err)
				}
				if line["msg"] != "listening" || line["frontend"] != "udp" || line["level"] != "info" {
					t.Errorf("JSON line = %v", line)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			Setup(&buf, tt.opts)
			logrus.WithField("frontend", "udp").Info("listening")
			logrus.Debug("debug line")
			out := buf.String()
			tt.check(t, out)
			if got := strings.Contains(out, "debug line"); got != tt.wantDebug {
				t.Errorf("debug line logged = %v, want %v", got, tt.wantDebug)
			}
		})
	}
}

func TestSampler(t *testing.T) {
	var s Sampler
	if !s.Allow() {
		t.Fatal("the first event was not allowed")
	}
	for i := 0; i < 1000; i++ {
		if s.Allow() {
			t.Fatalf("event %d within the interval was allowed", i+2)
		}
	}
	// Pretend the interval has passed.
	s.last.Add(-int64(DefaultSampleInterval))
	if !s.Allow() {
		t.Fatal("an event after the interval was not allowed")
	}

	// Under concurrency exactly one of many simultaneous events passes.
	var c Sampler
	c.Interval = time.Hour
	allowed := make(chan bool, 64)
	for i := 0; i < cap(allowed); i++ {
		go func() { allowed <- c.Allow() }()
	}
	n := 0
	for i := 0; i < cap(allowed); i++ {
		if <-allowed {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d of %d concurrent events allowed, want 1", n, cap(allowed))
	}
}
