// Package deploy_test checks deploy/k8s: it renders the kustomization with
// the pinned kustomize (bin/kustomize, `make tools`), decodes every object
// strictly into k8s.io/api types, and checks what a cluster would only
// report at run time: that Services select pods and reach their ports, that
// referenced ConfigMaps exist, that every workload is locked down, and that
// the proxy configs — deploy/local's files with their addresses rewritten by
// the pods' render-config init containers — are valid and send their stats
// to the statsd-sink Service.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/tracing/demo"
)

const namespace = "hopwatch"

// kustomize renders dir with the pinned kustomize. A missing binary fails
// the test: the check is part of `make test`, which builds it first.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	bin := filepath.Join(e2etest.RepoRoot(t), "bin", "kustomize")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make tools` (it builds the kustomize pinned in tools/kustomize/go.mod)", bin)
	}
	cmd := exec.Command(bin, "build", "--load-restrictor=LoadRestrictionsNone", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v\n%s", dir, err, stderr.String())
	}
	return out
}

// objects is the rendered manifest, decoded.
type objects struct {
	namespaces  []corev1.Namespace
	configMaps  map[string]corev1.ConfigMap
	services    map[string]corev1.Service
	deployments map[string]appsv1.Deployment
	pdbs        []policyv1.PodDisruptionBudget
	// The per-node sink component's kinds.
	daemonSets      map[string]appsv1.DaemonSet
	serviceAccounts map[string]corev1.ServiceAccount
	roles           map[string]rbacv1.Role
	roleBindings    []rbacv1.RoleBinding
	other           []map[string]any // kinds outside k8s.io/api (the ServiceMonitor)
}

