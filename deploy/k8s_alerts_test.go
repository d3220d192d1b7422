package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// deployment returns the rendered Deployment name, failing the test if
// there is none.
func deployment(t *testing.T, objs objects, name string) appsv1.Deployment {
	t.Helper()
	d, ok := objs.deployments[name]
	if !ok {
		t.Fatalf("no Deployment %s", name)
	}
	return d
}

// container returns the container named name of Deployment d, failing the
// test if there is none.
func container(t *testing.T, d appsv1.Deployment, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %s", d.Name, name)
	return corev1.Container{}
}

// flagValue returns the value of --name=value in args.
func flagValue(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// writeAt writes text at the pod path p under root, so that files keep the
// layout they have in the pod (relative paths between them included).
func writeAt(t *testing.T, root, p, text string) string {
	t.Helper()
	path := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestPrometheusLoadsRulesAndAlerts checks that the cluster's Prometheus
// does what local mode's does: it loads deploy/rules/hopwatch.rules.yml
// (the rule_files path of the rendered prometheus.yml, resolved against the
// config's directory as Prometheus does, lands on a mounted ConfigMap with
// that file's content), the pinned promtool accepts the config with its
// rules at their pod paths, and alerts go to the alertmanager Service.
func TestPrometheusLoadsRulesAndAlerts(t *testing.T) {
	root := e2etest.RepoRoot(t)
	objs := base(t)
	d := deployment(t, objs, "prometheus")
	name, text := renderedConfig(t, objs, d)
	if text == "" {
		t.Fatal("Deployment prometheus has no render-config init container")
	}
	prom := container(t, d, "prometheus")
	configPath, ok := flagValue(prom.Args, "config.file")
	if !ok || filepath.Base(configPath) != name {
		t.Fatalf("container prometheus: --config.file %q, want the rendered %s", configPath, name)
	}
	var cfg struct {
		RuleFiles []string `json:"rule_files"`
		Alerting  struct {
			Alertmanagers []struct {
				StaticConfigs []struct {
					Targets []string `json:"targets"`
				} `json:"static_configs"`
			} `json:"alertmanagers"`
		} `json:"alerting"`
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("rendered %s: %v", name, err)
	}

	// Every rule file is on a ConfigMap mounted into the container, and one
	// of them is deploy/rules/hopwatch.rules.yml as it is.
	want, err := os.ReadFile(filepath.Join(root, "deploy", "rules", "hopwatch.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	pod := t.TempDir()
	hopwatchRules := false
	for _, rf := range cfg.RuleFiles {
		p := rf
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(configPath), p) // as Prometheus resolves it
		}
		data := mountedFile(t, objs, d, prom, p)
		if data == string(want) {
			hopwatchRules = true
		} else if filepath.Base(p) == "hopwatch.rules.yml" {
			t.Errorf("%s in the prometheus pod differs from deploy/rules/hopwatch.rules.yml", p)
		}
		writeAt(t, pod, p, data)
	}
	if !hopwatchRules {
		t.Errorf("rendered %s: rule_files %v name no mounted copy of deploy/rules/hopwatch.rules.yml", name, cfg.RuleFiles)
	}

	// promtool checks the config and the rule files it names, at the
	// pod's layout: a rule file that is not there fails it.
	bin := filepath.Join(root, "bin", "promtool")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make tools-test` (it builds the promtool pinned in tools/promtool/go.mod)", bin)
	}
	out, err := exec.Command(bin, "check", "config", writeAt(t, pod, configPath, text)).CombinedOutput()
	if err != nil {
		t.Errorf("promtool check config on the rendered %s with its rules: %v\n%s", name, err, out)
	}
	if m := regexp.MustCompile(`SUCCESS: (\d+) rules found`).FindSubmatch(out); m == nil || string(m[1]) == "0" {
		t.Errorf("promtool check config found no rules in the rendered %s's rule files:\n%s", name, out)
	}

	// Alerts go to the alertmanager Service, which selects the Alertmanager.
	targets := 0
	for _, am := range cfg.Alerting.Alertmanagers {
		for _, sc := range am.StaticConfigs {
			for _, target := range sc.Targets {
				targets++
				if err := serviceAddr(objs, target, corev1.ProtocolTCP); err != nil {
					t.Errorf("rendered %s alerting target: %v", name, err)
				} else if !strings.HasPrefix(target, "alertmanager:") {
					t.Errorf("rendered %s sends alerts to %s, not the alertmanager Service", name, target)
				}
			}
		}
	}
	if targets == 0 {
		t.Errorf("rendered %s has no Alertmanager target", name)
	}
	amDeploy := deployment(t, objs, "alertmanager")
	if svc := objs.services["alertmanager"]; !podLabelsMatch(svc.Spec.Selector, amDeploy.Spec.Template.Labels) {
		t.Errorf("Service alertmanager: selector %v does not select Deployment alertmanager's pods %v", svc.Spec.Selector, amDeploy.Spec.Template.Labels)
	}
}

// TestAlertmanagerRunsMountedConfig runs the pinned Alertmanager
// (bin/alertmanager, the version of the Deployment's image) with the
// Deployment's arguments and the config its ConfigMap mounts — only paths
// and the listen address moved to the test's — and waits for /-/ready:
// Alertmanager exits at start on a config it rejects.
func TestAlertmanagerRunsMountedConfig(t *testing.T) {
	root := e2etest.RepoRoot(t)
	objs := base(t)
	d := deployment(t, objs, "alertmanager")
	am := container(t, d, "alertmanager")
	configPath, ok := flagValue(am.Args, "config.file")
	if !ok {
		t.Fatalf("container alertmanager: no --config.file in %v", am.Args)
	}
	text := mountedFile(t, objs, d, am, configPath)
	want, err := os.ReadFile(filepath.Join(root, "deploy", "local", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if text != string(want) {
		t.Errorf("%s in the alertmanager pod differs from deploy/local/alertmanager.yml", configPath)
	}
	// The image is the pinned build's version, so that this check speaks
	// for the pod.
	mod, err := os.ReadFile(filepath.Join(root, "tools", "alertmanager", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github\.com/prometheus/alertmanager (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("tools/alertmanager/go.mod requires no github.com/prometheus/alertmanager")
	}
	if wantImage := "prom/alertmanager:" + string(m[1]); am.Image != wantImage {
		t.Errorf("container alertmanager: image %s, want %s (the version pinned in tools/alertmanager/go.mod)", am.Image, wantImage)
	}

	bin := filepath.Join(root, "bin", "alertmanager")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make tools` (it builds the Alertmanager pinned in tools/alertmanager/go.mod)", bin)
	}
	// One replica: gossip is off. (Its default, 0.0.0.0:9094, would also
	// take this test off loopback.)
	if v, ok := flagValue(am.Args, "cluster.listen-address"); !ok || v != "" {
		t.Fatalf("container alertmanager: want --cluster.listen-address= (no cluster) in %v", am.Args)
	}
	pod := t.TempDir()
	addr := e2etest.FreeAddr(t)
	args := []string{}
	for _, a := range am.Args {
		switch {
		case strings.HasPrefix(a, "--config.file="):
			a = "--config.file=" + writeAt(t, pod, configPath, text)
		case strings.HasPrefix(a, "--storage.path="):
			a = "--storage.path=" + filepath.Join(pod, "data")
		case strings.HasPrefix(a, "--web.listen-address="):
			a = "--web.listen-address=" + addr
		}
		args = append(args, a)
	}
	if !strings.Contains(strings.Join(args, " "), "--web.listen-address="+addr) {
		t.Fatalf("container alertmanager: no --web.listen-address in %v", am.Args)
	}
	p := e2etest.StartProcess(t, "alertmanager", nil, bin, append(args, "--log.level=warn")...)
	p.WaitFor(t, "/-/ready", 30*time.Second, func() error { return e2etest.HTTPOK("http://" + addr + "/-/ready") })
	p.Terminate(5 * time.Second)
}
