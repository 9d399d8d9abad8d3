// Command manifestcheck checks rendered Kubernetes manifests (the output
// of `helm template`) without a cluster: every document is decoded
// strictly into its k8s.io/api type (an unknown or misspelled field, a
// duplicate key or a wrong type is an error), only the API versions of
// current Kubernetes are accepted, and the objects are checked against
// each other (selectors select, named ports exist, referenced objects are
// rendered) and against the chart's security bar (non-root, read-only
// root filesystem, no privilege escalation, every capability dropped).
//
//	helm template t dist/helm/chihaya | manifestcheck -config-dir DIR -
//
// With -config-dir, the tracker configuration (the chihaya.yaml key of
// each ConfigMap or Secret) is written to DIR, for `chihaya validate`.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// configKey is the ConfigMap or Secret key that holds the tracker's file.
const configKey = "chihaya.yaml"

// newObject returns an empty value of the type for apiVersion and kind,
// or nil for one this tool does not accept: a chart for current
// Kubernetes uses only these.
func newObject(apiVersion, kind string) interface{} {
	switch apiVersion + " " + kind {
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 PersistentVolumeClaim":
		return &corev1.PersistentVolumeClaim{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	}
	return nil
}

// manifest is the set of decoded objects of one rendering.
type manifest struct {
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	services     map[string]*corev1.Service
	accounts     map[string]*corev1.ServiceAccount
	claims       map[string]*corev1.PersistentVolumeClaim
	deployments  map[string]*appsv1.Deployment
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	monitors     map[string]*monitoringv1.ServiceMonitor
	objectsCount int
}

func newManifest() *manifest {
	return &manifest{
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		services:    map[string]*corev1.Service{},
		accounts:    map[string]*corev1.ServiceAccount{},
		claims:      map[string]*corev1.PersistentVolumeClaim{},
		deployments: map[string]*appsv1.Deployment{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
		hpas:        map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		monitors:    map[string]*monitoringv1.ServiceMonitor{},
	}
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decode adds every document of a multi-document YAML stream.
func (m *manifest) decode(name string, data []byte) error {
	var errs []error
	for i, doc := range docSeparator.Split(string(data), -1) {
		if isEmpty(doc) {
			continue
		}
		if err := m.decodeDoc([]byte(doc)); err != nil {
			errs = append(errs, fmt.Errorf("%s: document %d: %w", name, i, err))
		}
	}
	return errors.Join(errs...)
}

// isEmpty reports whether a document holds only comments and blank lines
// (helm leaves "# Source:" headers).
func isEmpty(doc string) bool {
	for _, l := range strings.Split(doc, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			return false
		}
	}
	return true
}

func (m *manifest) decodeDoc(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	obj := newObject(tm.APIVersion, tm.Kind)
	if obj == nil {
		return fmt.Errorf("apiVersion %q kind %q: not a type of current Kubernetes this chart may use", tm.APIVersion, tm.Kind)
	}
	// UnmarshalStrict refuses duplicate keys and fields the type lacks.
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	meta := obj.(metav1.Object)
	id := tm.Kind + " " + meta.GetName()
	if err := checkMeta(meta); err != nil {
		return fmt.Errorf("%s: %w", id, err)
	}
	name := meta.GetName()
	var seen bool
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		_, seen = m.configMaps[name]
		m.configMaps[name] = o
	case *corev1.Secret:
		_, seen = m.secrets[name]
		m.secrets[name] = o
	case *corev1.Service:
		_, seen = m.services[name]
		m.services[name] = o
	case *corev1.ServiceAccount:
		_, seen = m.accounts[name]
		m.accounts[name] = o
	case *corev1.PersistentVolumeClaim:
		_, seen = m.claims[name]
		m.claims[name] = o
	case *appsv1.Deployment:
		_, seen = m.deployments[name]
		m.deployments[name] = o
	case *policyv1.PodDisruptionBudget:
		_, seen = m.pdbs[name]
		m.pdbs[name] = o
	case *autoscalingv2.HorizontalPodAutoscaler:
		_, seen = m.hpas[name]
		m.hpas[name] = o
	case *monitoringv1.ServiceMonitor:
		_, seen = m.monitors[name]
		m.monitors[name] = o
	}
	if seen {
		return fmt.Errorf("%s: rendered twice", id)
	}
	m.objectsCount++
	return nil
}

// checkMeta checks what the API server would refuse in any object's
// metadata.
func checkMeta(meta metav1.Object) error {
	var errs []string
	if msgs := validation.IsDNS1123Subdomain(meta.GetName()); len(msgs) > 0 {
		errs = append(errs, fmt.Sprintf("metadata.name %q: %s", meta.GetName(), strings.Join(msgs, "; ")))
	}
	errs = append(errs, labelErrors("metadata.labels", meta.GetLabels())...)
	for k := range meta.GetAnnotations() {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("metadata.annotations %q: %s", k, strings.Join(msgs, "; ")))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func labelErrors(path string, l map[string]string) []string {
	var errs []string
	for k, v := range l {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("%s key %q: %s", path, k, strings.Join(msgs, "; ")))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Sprintf("%s[%q] %q: %s", path, k, v, strings.Join(msgs, "; ")))
		}
	}
	return errs
}