// strictDecode decodes one JSON object into v as the API server's strict
// field validation does (sigs.k8s.io/json, which apimachinery uses): an
// unknown, duplicated or miscased field fails. encoding/json alone would
// accept "targetport" for targetPort; the API server would drop it.
func strictDecode(doc []byte, v any) error {
	strict, err := kjson.UnmarshalStrict(doc, v, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// decodeAll splits a rendered stream and decodes each object by kind.
// allowCRDs lists kinds that are not in k8s.io/api and are kept as maps.
func decodeAll(t *testing.T, stream []byte, allowCRDs ...string) objects {
	t.Helper()
	objs := objects{
		configMaps:  map[string]corev1.ConfigMap{},
		services:    map[string]corev1.Service{},
		deployments: map[string]appsv1.Deployment{},

		daemonSets:      map[string]appsv1.DaemonSet{},
		serviceAccounts: map[string]corev1.ServiceAccount{},
		roles:           map[string]rbacv1.Role{},
	}
	docs := regexp.MustCompile(`(?m)^---\s*$`).Split(string(stream), -1)
	for i, doc := range docs {
		if strings.TrimSpace(doc) == "" {
			continue
		}
		js, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("object %d: %v\n%s", i, err, doc)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(js, &meta); err != nil {
			t.Fatalf("object %d: %v", i, err)
		}
		where := fmt.Sprintf("%s %s/%s", meta.Kind, meta.Metadata.Namespace, meta.Metadata.Name)
		if meta.Kind != "Namespace" && meta.Metadata.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", where, meta.Metadata.Namespace, namespace)
		}
		at := fmt.Sprintf("%s (%s)", where, meta.APIVersion)
		switch meta.APIVersion + " " + meta.Kind {
		case "v1 Namespace":
			objs.namespaces = append(objs.namespaces, decodeAs[corev1.Namespace](t, js, at))
		case "v1 ConfigMap":
			putNamed(objs.configMaps, decodeAs[corev1.ConfigMap](t, js, at))
		case "v1 Service":
			putNamed(objs.services, decodeAs[corev1.Service](t, js, at))
		case "apps/v1 Deployment":
			putNamed(objs.deployments, decodeAs[appsv1.Deployment](t, js, at))
		case "policy/v1 PodDisruptionBudget":
			objs.pdbs = append(objs.pdbs, decodeAs[policyv1.PodDisruptionBudget](t, js, at))
		case "apps/v1 DaemonSet":
			putNamed(objs.daemonSets, decodeAs[appsv1.DaemonSet](t, js, at))
		case "v1 ServiceAccount":
			putNamed(objs.serviceAccounts, decodeAs[corev1.ServiceAccount](t, js, at))
		case "rbac.authorization.k8s.io/v1 Role":
			putNamed(objs.roles, decodeAs[rbacv1.Role](t, js, at))
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			objs.roleBindings = append(objs.roleBindings, decodeAs[rbacv1.RoleBinding](t, js, at))
		default:
			if !slices.Contains(allowCRDs, meta.Kind) {
				t.Errorf("%s: kind %s %s is not one this test decodes; add it to decodeAll", where, meta.APIVersion, meta.Kind)
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(js, &m); err != nil {
				t.Fatal(err)
			}
			objs.other = append(objs.other, m)
		}
	}
	return objs
}

// putNamed adds o to m under its metadata name.
func putNamed[T any, P interface {
	*T
	GetName() string
}](m map[string]T, o T) {
	m[P(&o).GetName()] = o
}

// decodeAs decodes the object js strictly as a T, reporting a field T does
// not have as an error at where.
func decodeAs[T any](t *testing.T, js []byte, where string) T {
	t.Helper()
	var o T
	if err := strictDecode(js, &o); err != nil {
		t.Errorf("%s: %v", where, err)
	}
	return o
}

var (
	renderOnce sync.Once
	rendered   []byte
)

func base(t *testing.T) objects {
	t.Helper()
	renderOnce.Do(func() { rendered = kustomize(t, filepath.Join(e2etest.RepoRoot(t), "deploy", "k8s")) })
	if rendered == nil {
		t.Fatal("rendering deploy/k8s failed in an earlier test")
	}
	return decodeAll(t, rendered)
}

// generated finds the ConfigMap a configMapGenerator named name made:
// kustomize appends a hash of its contents.
func generated(objs objects, name string) (corev1.ConfigMap, bool) {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-[a-z0-9]{10}$`)
	for n, cm := range objs.configMaps {
		if re.MatchString(n) {
			return cm, true
		}
	}
	return corev1.ConfigMap{}, false
}

func TestRenderDecodesStrictly(t *testing.T) {
	objs := base(t)
	if len(objs.namespaces) != 1 || objs.namespaces[0].Name != namespace {
		t.Errorf("want exactly the namespace %q, got %d namespaces", namespace, len(objs.namespaces))
	}
	for _, name := range []string{"statsd-sink", "front-proxy", "frontend", "catalog", "inventory", "legacy-pricing", "load", "prometheus", "alertmanager", "jaeger", "grafana"} {
		if _, ok := objs.deployments[name]; !ok {
			t.Errorf("no Deployment %q", name)
		}
	}
}

// The strict decoder must reject what the API server would drop; otherwise
// TestRenderDecodesStrictly proves nothing.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	for _, doc := range []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replica":2}}`,
		`{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":80,"targetport":8080}]}}`,
		`{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":80,"targetPorts":8080}]}}`,
	} {
		var d appsv1.Deployment
		var s corev1.Service
		var target any = &d
		if strings.Contains(doc, `"Service"`) {
			target = &s
		}
		if err := strictDecode([]byte(doc), target); err == nil || !strings.Contains(err.Error(), "unknown field") {
			t.Errorf("strictDecode(%s) = %v, want an unknown field error", doc, err)
		}
	}
}

func podLabelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// containerPort finds the port a Service's targetPort names in a pod.
func containerPort(pod corev1.PodSpec, target corev1.ServicePort) (corev1.ContainerPort, bool) {
	proto := target.Protocol
	if proto == "" {
		proto = corev1.ProtocolTCP
	}
	for _, c := range pod.Containers {
		for _, p := range c.Ports {
			pp := p.Protocol
			if pp == "" {
				pp = corev1.ProtocolTCP
			}
			if pp != proto {
				continue
			}
			tp := target.TargetPort
			if tp.StrVal == "" && tp.IntVal == 0 {
				tp.IntVal = target.Port // targetPort defaults to port
			}
			if (tp.StrVal != "" && tp.StrVal == p.Name) || (tp.StrVal == "" && tp.IntVal == p.ContainerPort) {
				return p, true
			}
		}
	}
	return corev1.ContainerPort{}, false
}

func TestServicesSelectPodsAndPorts(t *testing.T) {
	objs := base(t)
	for _, svc := range objs.services {
		var pods []appsv1.Deployment
		for _, d := range objs.deployments {
			if podLabelsMatch(svc.Spec.Selector, d.Spec.Template.Labels) {
				pods = append(pods, d)
			}
		}
		if len(pods) == 0 {
			t.Errorf("Service %s: selector %v matches no Deployment's pod labels", svc.Name, svc.Spec.Selector)
			continue
		}
		for _, d := range pods {
			for _, sp := range svc.Spec.Ports {
				if _, ok := containerPort(d.Spec.Template.Spec, sp); !ok {
					t.Errorf("Service %s port %s (%d/%s, targetPort %s): Deployment %s has no such container port",
						svc.Name, sp.Name, sp.Port, sp.Protocol, sp.TargetPort.String(), d.Name)
				}
			}
		}
	}
	for _, d := range objs.deployments {
		if !podLabelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
			t.Errorf("Deployment %s: selector %v does not match its pod labels %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
	}
}

func TestReferencedConfigMapsExist(t *testing.T) {
	objs := base(t)
	refs := 0
	for _, d := range objs.deployments {
		pod := d.Spec.Template.Spec
		check := func(name, where string) {
			refs++
			if _, ok := objs.configMaps[name]; !ok {
				t.Errorf("Deployment %s: %s refers to ConfigMap %q, which is not rendered", d.Name, where, name)
			}
		}
		for _, v := range pod.Volumes {
			if v.ConfigMap != nil {
				check(v.ConfigMap.Name, "volume "+v.Name)
			}
		}
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					check(e.ConfigMapRef.Name, "container "+c.Name+" envFrom")
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
					check(e.ValueFrom.ConfigMapKeyRef.Name, "container "+c.Name+" env "+e.Name)
				}
			}
		}
	}
	if refs < 5 {
		t.Errorf("found only %d ConfigMap references; the proxies, Prometheus, Jaeger and Grafana all use some", refs)
	}
}

