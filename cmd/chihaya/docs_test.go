package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chihaya/chihaya"
	"github.com/chihaya/chihaya/middleware"
	"github.com/chihaya/chihaya/middleware/clientapproval"
	"github.com/chihaya/chihaya/middleware/eventstream"
	"github.com/chihaya/chihaya/middleware/httpapproval"
	"github.com/chihaya/chihaya/middleware/jwt"
	"github.com/chihaya/chihaya/middleware/ratelimit"
	"github.com/chihaya/chihaya/middleware/torrentapproval"
	"github.com/chihaya/chihaya/middleware/varinterval"
	"github.com/chihaya/chihaya/storage"
	"github.com/chihaya/chihaya/storage/memory"
	"github.com/chihaya/chihaya/storage/redis"
)

// storageConfigTypes are the drivers' `storage.config` structs, by driver
// name; each driver's section of the reference documents them as
// storage.config.<key>.
var storageConfigTypes = map[string]reflect.Type{
	"memory": reflect.TypeOf(memory.Config{}),
	"redis":  reflect.TypeOf(redis.Config{}),
}

// hookConfigTypes are the hooks' `options` structs, by registered name;
// each hook's section of the reference documents them as options.<key>.
var hookConfigTypes = map[string]reflect.Type{
	clientapproval.Name:  reflect.TypeOf(clientapproval.Config{}),
	eventstream.Name:     reflect.TypeOf(eventstream.Config{}),
	httpapproval.Name:    reflect.TypeOf(httpapproval.Config{}),
	jwt.Name:             reflect.TypeOf(jwt.Config{}),
	ratelimit.Name:       reflect.TypeOf(ratelimit.Config{}),
	torrentapproval.Name: reflect.TypeOf(torrentapproval.Config{}),
	varinterval.Name:     reflect.TypeOf(varinterval.Config{}),
}

// yamlKeys lists the key paths of a config struct as operators write them:
// nested mappings as "http.addr", list entries as "prehooks[].name".
func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, inline := chihaya.YAMLKey(f)
		if name == "-" || !f.IsExported() {
			continue
		}
		if inline {
			keys = append(keys, yamlKeys(f.Type, prefix)...)
			continue
		}
		path := prefix + name
		keys = append(keys, path)
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Duration(0)):
			keys = append(keys, yamlKeys(ft, path+".")...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			keys = append(keys, yamlKeys(ft.Elem(), path+"[].")...)
		}
	}
	return keys
}

func allConfigKeys() []string {
	keys := yamlKeys(reflect.TypeOf(chihaya.Config{}), "")
	sort.Strings(keys)
	return keys
}

// documentedKeys reads the first column of the reference's tables.
func documentedKeys(t *testing.T, doc string) map[string]bool {
	t.Helper()
	row := regexp.MustCompile("(?m)^\\| `([^`]+)` \\|")
	keys := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(doc, -1) {
		keys[m[1]] = true
	}
	return keys
}

func TestConfigurationDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := documentedKeys(t, string(b))
	keys := allConfigKeys()
	if len(keys) < 35 {
		t.Fatalf("found only %d keys in the config structs; the walk is broken: %v", len(keys), keys)
	}
	known := map[string]bool{}
	for _, k := range keys {
		known[k] = true
		if !documented[k] {
			t.Errorf("docs/configuration.md has no table row for `%s`", k)
		}
	}
	for k := range documented {
		// Driver and hook options are checked section by section below.
		if !known[k] && !strings.HasPrefix(k, "options.") && !strings.HasPrefix(k, "storage.config.") {
			t.Errorf("docs/configuration.md documents `%s`, which no config struct has", k)
		}
	}
}

// checkSection checks that the section under heading documents exactly
// the keys of typ, with prefix.
func checkSection(t *testing.T, doc, heading string, typ reflect.Type, prefix string) {
	t.Helper()
	heading = "### " + heading + "\n"
	i := strings.Index(doc, heading)
	if i < 0 {
		t.Fatalf("docs/configuration.md has no section %q", strings.TrimSpace(heading))
	}
	section := doc[i+len(heading):]
	if j := strings.Index(section, "\n#"); j >= 0 {
		section = section[:j]
	}
	documented := documentedKeys(t, section)
	known := map[string]bool{}
	for _, k := range yamlKeys(typ, prefix) {
		known[k] = true
		if !documented[k] {
			t.Errorf("section %q has no row for `%s`", strings.TrimSpace(heading), k)
		}
	}
	for k := range documented {
		if !known[k] {
			t.Errorf("section %q documents `%s`, which the config struct does not have", strings.TrimSpace(heading), k)
		}
	}
}

func TestStorageOptionsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range storage.DriverNames() {
		if _, ok := storageConfigTypes[name]; !ok {
			t.Errorf("driver %q is registered but storageConfigTypes does not list its options", name)
		}
	}
	for name, typ := range storageConfigTypes {
		t.Run(name, func(t *testing.T) {
			checkSection(t, string(b), "`"+name+"` driver options", typ, "storage.config.")
		})
	}
}

func TestHookOptionsDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, name := range middleware.HookNames() {
		if _, ok := hookConfigTypes[name]; !ok {
			t.Errorf("hook %q is registered but hookConfigTypes does not list its options", name)
		}
	}
	for name, typ := range hookConfigTypes {
		t.Run(name, func(t *testing.T) {
			checkSection(t, doc, "`"+name+"`", typ, "options.")
		})
	}
}

// hookREADMESections are the sections every hook's README has, in this
// order, as CoreDNS plugin READMEs do: a reader who knows one knows all.
var hookREADMESections = []string{"## Name", "## Description", "## Options", "## Metrics", "## Examples"}

// TestHookREADMEs checks each hook folder's README: its shape, an options
// table with exactly the hook's keys, and rejected options in testdata.
func TestHookREADMEs(t *testing.T) {
	for name, typ := range hookConfigTypes {
		t.Run(name, func(t *testing.T) {
			dir := "../../" + strings.TrimPrefix(typ.PkgPath(), "github.com/chihaya/chihaya/")
			b, err := os.ReadFile(dir + "/README.md")
			if err != nil {
				t.Fatal(err)
			}
			doc := string(b)
			if want := "# " + name + "\n"; !strings.HasPrefix(doc, want) {
				t.Errorf("%s/README.md does not start with %q", dir, want)
			}
			at := 0
			for _, s := range hookREADMESections {
				i := strings.Index(doc[at:], "\n"+s+"\n")
				if i < 0 {
					t.Errorf("%s/README.md has no %q section after the ones before it (want %q in this order)", dir, s, hookREADMESections)
					return
				}
				at += i + 1
			}
			opts := doc[strings.Index(doc, "\n## Options\n"):]
			opts = opts[:strings.Index(opts[1:], "\n## ")+1]
			documented := documentedKeys(t, opts)
			for _, k := range yamlKeys(typ, "") {
				if !documented[k] {
					t.Errorf("%s/README.md: the options table has no row for `%s`", dir, k)
				}
				delete(documented, k)
			}
			for k := range documented {
				t.Errorf("%s/README.md documents `%s`, which %s does not have", dir, k, typ)
			}
			bad, _ := filepath.Glob(dir + "/testdata/bad-*.yaml")
			if len(bad) == 0 {
				t.Errorf("%s has no testdata/bad-*.yaml (rejected options, each with its exact error)", dir)
			}
		})
	}
}

// TestArchitectureTable keeps docs/architecture.md's layout table and the
// module in step: every package of `go list ./...` has a row, and every
// folder a row names exists.
func TestArchitectureTable(t *testing.T) {
	b, err := os.ReadFile("../../docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n## Layout\n")
	if i < 0 {
		t.Fatal("docs/architecture.md has no Layout section")
	}
	section := doc[i+1:]
	if j := strings.Index(section[1:], "\n## "); j >= 0 {
		section = section[:j+1]
	}
	rowRE := regexp.MustCompile("(?m)^\\| ((?:`[^`]+`(?:, )?)+) \\|")
	folderRE := regexp.MustCompile("`([^`]+)`")
	inTable := map[string]bool{}
	for _, row := range rowRE.FindAllStringSubmatch(section, -1) {
		for _, f := range folderRE.FindAllStringSubmatch(row[1], -1) {
			folder := strings.TrimSuffix(f[1], "/")
			inTable[folder] = true
			if st, err := os.Stat("../../" + folder); err != nil || !st.IsDir() {
				t.Errorf("docs/architecture.md: the layout table names `%s/`, which is not a folder of the repository: remove it or fix its name", folder)
			}
		}
	}
	cmd := exec.Command("go", "list", "./...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	n := 0
	for _, pkg := range strings.Fields(string(out)) {
		n++
		folder := strings.TrimPrefix(strings.TrimPrefix(pkg, "github.com/chihaya/chihaya"), "/")
		if folder == "" {
			folder = "."
		}
		if !inTable[folder] {
			t.Errorf("docs/architecture.md: the layout table has no row for the package %s: add the row\n\t| `%s` | what it holds |\nor add `%s` to the row of its siblings", folder, folder, folder)
		}
	}
	if n < 20 {
		t.Fatalf("go list ./... listed %d packages; the listing is broken:\n%s", n, out)
	}
}
