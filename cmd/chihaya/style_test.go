package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// maxCommentLine bounds a comment line, in bytes with its indentation: the
// code is wrapped near 76 columns, and a much longer comment line is
// almost always two sentences spliced by an edit.
const maxCommentLine = 120

// oldYAML is an import of the archived YAML packages.
var oldYAML = regexp.MustCompile(`^(\w+\s+)?"gopkg\.in/yaml\.v[23]"$`)

// TestSourceStyle checks what gofmt and vet do not: logrus is imported
// under its own name everywhere (the name log is pkg/log's), YAML from
// go.yaml.in, and no comment line is spliced from two.
func TestSourceStyle(t *testing.T) {
	n := 0
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		n++
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := sc.Text()
			trimmed := strings.TrimSpace(text)
			if strings.HasSuffix(trimmed, `"github.com/sirupsen/logrus"`) && trimmed != `"github.com/sirupsen/logrus"` {
				t.Errorf("%s:%d: import logrus as logrus (the name log is pkg/log's): %s", path, line, trimmed)
			}
			if oldYAML.MatchString(trimmed) {
				t.Errorf("%s:%d: import go.yaml.in/yaml/v2 or /v3, the maintained successors of the archived gopkg.in/yaml.v2 and .v3: %s", path, line, trimmed)
			}
			if strings.HasPrefix(trimmed, "//") && len(text) > maxCommentLine {
				t.Errorf("%s:%d: a comment line of %d bytes (> %d): wrap it; is it two lines spliced?", path, line, len(text), maxCommentLine)
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("read only %d Go files; the walk is broken", n)
	}
}