func TestWorkloadsAreLockedDown(t *testing.T) {
	objs := base(t)
	for _, d := range objs.deployments {
		pod := d.Spec.Template.Spec
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("Deployment %s: pod securityContext.runAsNonRoot is not true", d.Name)
		}
		for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
			where := fmt.Sprintf("Deployment %s container %s", d.Name, c.Name)
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					t.Errorf("%s: no %s request", where, r)
				}
				if _, ok := c.Resources.Limits[r]; !ok {
					t.Errorf("%s: no %s limit", where, r)
				}
			}
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no securityContext", where)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
				t.Errorf("%s: capabilities do not drop ALL", where)
			}
		}
		for _, c := range pod.Containers {
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("Deployment %s container %s: needs both a readiness and a liveness probe", d.Name, c.Name)
			}
		}
	}
	// A disruption budget where it matters: the entry point, which runs
	// more than one replica.
	covered := map[string]bool{}
	for _, p := range objs.pdbs {
		n := 0
		for _, d := range objs.deployments {
			if podLabelsMatch(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				n++
				covered[d.Name] = true
				if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
					t.Errorf("PodDisruptionBudget %s covers Deployment %s, which has fewer than 2 replicas: it would block every drain", p.Name, d.Name)
				}
			}
		}
		if n == 0 {
			t.Errorf("PodDisruptionBudget %s selects no Deployment", p.Name)
		}
	}
	if !covered["front-proxy"] {
		t.Error("the front-proxy Deployment has no PodDisruptionBudget")
	}
}