// check runs the checks across objects and returns every problem found.
func (m *manifest) check() []string {
	var p []string
	add := func(format string, args ...interface{}) { p = append(p, fmt.Sprintf(format, args...)) }
	if len(m.deployments) == 0 {
		add("no Deployment rendered")
	}
	for _, name := range sortedKeys(m.deployments) {
		p = append(p, m.checkDeployment(m.deployments[name])...)
	}
	for _, name := range sortedKeys(m.services) {
		s := m.services[name]
		d := m.selecting(s.Spec.Selector)
		if d == nil {
			add("Service %s: selector %v selects no rendered Deployment's pods", name, s.Spec.Selector)
			continue
		}
		if len(s.Spec.Ports) == 0 {
			add("Service %s: no ports", name)
		}
		for _, sp := range s.Spec.Ports {
			if sp.TargetPort.StrVal != "" && !hasPort(d.Spec.Template.Spec.Containers, sp.TargetPort.StrVal, sp.Protocol) {
				add("Service %s: port %s targets %s/%s, which no container of Deployment %s has", name, sp.Name, sp.TargetPort.StrVal, sp.Protocol, d.Name)
			}
		}
		if s.Spec.Type == corev1.ServiceTypeClusterIP && s.Spec.ExternalTrafficPolicy != "" {
			add("Service %s: externalTrafficPolicy is only valid for NodePort and LoadBalancer", name)
		}
	}
	for _, name := range sortedKeys(m.pdbs) {
		pdb := m.pdbs[name]
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			add("PodDisruptionBudget %s: exactly one of minAvailable and maxUnavailable must be set", name)
		}
		if pdb.Spec.Selector == nil || m.selecting(pdb.Spec.Selector.MatchLabels) == nil {
			add("PodDisruptionBudget %s: selector selects no rendered Deployment's pods", name)
		}
	}
	for _, name := range sortedKeys(m.hpas) {
		h := m.hpas[name]
		ref := h.Spec.ScaleTargetRef
		d, ok := m.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || !ok {
			add("HorizontalPodAutoscaler %s: scaleTargetRef %s %s %s is not a rendered Deployment", name, ref.APIVersion, ref.Kind, ref.Name)
		} else if d.Spec.Replicas != nil {
			add("HorizontalPodAutoscaler %s: Deployment %s sets replicas, which fights the autoscaler on every upgrade", name, d.Name)
		}
		if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
			add("HorizontalPodAutoscaler %s: needs 1 <= minReplicas <= maxReplicas", name)
		}
		if len(h.Spec.Metrics) == 0 {
			add("HorizontalPodAutoscaler %s: no metrics", name)
		}
	}
	for _, name := range sortedKeys(m.monitors) {
		sm := m.monitors[name]
		var svc *corev1.Service
		sel := labels.SelectorFromSet(sm.Spec.Selector.MatchLabels)
		for _, sn := range sortedKeys(m.services) {
			if s := m.services[sn]; sel.Matches(labels.Set(s.Labels)) {
				if svc != nil {
					add("ServiceMonitor %s: selects several Services (%s, %s); metrics would be scraped twice", name, svc.Name, s.Name)
				}
				svc = s
			}
		}
		if svc == nil {
			add("ServiceMonitor %s: selects no rendered Service", name)
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			found := false
			for _, sp := range svc.Spec.Ports {
				found = found || sp.Name == ep.Port
			}
			if !found {
				add("ServiceMonitor %s: endpoint port %q is not a port of Service %s", name, ep.Port, svc.Name)
			}
		}
	}
	return p
}

