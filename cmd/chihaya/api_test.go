package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateAPITokens: validate reads the tokens file as start-up does,
// fails on a bad one without showing a token, and warns of one that
// others may read.
func TestValidateAPITokens(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	cfg := "chihaya:\n  metrics_addr: \"127.0.0.1:0\"\n  api:\n    tokens_file: " + tokens + "\n  udp:\n    addr: \"127.0.0.1:0\"\n"
	path := writeConfig(t, cfg)
	write := func(s string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(tokens, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tokens, mode); err != nil {
			t.Fatal(err)
		}
	}

	write("validate-token-0123456789 read\n", 0o600)
	if stdout, stderr, err := runCmd(t, "validate", "--config", path); err != nil || stdout != "configuration OK\n" || stderr != "" {
		t.Fatalf("validate: %v, %q, warnings %q", err, stdout, stderr)
	}
	write("validate-token-0123456789 read\n", 0o644)
	_, stderr, err := runCmd(t, "validate", "--config", path)
	if err != nil || stderr != "warning: api.tokens_file: "+tokens+" is readable by others (mode 0644): anyone on the machine can read the API tokens; chmod o-r it\n" {
		t.Fatalf("validate of a world-readable file: %v, warnings %q", err, stderr)
	}
	write("validate-token-0123456789 root\n", 0o600)
	_, _, err = runCmd(t, "validate", "--config", path)
	if err == nil || !strings.HasSuffix(err.Error(), "api.tokens_file: "+tokens+`: line 1: role must be read or admin, got "root"`) || strings.Contains(err.Error(), "validate-token") {
		t.Fatalf("validate of a bad file: %v", err)
	}
}
