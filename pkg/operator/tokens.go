package operator

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// Role is what a token may do.
type Role uint8

// The roles, weakest first.
const (
	NoRole Role = iota
	// Read may see everything: the API's GET endpoints and the status
	// page.
	Read
	// Admin may also change things: the approval list.
	Admin
)

func (r Role) String() string {
	switch r {
	case Read:
		return "read"
	case Admin:
		return "admin"
	}
	return "none"
}

// maxShownRole is the longest wrong role an error quotes.
const maxShownRole = 10

// minTokenLen is the shortest token accepted: shorter ones could be
// guessed, even at the pace failed attempts are slowed to.
const minTokenLen = 16

// tokenSet is a loaded tokens file. Tokens are kept as SHA-256 digests, so
// that every comparison is between equal-length values and takes the same
// time whatever the presented token is.
type tokenSet struct {
	digests [][sha256.Size]byte
	roles   []Role
}

// parseTokens reads a tokens file: one `TOKEN ROLE` a line, ROLE `read`
// or `admin`, blank lines and `#` comments allowed. Errors name the line,
// never the token.
func parseTokens(data []byte) (*tokenSet, error) {
	ts := &tokenSet{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 64<<10)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want `TOKEN ROLE`, got %d fields", n, len(fields))
		}
		var role Role
		switch {
		case fields[1] == "read":
			role = Read
		case fields[1] == "admin":
			role = Admin
		case fields[1] == "" || len(fields[1]) > maxShownRole:
			// Not echoed: a long value may be a token written in the
			// role's place.
			return nil, fmt.Errorf("line %d: role must be read or admin, got a value of %d characters (is the line TOKEN ROLE?)", n, len(fields[1]))
		default:
			return nil, fmt.Errorf("line %d: role must be read or admin, got %q", n, fields[1])
		}
		if len(fields[0]) < minTokenLen {
			return nil, fmt.Errorf("line %d: token too short: at least %d characters", n, minTokenLen)
		}
		d := sha256.Sum256([]byte(fields[0]))
		if first, dup := seen[d]; dup {
			return nil, fmt.Errorf("line %d: the token of line %d again", n, first)
		}
		seen[d] = n
		ts.digests = append(ts.digests, d)
		ts.roles = append(ts.roles, role)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ts.digests) == 0 {
		return nil, errors.New("no tokens")
	}
	return ts, nil
}

// role returns the role of token, or NoRole. It compares against every
// token, in constant time each, so that its duration says nothing about
// which tokens exist.
func (ts *tokenSet) role(token string) Role {
	return ts.roleOf(sha256.Sum256([]byte(token)))
}

// roleOf is role for a token's digest.
func (ts *tokenSet) roleOf(d [sha256.Size]byte) Role {
	found := 0
	for i := range ts.digests {
		eq := subtle.ConstantTimeCompare(d[:], ts.digests[i][:])
		found = subtle.ConstantTimeSelect(eq, int(ts.roles[i]), found)
	}
	return Role(found)
}

// Tokens holds the tokens file in use and re-reads it on request.
type Tokens struct {
	path string
	set  atomic.Pointer[tokenSet]
}

// LoadTokens reads the tokens file at path.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the file again; a file that does not load keeps the tokens
// in use, and the error says why.
func (t *Tokens) Reload() error {
	data, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("api.tokens_file: %w", err)
	}
	ts, err := parseTokens(data)
	if err != nil {
		return fmt.Errorf("api.tokens_file: %s: %w", t.path, err)
	}
	t.set.Store(ts)
	return nil
}

// Len returns the number of tokens in use.
func (t *Tokens) Len() int { return len(t.set.Load().digests) }

// Role returns the role of token, or NoRole.
func (t *Tokens) Role(token string) Role { return t.set.Load().role(token) }

// roleOf returns the role the tokens in use give the token of digest d,
// or NoRole: a status page session asks it at every request, so that a
// reload that removes or lowers a token ends or lowers its sessions.
func (t *Tokens) roleOf(d [sha256.Size]byte) Role { return t.set.Load().roleOf(d) }

// CheckTokensFile reads and checks the tokens file as LoadTokens does, and
// returns a warning when others may read it: `chihaya validate` and the
// daemon's start print it.
func CheckTokensFile(path string) (warning string, err error) {
	if _, err := LoadTokens(path); err != nil {
		return "", err
	}
	return permissionWarning(path), nil
}

func permissionWarning(path string) string {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	return fmt.Sprintf("api.tokens_file: %s is readable by others (mode %04o): anyone on the machine can read the API tokens; chmod o-r it", path, fi.Mode().Perm())
}
