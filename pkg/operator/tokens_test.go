package operator

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseTokens(t *testing.T) {
	for _, tc := range []struct {
		name, file, err string
	}{
		{"one field", "abcdefghijklmnopqr\n", "line 1: want `TOKEN ROLE`, got 1 fields"},
		{"three fields", "# c\nabcdefghijklmnopqr read extra\n", "line 2: want `TOKEN ROLE`, got 3 fields"},
		{"bad role", "abcdefghijklmnopqr write\n", `line 1: role must be read or admin, got "write"`},
		{"short", "\nshort-token read\n", "line 2: token too short: at least 16 characters"},
		{"swapped", "admin abcdefghijklmnopqr\n", "line 1: role must be read or admin, got a value of 18 characters (is the line TOKEN ROLE?)"},
		{"twice", "abcdefghijklmnopqr read\nabcdefghijklmnopqr admin\n", "line 2: the token of line 1 again"},
		{"empty", "# nobody\n\n", "no tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTokens([]byte(tc.file))
			if err == nil || err.Error() != tc.err {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "abcdefghijklmnopqr") {
				t.Fatal("the error shows the token")
			}
		})
	}
	ts, err := parseTokens([]byte("abcdefghijklmnopqr read # ci\n  ABCDEFGHIJKLMNOPQR\tadmin\n"))
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]Role{"abcdefghijklmnopqr": Read, "ABCDEFGHIJKLMNOPQR": Admin, "abcdefghijklmnopq": NoRole, "": NoRole, "abcdefghijklmnopqrs": NoRole} {
		if got := ts.role(token); got != want {
			t.Errorf("role(%q) = %v, want %v", token, got, want)
		}
	}
}

func TestTokensReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	write := func(s string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("first-token-0123456789 read\n", 0o600)
	tk, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	write("second-token-0123456789 admin\n", 0o600)
	if err := tk.Reload(); err != nil || tk.Role("second-token-0123456789") != Admin || tk.Role("first-token-0123456789") != NoRole {
		t.Fatalf("after a good reload: %v", err)
	}
	write("second-token-0123456789 superuser\n", 0o600)
	err = tk.Reload()
	if err == nil || err.Error() != "api.tokens_file: "+path+`: line 1: role must be read or admin, got "superuser"` {
		t.Fatalf("bad file: %v", err)
	}
	if tk.Role("second-token-0123456789") != Admin {
		t.Fatal("a bad file dropped the tokens in use")
	}
	if w, err := CheckTokensFile(path); err == nil || w != "" {
		t.Fatalf("CheckTokensFile of a bad file: %q, %v", w, err)
	}
	write("second-token-0123456789 admin\n", 0o644)
	w, err := CheckTokensFile(path)
	if err != nil || w != "api.tokens_file: "+path+" is readable by others (mode 0644): anyone on the machine can read the API tokens; chmod o-r it" {
		t.Fatalf("world-readable file: %q, %v", w, err)
	}
	write("second-token-0123456789 admin\n", 0o640)
	if w, err := CheckTokensFile(path); err != nil || w != "" {
		t.Fatalf("group-readable file: %q, %v", w, err)
	}
}