// sedCommand is one `s|pattern|replacement|flags` line of an addresses/*.sed
// script, the only form those scripts use.
type sedCommand struct {
	re     *regexp.Regexp
	repl   string
	global bool
}

// parseSed reads a script in the subset that busybox and GNU sed agree on
// here: s with `|` delimiters, `\.` and `^` in the pattern, `&` and `\n` in
// the replacement, and flags empty or g.
func parseSed(t *testing.T, name, script string) []sedCommand {
	t.Helper()
	var cmds []sedCommand
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "|")
		if len(parts) != 4 || parts[0] != "s" || (parts[3] != "" && parts[3] != "g") {
			t.Fatalf("%s:%d: %q is not s|pattern|replacement|[g]", name, i+1, line)
		}
		re, err := regexp.Compile(parts[1])
		if err != nil {
			t.Fatalf("%s:%d: pattern: %v", name, i+1, err)
		}
		repl := strings.NewReplacer(`\n`, "\n", "&", "${0}", "$", "$$").Replace(parts[2])
		cmds = append(cmds, sedCommand{re: re, repl: repl, global: parts[3] == "g"})
	}
	return cmds
}

// applySed runs the commands over text line by line, as sed does.
func applySed(cmds []sedCommand, text string) string {
	lines := strings.SplitAfter(text, "\n")
	for i, line := range lines {
		body, nl := strings.CutSuffix(line, "\n")
		for _, c := range cmds {
			if c.global {
				body = c.re.ReplaceAllString(body, c.repl)
			} else if loc := c.re.FindStringSubmatchIndex(body); loc != nil {
				body = body[:loc[0]] + string(c.re.ExpandString(nil, c.repl, body, loc)) + body[loc[1]:]
			}
		}
		if nl {
			body += "\n"
		}
		lines[i] = body
	}
	return strings.Join(lines, "")
}

func TestApplySed(t *testing.T) {
	cmds := parseSed(t, "test.sed", "# comment\ns|127\\.0\\.0\\.1:80|web:80|g\ns|^  x:|  y: 1\\n  x:|\n")
	got := applySed(cmds, "a: 127.0.0.1:80 127.0.0.1:80\n  x: 2\nb:   x:\n")
	want := "a: web:80 web:80\n  y: 1\n  x: 2\nb:   x:\n"
	if got != want {
		t.Errorf("applySed = %q, want %q", got, want)
	}
}

// renderedConfig runs a pod's render-config init container in Go: it finds
// the sed scripts and source file in its command and the ConfigMaps mounted
// at those paths, and returns the file the main container reads.
func renderedConfig(t *testing.T, objs objects, d appsv1.Deployment) (name, text string) {
	t.Helper()
	pod := d.Spec.Template.Spec
	var init *corev1.Container
	for i := range pod.InitContainers {
		if pod.InitContainers[i].Name == "render-config" {
			init = &pod.InitContainers[i]
		}
	}
	if init == nil {
		return "", ""
	}
	cmd := strings.Join(init.Command, " ")
	m := regexp.MustCompile(`^sh -c sed((?: -f \S+)+) (\S+) >(\S+)$`).FindStringSubmatch(cmd)
	if m == nil {
		t.Fatalf("Deployment %s: render-config command %q is not `sh -c sed -f SCRIPT... SRC >DST`", d.Name, cmd)
	}
	mounted := func(path string) string { return mountedFile(t, objs, d, *init, path) }
	var cmds []sedCommand
	scripts := strings.Fields(strings.ReplaceAll(m[1], "-f ", ""))
	for _, f := range scripts {
		cmds = append(cmds, parseSed(t, f, mounted(f))...)
	}
	out := applySed(cmds, mounted(m[2]))
	checkWithRealSed(t, scripts, m[2], mounted, out)
	return filepath.Base(m[2]), out
}

