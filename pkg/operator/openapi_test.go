package operator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestOpenAPI checks docs/openapi.yaml against the handlers: the paths
// and methods it lists are exactly those served, every status code a
// request gets is documented for its operation, and every reply has the
// documented shape (required keys, no others, types, enums).
func TestOpenAPI(t *testing.T) {
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]any
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	resolve := func(v any) map[string]any {
		m, _ := v.(map[string]any)
		for m != nil && m["$ref"] != nil {
			ref := strings.TrimPrefix(m["$ref"].(string), "#/")
			var cur any = spec
			for _, part := range strings.Split(ref, "/") {
				cur = cur.(map[string]any)[part]
			}
			m, _ = cur.(map[string]any)
		}
		return m
	}

	f := newFixture(t, true)
	ih := hash(0x3c)
	must(t, f.store.PutSeeder(ih, peer("10.1.1.1")))
	must(t, f.store.GraduateLeecher(ih, peer("10.1.2.1")))
	for i := 0; i < 3; i++ {
		must(t, f.store.PutSeeder(hash(byte(0x40+i)), peer("10.0.0.1")))
	}

	// A store that cannot be read (Redis down) makes every read a 500.
	down, err := New(f.srv.cfg, Options{Store: downStore{}, Now: f.clock.now})
	if err != nil {
		t.Fatal(err)
	}

	paths := resolve(spec["paths"])
	var served []string
	for p := range paths {
		served = append(served, p)
	}
	sort.Strings(served)
	if got := strings.Join(served, " "); got != "/api/v1/approval/torrents/{info_hash} /api/v1/stats /api/v1/torrents /api/v1/torrents/{info_hash}" {
		t.Fatalf("documented paths: %s", got)
	}
	for p, ops := range paths {
		concrete := strings.ReplaceAll(p, "{info_hash}", ih.String())
		for _, method := range []string{"GET", "PUT", "DELETE", "POST", "PATCH"} {
			op := resolve(ops.(map[string]any)[strings.ToLower(method)])
			t.Run(method+" "+p, func(t *testing.T) {
				requests := map[string]*httptest.ResponseRecorder{
					"ok":           f.do(t, method, concrete, adminToken, ""),
					"no token":     f.do(t, method, concrete, "", ""),
					"read token":   f.do(t, method, concrete, readToken, ""),
					"body":         f.do(t, method, concrete, adminToken, "{}"),
					"huge body":    f.do(t, method, concrete, adminToken, strings.Repeat("x", 4096)),
					"bad hash":     f.do(t, method, strings.ReplaceAll(p, "{info_hash}", "xyz"), adminToken, ""),
					"unknown hash": f.do(t, method, strings.ReplaceAll(p, "{info_hash}", hash(0xee).String()), adminToken, ""),
				}
				if method == "GET" && op != nil {
					w := httptest.NewRecorder()
					req := httptest.NewRequest(method, concrete, nil)
					req.Header.Set("Authorization", "Bearer "+readToken)
					down.Handler().ServeHTTP(w, req)
					if w.Code != 500 {
						t.Errorf("store down: %d %s, want 500", w.Code, w.Body)
					}
					requests["store down"] = w
				}
				if p == "/api/v1/torrents" {
					requests["paged"] = f.do(t, method, concrete+"?limit=2&sort=snatches", adminToken, "")
					requests["bad limit"] = f.do(t, method, concrete+"?limit=-1", adminToken, "")
				}
				if op == nil {
					if w := requests["ok"]; w.Code != 405 {
						t.Fatalf("undocumented method answered %d, want 405", w.Code)
					}
					return
				}
				responses := resolve(op["responses"])
				for name, w := range requests {
					resp := resolve(responses[strconv.Itoa(w.Code)])
					if resp == nil {
						t.Errorf("%s: status %d is not documented (%s)", name, w.Code, w.Body)
						continue
					}
					schema := resolve(resolve(resolve(resp["content"])["application/json"])["schema"])
					var v any
					if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
						t.Errorf("%s: reply is not JSON: %s", name, w.Body)
						continue
					}
					if err := conforms(v, schema, resolve, "$"); err != nil {
						t.Errorf("%s: %d reply %s: %v", name, w.Code, w.Body, err)
					}
				}
				if requests["ok"].Code != 200 {
					t.Errorf("no 200 for a good request: %d %s", requests["ok"].Code, requests["ok"].Body)
				}
			})
		}
	}
}

// conforms checks v against an OpenAPI schema (the subset the API uses).
func conforms(v any, schema map[string]any, resolve func(any) map[string]any, at string) error {
	switch schema["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an object", at, v)
		}
		props := resolve(schema["properties"])
		for _, r := range schema["required"].([]any) {
			if _, ok := m[r.(string)]; !ok {
				return fmt.Errorf("%s: required key %q missing", at, r)
			}
		}
		for k, x := range m {
			ps := resolve(props[k])
			if ps == nil {
				return fmt.Errorf("%s: key %q is not documented", at, k)
			}
			if err := conforms(x, ps, resolve, at+"."+k); err != nil {
				return err
			}
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %T, want an array", at, v)
		}
		for i, x := range l {
			if err := conforms(x, resolve(schema["items"]), resolve, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case "integer":
		if n, ok := v.(float64); !ok || n != float64(int64(n)) {
			return fmt.Errorf("%s: %v, want an integer", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: %v, want a number", at, v)
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: %v, want a string", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: %v, want a boolean", at, v)
		}
	default:
		return fmt.Errorf("%s: schema type %v not understood", at, schema["type"])
	}
	if enum, ok := schema["enum"].([]any); ok {
		for _, e := range enum {
			if e == v {
				return nil
			}
		}
		return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
	}
	return nil
}

// downStore fails every read, as the Redis driver does while Redis is
// down.
type downStore struct{}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (downStore) Stats() (Stats, error)         { return Stats{}, errDown }
func (downStore) Swarm([20]byte) (Swarm, error) { return Swarm{}, errDown }
func (downStore) Walk(context.Context, func([]Swarm) error) error {
	return errDown
}
func (downStore) Groups([20]byte) ([]Group, error) { return nil, errDown }
