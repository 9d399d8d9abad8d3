package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v2"

	"github.com/chihaya/chihaya/internal/testcert"
	"github.com/chihaya/chihaya/storage/locality"
)

// repoRoot is where the documentation lives, seen from this package.
const repoRoot = "../.."

// docExampleGlobs are the Markdown files whose ```yaml examples must pass
// `chihaya validate`. They are globs so that a new document or a new
// plugin's README is covered without editing this test.
var docExampleGlobs = []string{
	"README.md",
	"docs/*.md",
	"middleware/*/README.md",
	"storage/*/README.md",
	"dist/*/README.md",
	"dist/*/*/README.md",
}

// docExampleKind says what an example is, by its one top-level key. A key
// missing here fails the test: whoever adds a new kind of example decides
// here how it is checked.
type docExampleKind struct {
	// config: the block is (part of) a configuration file. under is the
	// dotted key path a fragment is nested under to make one; empty for a
	// block that is a whole file (its top-level key is `chihaya`).
	config bool
	under  string
	// topology: the block is a locality topology file.
	topology bool
	// skip, when set, is why the block is deliberately not checked.
	skip string
}

func (k docExampleKind) String() string {
	switch {
	case k.skip != "":
		return "skipped: " + k.skip
	case k.topology:
		return "topology file"
	case k.under != "":
		return "configuration fragment under " + k.under
	case k.config:
		return "configuration file"
	}
	return "nothing"
}

var docExampleKinds = map[string]docExampleKind{
	"chihaya":   {config: true},
	"prehooks":  {config: true, under: "chihaya"},
	"posthooks": {config: true, under: "chihaya"},
	// A locality section is the same for every driver; the default driver
	// (memory) is the one that needs nothing running.
	"locality": {config: true, under: "chihaya.storage.config"},
	"tiers":    {topology: true},
}

// docExampleFiles are the keys whose values name files that exist on the
// deployment but not on a test machine. Examples are validated with each
// such value replaced by a temporary file of valid content.
var docExampleFiles = map[string]func(*exampleFiles) []byte{
	"whitelist_file": infoHashList,
	"blacklist_file": infoHashList,
	"topology_file": func(*exampleFiles) []byte {
		return []byte("tiers:\n  - name: rack\n    groups:\n      - name: a\n        cidrs: [10.1.1.0/24]\n")
	},
	"tokens_file": func(*exampleFiles) []byte {
		return []byte("# TOKEN ROLE\nexample-read-token-0123456789 read\n")
	},
	// A snapshot is read at start, not by validate, which only checks
	// that its directory can be written: an empty file will do.
	"snapshot_path": func(*exampleFiles) []byte { return nil },
	"tls_cert_path": func(f *exampleFiles) []byte { f.certificate(); return f.cert },
	"tls_key_path":  func(f *exampleFiles) []byte { f.certificate(); return f.key },
	"secret_file":   func(*exampleFiles) []byte { return []byte("example secret\n") },
}

func infoHashList(*exampleFiles) []byte {
	return []byte("# one info hash a line\n3532cf2d327fad8448c075b4cb42c8136964a435\n")
}

// exampleFiles makes the files of one example; a certificate and its key
// must be a pair, so they are made once.
type exampleFiles struct {
	t         *testing.T
	cert, key []byte
}

// docBlock is one fenced yaml block of a document.
type docBlock struct {
	file string // relative to the repository root
	line int    // line of the block's first YAML line in file
	text string // the block, its common indentation removed
}

func (b docBlock) String() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

func TestDocsExamples(t *testing.T) {
	var blocks []docBlock
	for _, g := range docExampleGlobs {
		files, err := filepath.Glob(filepath.Join(repoRoot, g))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			blocks = append(blocks, yamlBlocks(t, f)...)
		}
	}
	// The examples exist today; none found means the globs or the fence
	// parsing broke, not that there is nothing to check.
	if len(blocks) == 0 {
		t.Fatalf("no ```yaml blocks found in %q", docExampleGlobs)
	}
	for _, b := range blocks {
		t.Run(b.String(), func(t *testing.T) {
			key, err := topLevelKey(b.text)
			if err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			kind, ok := docExampleKinds[key]
			if ok {
				t.Logf("%s: top-level key %q: %s", b, key, kind)
			}
			switch {
			case !ok:
				t.Fatalf("%s: unclassified example (top-level key %q): add %q to docExampleKinds in %s",
					b, key, key, "cmd/chihaya/docs_examples_test.go")
			case kind.skip != "":
				t.Skipf("%s (%s): %s", b, key, kind.skip)
			case kind.topology:
				checkTopologyExample(t, b)
			case kind.config:
				checkConfigExample(t, b, kind.under)
			default:
				t.Fatalf("%s: docExampleKinds[%q] says nothing to do", b, key)
			}
		})
	}
}