// mountedFile returns the file at path in container c of Deployment d: the
// key of a ConfigMap volume mounted at path's directory. It fails the test
// if no ConfigMap provides path there.
func mountedFile(t *testing.T, objs objects, d appsv1.Deployment, c corev1.Container, path string) string {
	t.Helper()
	dir, file := filepath.Split(path)
	for _, vm := range c.VolumeMounts {
		if filepath.Clean(vm.MountPath) != filepath.Clean(dir) {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name == vm.Name && v.ConfigMap != nil {
				cm, ok := objs.configMaps[v.ConfigMap.Name]
				if !ok {
					t.Fatalf("Deployment %s: ConfigMap %s is not rendered", d.Name, v.ConfigMap.Name)
				}
				data, ok := cm.Data[file]
				if !ok {
					t.Fatalf("Deployment %s: ConfigMap %s has no key %q (for %s)", d.Name, cm.Name, file, path)
				}
				return data
			}
		}
	}
	t.Fatalf("Deployment %s: %s is not on a ConfigMap mounted into container %s", d.Name, path, c.Name)
	return ""
}

// checkWithRealSed runs the init container's sed command with the sed on
// PATH, when there is one, and compares: applySed must mean what sed means.
func checkWithRealSed(t *testing.T, scripts []string, src string, mounted func(string) string, want string) {
	t.Helper()
	sed, err := exec.LookPath("sed")
	if err != nil {
		return
	}
	dir := t.TempDir()
	write := func(path string) string {
		p := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(path, "/"), "/", "_"))
		if err := os.WriteFile(p, []byte(mounted(path)), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var args []string
	for _, s := range scripts {
		args = append(args, "-f", write(s))
	}
	got, err := exec.Command(sed, append(args, write(src))...).Output()
	if err != nil {
		t.Fatalf("%s %v: %v", sed, args, err)
	}
	if string(got) != want {
		t.Errorf("sed -f %v %s gives a different file than the test's applySed:\n--- sed\n%s\n--- applySed\n%s", scripts, src, got, want)
	}
}

// serviceAddr checks that host:port names a Service in the namespace with
// that port for proto, and says why not.
func serviceAddr(objs objects, hostport string, proto corev1.Protocol) error {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("%q: port: %w", hostport, err)
	}
	name := strings.TrimSuffix(strings.TrimSuffix(host, "."+namespace+".svc.cluster.local"), "."+namespace+".svc")
	svc, ok := objs.services[name]
	if !ok {
		return fmt.Errorf("%q: no Service %q in namespace %s", hostport, name, namespace)
	}
	for _, p := range svc.Spec.Ports {
		pp := p.Protocol
		if pp == "" {
			pp = corev1.ProtocolTCP
		}
		if int(p.Port) == port && pp == proto {
			return nil
		}
	}
	return fmt.Errorf("%q: Service %s has no %s port %d", hostport, name, proto, port)
}

