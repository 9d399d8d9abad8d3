package chihaya

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"

	"github.com/chihaya/chihaya/middleware"
	_ "github.com/chihaya/chihaya/middleware/clientapproval"
	_ "github.com/chihaya/chihaya/middleware/ratelimit"
	_ "github.com/chihaya/chihaya/middleware/varinterval"
)

// TestReloadPlacesHookErrors reloads a running tracker with bad hook
// lists: the logged error names the file, the line and the key, as start-up
// does, and the running chain is kept.
func TestReloadPlacesHookErrors(t *testing.T) {
	for _, tt := range []struct {
		file, want string
	}{
		{"bad-hook-option-key.yaml", `line 8: unknown key "announce_brust" in prehooks[0].options (rate limit)`},
		{"bad-hook-option-type.yaml", "line 14: posthooks[1].options.max_increase_delta: cannot unmarshal !!str `a minute` into an integer"},
		{"bad-hook-options.yaml", "line 10: prehooks[1].options (client approval): whitelist and blacklist are both set; use one"},
		{"bad-hook-unknown.yaml", `line 5: prehooks[0].name: unknown hook "no such hook" (known: ` + strings.Join(middleware.HookNames(), ", ") + ")"},
	} {
		t.Run(strings.TrimSuffix(tt.file, ".yaml"), func(t *testing.T) {
			path := writeFile(t, "chihaya:\n  udp: {addr: \"127.0.0.1:0\"}\n")
			s := startTest(t, path)
			bad, err := os.ReadFile(filepath.Join("cmd", "chihaya", "testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, bad, 0o600); err != nil {
				t.Fatal(err)
			}
			old := logrus.StandardLogger().ReplaceHooks(make(logrus.LevelHooks))
			t.Cleanup(func() { logrus.StandardLogger().ReplaceHooks(old) })
			logs := logtest.NewGlobal()
			s.Reload()
			var got string
			for _, e := range logs.AllEntries() {
				if e.Message == "reload failed; keeping the running configuration" {
					got = fmt.Sprint(e.Data[logrus.ErrorKey])
				}
			}
			if want := path + ": " + tt.want; got != want {
				t.Errorf("reload with %s logged:\n got: %s\nwant: %s", tt.file, got, want)
			}
			if len(s.cfg.PreHooks) != 0 || len(s.cfg.PostHooks) != 0 {
				t.Errorf("a failed reload changed the running hooks: %v %v", s.cfg.PreHooks, s.cfg.PostHooks)
			}
		})
	}
}