var fence = regexp.MustCompile("^([ \t]*)(```+)[ \t]*([^`]*)$")

// yamlBlocks returns the ```yaml (or ```yml) fenced blocks of a Markdown
// file.
func yamlBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(repoRoot, path)
	if err != nil {
		t.Fatal(err)
	}
	rel = filepath.ToSlash(rel)
	var (
		blocks  []docBlock
		open    string // the opening fence's backticks while in a block
		isYAML  bool
		start   int
		lines   []string
		scanner = bufio.NewScanner(bytes.NewReader(data))
	)
	for n := 1; scanner.Scan(); n++ {
		line := scanner.Text()
		m := fence.FindStringSubmatch(line)
		switch {
		case open == "" && m != nil:
			open, start, lines = m[2], n+1, nil
			lang := strings.ToLower(strings.TrimSpace(m[3]))
			isYAML = lang == "yaml" || lang == "yml"
		case open != "" && m != nil && strings.TrimSpace(m[3]) == "" && len(m[2]) >= len(open):
			if isYAML {
				blocks = append(blocks, docBlock{file: rel, line: start, text: dedent(lines)})
			}
			open = ""
		case open != "":
			lines = append(lines, line)
		}
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	if open != "" {
		t.Errorf("%s:%d: code fence never closed", rel, start-1)
	}
	return blocks
}