func TestProxyConfigsResolveInCluster(t *testing.T) {
	objs := base(t)
	proxies := 0
	for _, d := range objs.deployments {
		var proxy *corev1.Container
		for i, c := range d.Spec.Template.Spec.Containers {
			if c.Name == "hopwatch-proxy" {
				proxy = &d.Spec.Template.Spec.Containers[i]
			}
		}
		if proxy == nil {
			continue
		}
		proxies++
		src, text := renderedConfig(t, objs, d)
		if text == "" {
			t.Errorf("Deployment %s: its proxy has no render-config init container", d.Name)
			continue
		}
		dir := t.TempDir()
		path := filepath.Join(dir, src)
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		runCertInit(t, d, dir)
		cfg, err := config.Load(path)
		if err != nil {
			t.Errorf("Deployment %s: deploy/local/%s rewritten for the cluster is not a valid proxy config:\n%v\n%s", d.Name, src, err, text)
			continue
		}
		// The proxies' statsd address resolves to the statsd-sink Service.
		if len(cfg.StatsSinks) == 0 {
			t.Errorf("Deployment %s: %s has no stats_sinks", d.Name, src)
		}
		for _, s := range cfg.StatsSinks {
			proto := corev1.ProtocolUDP
			if s.Protocol == "tcp" {
				proto = corev1.ProtocolTCP
			}
			if err := serviceAddr(objs, s.Address, proto); err != nil {
				t.Errorf("Deployment %s: %s stats_sinks: %v", d.Name, src, err)
			} else if host, _, _ := net.SplitHostPort(s.Address); !strings.HasPrefix(host, "statsd-sink") {
				t.Errorf("Deployment %s: %s sends stats to %s, not the statsd-sink Service", d.Name, src, s.Address)
			}
		}
		// Listeners and admin bind every address, on the ports the
		// container declares.
		ports := map[int32]string{}
		for _, p := range proxy.Ports {
			ports[p.ContainerPort] = p.Name
		}
		binds := []string{cfg.Admin.Address}
		for _, l := range cfg.Listeners {
			binds = append(binds, l.Address)
		}
		for _, b := range binds {
			host, portStr, err := net.SplitHostPort(b)
			if err != nil {
				t.Errorf("Deployment %s: %s: %v", d.Name, src, err)
				continue
			}
			if host != "0.0.0.0" && host != "" {
				t.Errorf("Deployment %s: %s binds %s, which other pods and the kubelet cannot reach", d.Name, src, b)
			}
			port, _ := strconv.Atoi(portStr)
			if _, ok := ports[int32(port)]; !ok {
				t.Errorf("Deployment %s: %s binds %s, but container hopwatch-proxy declares no port %d", d.Name, src, b, port)
			}
		}
		// Upstreams are either in the pod (127.0.0.1) or a Service.
		for _, c := range cfg.Clusters {
			for _, e := range c.Endpoints {
				host, _, _ := net.SplitHostPort(e.Address)
				if host == "127.0.0.1" {
					continue
				}
				if err := serviceAddr(objs, e.Address, corev1.ProtocolTCP); err != nil {
					t.Errorf("Deployment %s: %s cluster %s: %v", d.Name, src, c.Name, err)
				}
			}
		}
	}
	if proxies != 5 {
		t.Errorf("found %d Deployments with a hopwatch-proxy container, want 5 (front-proxy and four sidecars)", proxies)
	}
}

