package main

import (
	"bufio"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxCommentLine bounds a comment line, in bytes with its indentation: the
// code is wrapped near 76 columns, and a much longer comment line is
// almost always two sentences spliced by an edit.
const maxCommentLine = 120

// maxFileLines bounds a non-test Go file: past it a file holds more than
// one job, and a reader loses the thread; split it along its seams.
const maxFileLines = 600

// oldYAML is an import of the archived YAML packages.
var oldYAML = regexp.MustCompile(`^(\w+\s+)?"gopkg\.in/yaml\.v[23]"$`)

// TestSourceStyle checks what gofmt and vet do not: logrus is imported
// under its own name everywhere (the name log is pkg/log's), YAML from
// go.yaml.in, no comment line is spliced from two, and no non-test file
// is over maxFileLines lines.
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
		line := 0
		for sc.Scan() {
			line++
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
		if line > maxFileLines && !strings.HasSuffix(path, "_test.go") {
			t.Errorf("%s: %d lines (> %d): split it along its seams", path, line, maxFileLines)
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

// pkgImportExceptions are the tracker packages a pkg/ package imports
// beside pkg/ itself, as docs/architecture.md documents them.
var pkgImportExceptions = map[string]string{
	"pkg/query": "github.com/chihaya/chihaya/bittorrent", // Values implements bittorrent.Params
}

// TestPkgImports holds pkg/ to its room's rule: the standard library, the
// chosen libraries and pkg/ itself, none of the tracker's other packages
// (so that pkg/operator reads the store through its own Store, adapted by
// package chihaya, the wiring). Tests may use the real parts.
func TestPkgImports(t *testing.T) {
	const module = "github.com/chihaya/chihaya/"
	n := 0
	err := filepath.WalkDir("../../pkg", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		n++
		dir := strings.TrimPrefix(filepath.ToSlash(filepath.Dir(path)), "../../")
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, module) && !strings.HasPrefix(p, module+"pkg/") && pkgImportExceptions[dir] != p {
				t.Errorf("%s imports %s: pkg/ imports only the standard library, the chosen libraries and pkg/; take an interface of the package's own and adapt to it where the parts are wired (package chihaya)", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Fatalf("read only %d Go files under pkg/; the walk is broken", n)
	}
}