func (m *manifest) checkDeployment(d *appsv1.Deployment) []string {
	var p []string
	add := func(format string, args ...interface{}) {
		p = append(p, fmt.Sprintf("Deployment %s: ", d.Name)+fmt.Sprintf(format, args...))
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchLabels) == 0 {
		add("no selector.matchLabels")
	} else if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
		add("selector %v does not match the pod template's labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	p = append(p, prefixed("Deployment "+d.Name+": ", labelErrors("spec.template.metadata.labels", d.Spec.Template.Labels))...)
	pod := d.Spec.Template.Spec
	if sa := pod.ServiceAccountName; sa != "" && sa != "default" {
		if _, ok := m.accounts[sa]; !ok {
			add("serviceAccountName %s is not rendered", sa)
		}
	}
	psc := pod.SecurityContext
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	for _, v := range pod.Volumes {
		switch {
		case v.ConfigMap != nil:
			if _, ok := m.configMaps[v.ConfigMap.Name]; !ok {
				add("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
			}
		case v.Secret != nil:
			if _, ok := m.secrets[v.Secret.SecretName]; !ok {
				add("volume %s: Secret %s is not rendered", v.Name, v.Secret.SecretName)
			}
		}
	}
	if len(pod.Containers) == 0 {
		add("no containers")
	}
	for _, c := range pod.Containers {
		cadd := func(format string, args ...interface{}) {
			add("container %s: "+format, append([]interface{}{c.Name}, args...)...)
		}
		if c.Image == "" || strings.HasSuffix(c.Image, ":") {
			cadd("image %q has no tag", c.Image)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			cadd("no securityContext")
		default:
			if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
				cadd("runAsNonRoot is not true (in the pod or the container)")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				cadd("readOnlyRootFilesystem is not true")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				cadd("allowPrivilegeEscalation is not false")
			}
			if sc.Privileged != nil && *sc.Privileged {
				cadd("privileged")
			}
			if sc.Capabilities == nil || !containsCap(sc.Capabilities.Drop, "ALL") {
				cadd("capabilities.drop lacks ALL")
			}
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
			cadd("resources.requests needs cpu and memory")
		}
		if c.LivenessProbe == nil || c.ReadinessProbe == nil {
			cadd("needs a livenessProbe and a readinessProbe")
		}
		for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
			if pr == nil {
				continue
			}
			var port string
			switch {
			case pr.HTTPGet != nil:
				port = pr.HTTPGet.Port.StrVal
			case pr.TCPSocket != nil:
				port = pr.TCPSocket.Port.StrVal
			}
			if port != "" && !hasPort([]corev1.Container{c}, port, corev1.ProtocolTCP) {
				cadd("probe port %q is not a TCP port of the container", port)
			}
		}
		seen := map[string]bool{}
		for _, cp := range c.Ports {
			if cp.Name != "" {
				if msgs := validation.IsValidPortName(cp.Name); len(msgs) > 0 {
					cadd("port name %q: %s", cp.Name, strings.Join(msgs, "; "))
				}
				if seen[cp.Name] {
					cadd("port name %q used twice", cp.Name)
				}
				seen[cp.Name] = true
			}
		}
		for _, vm := range c.VolumeMounts {
			if !hasVolume(pod.Volumes, vm.Name) {
				cadd("volumeMount %s: no such volume", vm.Name)
			}
		}
	}
	return p
}