// runCertInit does what a Deployment's `demo cert` init container does,
// with the pod's /config volume (where render-config writes the proxy's
// config) at dir, so that the config's certificate files exist as in the
// pod.
func runCertInit(t *testing.T, d appsv1.Deployment, dir string) {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.InitContainers {
		if len(c.Args) == 0 || c.Args[0] != "cert" {
			continue
		}
		fs := flag.NewFlagSet("cert", flag.ContinueOnError)
		certDir := fs.String("dir", "", "")
		name := fs.String("name", "front-proxy", "")
		fs.Duration("valid-for", 0, "")
		if err := fs.Parse(c.Args[1:]); err != nil {
			t.Fatalf("Deployment %s: init container %s: %v", d.Name, c.Name, err)
		}
		rel, ok := strings.CutPrefix(*certDir, "/config/")
		if !ok {
			t.Fatalf("Deployment %s: init container %s writes to %s, outside the /config volume the proxy reads", d.Name, c.Name, *certDir)
		}
		if _, _, err := demo.WriteSelfSignedCert(filepath.Join(dir, rel), *name, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAddressesInArgsResolve checks every host:port and URL in container
// arguments that names a Service: the demo apps' upstreams, their OTLP
// endpoint, and the load generator's target.
func TestAddressesInArgsResolve(t *testing.T) {
	objs := base(t)
	addr := regexp.MustCompile(`^(?:https?://)?([a-z][a-z0-9-]*):(\d+)(?:/.*)?$`)
	n := 0
	for _, d := range objs.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, a := range c.Args {
				m := addr.FindStringSubmatch(a)
				if m == nil || m[1] == "localhost" {
					continue
				}
				n++
				if err := serviceAddr(objs, m[1]+":"+m[2], corev1.ProtocolTCP); err != nil {
					t.Errorf("Deployment %s container %s argument %q: %v", d.Name, c.Name, a, err)
				}
			}
		}
	}
	if n < 6 {
		t.Errorf("found only %d Service addresses in arguments; want the upstreams, OTLP endpoints and load target", n)
	}
}

func TestPrometheusScrapesServices(t *testing.T) {
	objs := base(t)
	_, text := renderedConfig(t, objs, objs.deployments["prometheus"])
	if text == "" {
		t.Fatal("Deployment prometheus has no render-config init container")
	}
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("rendered prometheus.yml: %v", err)
	}
	sink := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				if strings.HasPrefix(target, "localhost:") {
					continue
				}
				if err := serviceAddr(objs, target, corev1.ProtocolTCP); err != nil {
					t.Errorf("prometheus.yml job %s: %v", sc.JobName, err)
				}
				sink = sink || target == "statsd-sink:9102"
			}
		}
	}
	if !sink {
		t.Error("the rendered prometheus.yml does not scrape statsd-sink:9102")
	}
	// Grafana's datasource (deploy/grafana, rewritten) reaches Prometheus.
	_, ds := renderedConfig(t, objs, objs.deployments["grafana"])
	var dsCfg struct {
		Datasources []struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"datasources"`
	}
	if err := yaml.Unmarshal([]byte(ds), &dsCfg); err != nil {
		t.Fatalf("rendered Grafana datasource: %v\n%s", err, ds)
	}
	if len(dsCfg.Datasources) == 0 {
		t.Error("the rendered Grafana provisioning has no datasource")
	}
	for _, d := range dsCfg.Datasources {
		hostport := strings.TrimPrefix(strings.TrimPrefix(d.URL, "http://"), "https://")
		if err := serviceAddr(objs, strings.TrimSuffix(hostport, "/"), corev1.ProtocolTCP); err != nil {
			t.Errorf("Grafana datasource %s: %v", d.Name, err)
		}
	}
	ann := objs.services["statsd-sink"].Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "9102" {
		t.Errorf("Service statsd-sink: scrape annotations %v, want prometheus.io/scrape=true and port 9102", ann)
	}
}

// TestDashboardsAreProvisioned keeps the grafana-dashboards generator in step
// with dashboards/generated: kustomize lists files one by one.
func TestDashboardsAreProvisioned(t *testing.T) {
	root := e2etest.RepoRoot(t)
	want, err := filepath.Glob(filepath.Join(root, "dashboards", "generated", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	cm, ok := generated(base(t), "grafana-dashboards")
	if !ok {
		t.Fatal("no ConfigMap grafana-dashboards")
	}
	var got []string
	for k := range cm.Data {
		got = append(got, k)
	}
	for _, w := range want {
		if _, ok := cm.Data[filepath.Base(w)]; !ok {
			t.Errorf("dashboards/generated/%s is not in deploy/k8s/kustomization.yaml's grafana-dashboards configMapGenerator", filepath.Base(w))
		}
	}
	if len(got) != len(want) {
		t.Errorf("grafana-dashboards holds %d files (%v), dashboards/generated %d", len(got), got, len(want))
	}
}

// withComponents renders deploy/k8s with the named components of
// deploy/k8s/components, as an overlay that adds them would.
func withComponents(t *testing.T, components ...string) []byte {
	t.Helper()
	root := e2etest.RepoRoot(t)
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	var comps []string
	for _, c := range components {
		comps = append(comps, rel(filepath.Join("deploy", "k8s", "components", c)))
	}
	k := fmt.Sprintf("resources: [%s]\ncomponents: [%s]\n", rel("deploy/k8s"), strings.Join(comps, ", "))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o600); err != nil {
		t.Fatal(err)
	}
	return kustomize(t, dir)
}

func TestServiceMonitorComponent(t *testing.T) {
	objs := decodeAll(t, withComponents(t, "servicemonitor"), "ServiceMonitor")
	if len(objs.other) != 1 {
		t.Fatalf("want one ServiceMonitor, got %d objects outside k8s.io/api", len(objs.other))
	}
	js, _ := json.Marshal(objs.other[0])
	var sm struct {
		Spec struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			Endpoints []struct {
				Port string `json:"port"`
				Path string `json:"path"`
			} `json:"endpoints"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(js, &sm); err != nil {
		t.Fatal(err)
	}
	svc := objs.services["statsd-sink"]
	if !podLabelsMatch(sm.Spec.Selector.MatchLabels, svc.Labels) {
		t.Errorf("ServiceMonitor selector %v does not match Service statsd-sink's labels %v", sm.Spec.Selector.MatchLabels, svc.Labels)
	}
	for _, e := range sm.Spec.Endpoints {
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) {
			t.Errorf("ServiceMonitor endpoint port %q is not a port of Service statsd-sink", e.Port)
		}
	}
}