// dedent joins lines with their common leading whitespace removed, so that
// a fragment shown at its nesting depth parses on its own.
func dedent(lines []string) string {
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	var b strings.Builder
	for _, l := range lines {
		if len(l) >= indent && indent > 0 {
			l = l[indent:]
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// topLevelKey is the one key of a block that is a YAML mapping.
func topLevelKey(text string) (string, error) {
	var m yaml.MapSlice
	if err := yaml.Unmarshal([]byte(text), &m); err != nil {
		return "", fmt.Errorf("not a YAML mapping: %w", err)
	}
	if len(m) != 1 {
		return "", fmt.Errorf("has %d top-level keys, want 1 to classify it by", len(m))
	}
	key, ok := m[0].Key.(string)
	if !ok {
		return "", fmt.Errorf("top-level key %v is not a string", m[0].Key)
	}
	return key, nil
}

// fileKey matches `key: value` for the keys of docExampleFiles, in block
// and in flow style (`{whitelist_file: /etc/x}`).
var fileKey = func() *regexp.Regexp {
	keys := make([]string, 0, len(docExampleFiles))
	for k := range docExampleFiles {
		keys = append(keys, regexp.QuoteMeta(k))
	}
	return regexp.MustCompile(`\b(` + strings.Join(keys, "|") + `)(\s*:\s*)("[^"]*"|'[^']*'|[^\s,{}\[\]#]+)`)
}()

// localFiles replaces the deployment's file paths in text with temporary
// files of valid content. The replacement keeps every line where it was.
func localFiles(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	files := &exampleFiles{t: t}
	n := 0
	return fileKey.ReplaceAllStringFunc(text, func(s string) string {
		m := fileKey.FindStringSubmatch(s)
		n++
		p := filepath.Join(dir, fmt.Sprintf("%d-%s", n, m[1]))
		if err := os.WriteFile(p, docExampleFiles[m[1]](files), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s replaced by %s", m[1], m[3], p)
		return m[1] + m[2] + strconv.Quote(p)
	})
}

// checkConfigExample completes the block into a configuration file and
// runs `chihaya validate --config` on it in-process.
func checkConfigExample(t *testing.T, b docBlock, under string) {
	t.Helper()
	// origin[i] is the document line of the file's line i+1 (0: added).
	var (
		out    strings.Builder
		origin []int
	)
	add := func(line string, from int) {
		out.WriteString(line)
		out.WriteByte('\n')
		origin = append(origin, from)
	}
	var path []string
	if under != "" {
		path = strings.Split(under, ".")
	}
	for i, k := range path {
		add(strings.Repeat("  ", i)+k+":", 0)
	}
	indent := strings.Repeat("  ", len(path))
	body := strings.Split(strings.TrimSuffix(localFiles(t, b.text), "\n"), "\n")
	for i, l := range body {
		if strings.TrimSpace(l) != "" {
			l = indent + l
		}
		add(l, b.line+i)
	}
	// An excerpt that shows other keys leaves the listener out, but the
	// daemon refuses to serve nothing: give it one on loopback.
	if !hasListener(t, out.String()) {
		step := childIndent(out.String())
		add(step+"udp:", 0)
		add(step+step+`addr: "127.0.0.1:0"`, 0)
		t.Logf("no listener in the example: added chihaya.udp.addr")
	}

	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := newRootCmd(&stdout, &stderr)
	cmd.SetArgs([]string{"validate", "--config", p})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("%s: chihaya validate: %s\nvalidated as:\n%s", b, docLines(err.Error(), p, b.file, origin), numbered(out.String(), b.file, origin))
	}
	if got := stdout.String(); got != "configuration OK\n" {
		t.Errorf("%s: chihaya validate printed %q, want %q", b, got, "configuration OK\n")
	}
}

// hasListener reports whether a configuration sets any frontend's address.
func hasListener(t *testing.T, text string) bool {
	t.Helper()
	var f struct {
		Chihaya struct {
			HTTP struct {
				Addr      string `yaml:"addr"`
				HTTPSAddr string `yaml:"https_addr"`
			} `yaml:"http"`
			UDP struct {
				Addr string `yaml:"addr"`
			} `yaml:"udp"`
		} `yaml:"chihaya"`
	}
	if err := yaml.Unmarshal([]byte(text), &f); err != nil {
		t.Fatalf("example is not YAML: %v\n%s", err, text)
	}
	c := f.Chihaya
	return c.HTTP.Addr != "" || c.HTTP.HTTPSAddr != "" || c.UDP.Addr != ""
}

// childIndent is the indentation of the `chihaya:` mapping's keys.
func childIndent(text string) string {
	for _, l := range strings.Split(text, "\n")[1:] {
		trimmed := strings.TrimLeft(l, " ")
		if trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			return l[:len(l)-len(trimmed)]
		}
	}
	return "  "
}

var errLine = regexp.MustCompile(`\bline (\d+)\b`)

// docLines rewrites an error about the completed file so that it points
// into the document: the temporary path goes, "line 4" gains
// "(docs/x.md:61)". Only decoding errors of the file itself count lines
// of it; a hook's or a driver's count lines of its own options.
func docLines(msg, tmp, doc string, origin []int) string {
	msg = strings.ReplaceAll(msg, tmp+": ", "")
	if !strings.HasPrefix(msg, "line ") && !strings.HasPrefix(msg, "yaml: line ") {
		return msg
	}
	return errLine.ReplaceAllStringFunc(msg, func(s string) string {
		n, _ := strconv.Atoi(errLine.FindStringSubmatch(s)[1])
		if n >= 1 && n <= len(origin) && origin[n-1] != 0 {
			return fmt.Sprintf("%s (%s:%d)", s, doc, origin[n-1])
		}
		return s
	})
}

// numbered prints the completed file with each line's document line, or
// "+" for a line the test added.
func numbered(text, doc string, origin []int) string {
	var b strings.Builder
	width := len(doc) + 6
	for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		where := "+"
		if i < len(origin) && origin[i] != 0 {
			where = fmt.Sprintf("%s:%d", doc, origin[i])
		}
		fmt.Fprintf(&b, "  %-*s | %s\n", width, where, l)
	}
	return b.String()
}

// checkTopologyExample loads the block as a topology file the way a store
// does at start.
func checkTopologyExample(t *testing.T, b docBlock) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(p, []byte(b.text), 0o600); err != nil {
		t.Fatal(err)
	}
	c := locality.Config{Enabled: true, TopologyFile: p}.WithDefaults()
	if _, err := locality.Load(c); err != nil {
		origin := make([]int, strings.Count(b.text, "\n"))
		for i := range origin {
			origin[i] = b.line + i
		}
		t.Fatalf("%s: topology file: %s", b, docLines(err.Error(), p, b.file, origin))
	}
}

// certificate makes a self-signed certificate and its key, for examples
// that serve HTTPS.
func (f *exampleFiles) certificate() {
	if f.cert != nil {
		return
	}
	f.t.Helper()
	f.cert, f.key = testcert.PEM(f.t)
}