// selecting returns the Deployment whose pods a selector selects.
func (m *manifest) selecting(sel map[string]string) *appsv1.Deployment {
	if len(sel) == 0 {
		return nil
	}
	s := labels.SelectorFromSet(sel)
	for _, name := range sortedKeys(m.deployments) {
		if d := m.deployments[name]; s.Matches(labels.Set(d.Spec.Template.Labels)) {
			return d
		}
	}
	return nil
}

func hasPort(cs []corev1.Container, name string, proto corev1.Protocol) bool {
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range cs {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if p.Name == name && pp == proto {
				return true
			}
		}
	}
	return false
}

func hasVolume(vs []corev1.Volume, name string) bool {
	for _, v := range vs {
		if v.Name == name {
			return true
		}
	}
	return false
}

func containsCap(caps []corev1.Capability, c corev1.Capability) bool {
	for _, x := range caps {
		if x == c {
			return true
		}
	}
	return false
}

func prefixed(prefix string, msgs []string) []string {
	for i := range msgs {
		msgs[i] = prefix + msgs[i]
	}
	return msgs
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeConfigs writes the tracker configuration of every ConfigMap and
// Secret that carries one, and returns the files written.
func (m *manifest) writeConfigs(dir string) ([]string, error) {
	var files []string
	write := func(kind, name string, data []byte) error {
		f := filepath.Join(dir, kind+"-"+name+".yaml")
		files = append(files, f)
		return os.WriteFile(f, data, 0o600)
	}
	for _, name := range sortedKeys(m.configMaps) {
		if data, ok := m.configMaps[name].Data[configKey]; ok {
			if err := write("configmap", name, []byte(data)); err != nil {
				return nil, err
			}
		}
	}
	for _, name := range sortedKeys(m.secrets) {
		s := m.secrets[name]
		data, ok := s.Data[configKey]
		if !ok {
			var sd string
			sd, ok = s.StringData[configKey]
			data = []byte(sd)
		}
		if ok {
			if err := write("secret", name, data); err != nil {
				return nil, err
			}
		}
	}
	return files, nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("manifestcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configDir := fs.String("config-dir", "", "write the tracker configuration of each ConfigMap and Secret (key "+configKey+") to this folder")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: manifestcheck [-config-dir DIR] FILE... (- for standard input)")
		return 2
	}
	m := newManifest()
	failed := false
	for _, name := range fs.Args() {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(name)
		}
		if err == nil {
			err = m.decode(name, bytes.TrimPrefix(data, []byte("\ufeff")))
		}
		if err != nil {
			fmt.Fprintln(stderr, "manifestcheck:", err)
			failed = true
		}
	}
	for _, p := range m.check() {
		fmt.Fprintln(stderr, "manifestcheck:", p)
		failed = true
	}
	if *configDir != "" {
		files, err := m.writeConfigs(*configDir)
		if err != nil {
			fmt.Fprintln(stderr, "manifestcheck:", err)
			return 1
		}
		if len(files) == 0 {
			fmt.Fprintf(stderr, "manifestcheck: no ConfigMap or Secret has a %s key\n", configKey)
			failed = true
		}
		for _, f := range files {
			fmt.Fprintln(stdout, "config:", f)
		}
	}
	if failed {
		return 1
	}
	fmt.Fprintf(stdout, "manifestcheck: %d objects OK\n", m.objectsCount)
	return 0
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