// TestPrometheusRuleComponent renders the base with the prometheusrule
// component and checks that it adds one PrometheusRule whose groups are
// those of deploy/rules/hopwatch.rules.yml, the file local mode loads.
func TestPrometheusRuleComponent(t *testing.T) {
	root := e2etest.RepoRoot(t)
	objs := decodeAll(t, withComponents(t, "prometheusrule"), "PrometheusRule")
	if len(objs.other) != 1 {
		t.Fatalf("want one PrometheusRule, got %d objects outside k8s.io/api", len(objs.other))
	}
	spec, _ := json.Marshal(objs.other[0]["spec"])
	raw, err := os.ReadFile(filepath.Join(root, "deploy", "rules", "hopwatch.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	file, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !e2etest.JSONEqual(t, spec, file) {
		t.Error("the PrometheusRule's spec differs from deploy/rules/hopwatch.rules.yml: run `make dashboards`")
	}
	if !bytes.Contains(spec, []byte("EnvoyClusterErrorBudgetBurn")) {
		t.Error("the PrometheusRule has no EnvoyClusterErrorBudgetBurn alert")
	}
}

// TestDockerignoreKeepsBuildInputs checks that the build context has every
// directory the binaries compile from, and no more than the sources.
func TestDockerignoreKeepsBuildInputs(t *testing.T) {
	root := e2etest.RepoRoot(t)
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, line := range strings.Split(string(ignore), "\n") {
		if d, ok := strings.CutPrefix(strings.TrimSpace(line), "!"); ok {
			kept[strings.TrimSuffix(d, "/")] = true
		}
	}
	for _, cmd := range []string{"hopwatch-proxy", "statsd-sink", "demo"} {
		if _, err := os.Stat(filepath.Join(root, "deploy", "docker", cmd+".Dockerfile")); err != nil {
			t.Errorf("no Dockerfile for %s: %v", cmd, err)
		}
		list := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/"+cmd)
		list.Dir = root
		out, err := list.Output()
		if err != nil {
			t.Fatalf("go list ./cmd/%s: %v", cmd, err)
		}
		for _, dir := range strings.Fields(string(out)) {
			rel, err := filepath.Rel(root, dir)
			if err != nil || strings.HasPrefix(rel, "..") {
				continue // a module dependency
			}
			top := strings.Split(filepath.ToSlash(rel), "/")[0]
			if !kept[top] {
				t.Errorf("./cmd/%s compiles %s, but .dockerignore leaves %s/ out of the build context", cmd, rel, top)
			}
		}
	}
}
