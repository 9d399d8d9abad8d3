package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// good is a small rendering that passes every check; each case below
// breaks it in one way.
const good = `# Source: chart/templates/config.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: t
data:
  chihaya.yaml: |
    chihaya: {}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: t
  labels: {app: t}
spec:
  replicas: 1
  selector:
    matchLabels: {app: t}
  template:
    metadata:
      labels: {app: t}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: c
          image: chihaya:1
          ports:
            - {name: udp, containerPort: 6969, protocol: UDP}
            - {name: metrics, containerPort: 6880}
          livenessProbe: {httpGet: {path: /healthz, port: metrics}}
          readinessProbe: {httpGet: {path: /readyz, port: metrics}}
          resources: {requests: {cpu: 100m, memory: 64Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
          volumeMounts: [{name: config, mountPath: /etc/chihaya}]
      volumes:
        - name: config
          configMap: {name: t}
---
apiVersion: v1
kind: Service
metadata:
  name: t
  labels: {app: t, svc: metrics}
spec:
  selector: {app: t}
  ports:
    - {name: udp, port: 6969, targetPort: udp, protocol: UDP}
    - {name: metrics, port: 6880, targetPort: metrics}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: t
spec:
  selector:
    matchLabels: {svc: metrics}
  endpoints:
    - port: metrics
`

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		old     string // replaced in good by new
		new     string
		wantErr string // "" means the rendering passes
	}{
		{name: "good", wantErr: ""},
		{name: "unknown field", old: "  replicas: 1", new: "  replica: 1", wantErr: `Deployment: error unmarshaling JSON: while decoding JSON: json: unknown field "replica"`},
		{name: "duplicate key", old: "  replicas: 1", new: "  replicas: 1\n  replicas: 2", wantErr: "already set in map"},
		{name: "wrong type", old: "  replicas: 1", new: "  replicas: one", wantErr: "cannot unmarshal string"},
		{name: "old API version", old: "apiVersion: apps/v1", new: "apiVersion: extensions/v1beta1", wantErr: `apiVersion "extensions/v1beta1" kind "Deployment": not a type`},
		{name: "bad name", old: "  name: t\n  labels: {app: t}\nspec:\n  replicas", new: "  name: T_t\n  labels: {app: t}\nspec:\n  replicas", wantErr: `metadata.name "T_t"`},
		{name: "selector does not match pods", old: "    matchLabels: {app: t}", new: "    matchLabels: {app: u}", wantErr: "does not match the pod template"},
		{name: "service selects nothing", old: "  selector: {app: t}", new: "  selector: {app: u}", wantErr: "Service t: selector map[app:u] selects no rendered Deployment"},
		{name: "service targets a missing port", old: "targetPort: udp, protocol: UDP", new: "targetPort: udp, protocol: TCP", wantErr: "targets udp/TCP"},
		{name: "root allowed", old: "      securityContext: {runAsNonRoot: true}\n", new: "", wantErr: "runAsNonRoot is not true"},
		{name: "writable root", old: "readOnlyRootFilesystem: true", new: "readOnlyRootFilesystem: false", wantErr: "readOnlyRootFilesystem is not true"},
		{name: "capabilities kept", old: "drop: [ALL]", new: "drop: [NET_RAW]", wantErr: "capabilities.drop lacks ALL"},
		{name: "missing config map", old: "configMap: {name: t}", new: "configMap: {name: u}", wantErr: "ConfigMap u is not rendered"},
		{name: "probe on a missing port", old: "path: /readyz, port: metrics", new: "path: /readyz, port: admin", wantErr: `probe port "admin"`},
		{name: "service monitor port", old: "    - port: metrics", new: "    - port: web", wantErr: `endpoint port "web"`},
		{name: "service monitor field", old: "    - port: metrics", new: "    - port: metrics\n      intervall: 5s", wantErr: `unknown field "intervall"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := good
			if tt.old != "" {
				if !strings.Contains(in, tt.old) {
					t.Fatalf("case does not apply: %q not in the good rendering", tt.old)
				}
				in = strings.Replace(in, tt.old, tt.new, 1)
			}
			var stdout, stderr bytes.Buffer
			code := run([]string{"-"}, strings.NewReader(in), &stdout, &stderr)
			if tt.wantErr == "" {
				if code != 0 {
					t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
				}
				if !strings.Contains(stdout.String(), "4 objects OK") {
					t.Errorf("stdout = %q, want 4 objects OK", stdout.String())
				}
				return
			}
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestConfigDir(t *testing.T) {
	secret := "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\ndata:\n  chihaya.yaml: Y2hpaGF5YToge30K\n"
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-config-dir", dir, "-"}, strings.NewReader(good+secret), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	for _, c := range []struct{ file, want string }{
		{"configmap-t.yaml", "chihaya: {}\n"},
		{"secret-s.yaml", "chihaya: {}\n"},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("%s = %q, want %q", c.file, b, c.want)
		}
	}
}
