package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	yamlv3 "gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// TestStatsdSinkPerNodeComponent renders the base with
// components/statsd-sink-per-node and checks what makes per-node sinks
// right: one sink pod per node (a DaemonSet whose pod is the Deployment's),
// each proxy sending to its own node's sink (internalTrafficPolicy: Local),
// and Prometheus scraping every sink pod rather than the Service, which now
// reaches one sink only. The rendered prometheus.yml is checked by the real
// promtool, and its relabelling is run on the targets discovery would give.
func TestStatsdSinkPerNodeComponent(t *testing.T) {
	objs := decodeAll(t, withComponents(t, "statsd-sink-per-node"))

	// One sink per node, with the base's pod unchanged.
	if _, ok := objs.deployments["statsd-sink"]; ok {
		t.Error("the Deployment statsd-sink is still rendered beside the DaemonSet")
	}
	ds, ok := objs.daemonSets["statsd-sink"]
	if !ok {
		t.Fatal("no DaemonSet statsd-sink")
	}
	baseSink, ok := base(t).deployments["statsd-sink"]
	if !ok {
		t.Fatal("the base has no Deployment statsd-sink to compare the DaemonSet with")
	}
	if !equality.Semantic.DeepEqual(ds.Spec.Template, baseSink.Spec.Template) {
		t.Error("the DaemonSet's pod template differs from deploy/k8s/statsd-sink.yaml's Deployment: copy the Deployment's template into components/statsd-sink-per-node/daemonset.yaml")
	}
	if ds.Spec.Selector == nil || !podLabelsMatch(ds.Spec.Selector.MatchLabels, ds.Spec.Template.Labels) {
		t.Errorf("DaemonSet statsd-sink: selector %v does not match its pod labels %v", ds.Spec.Selector, ds.Spec.Template.Labels)
	}
	// A node whose sink is replaced must never be without one: Local
	// traffic has no other node to fall back to.
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxSurge == nil || ru.MaxSurge.IntValue() < 1 ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("DaemonSet statsd-sink: updateStrategy %+v, want a rolling update with maxSurge ≥ 1 and maxUnavailable 0", ds.Spec.UpdateStrategy)
	}

	// The Service keeps the proxies' address and sends each to its node.
	svc, ok := objs.services["statsd-sink"]
	if !ok {
		t.Fatal("no Service statsd-sink")
	}
	if p := svc.Spec.InternalTrafficPolicy; p == nil || *p != corev1.ServiceInternalTrafficPolicyLocal {
		t.Errorf("Service statsd-sink: internalTrafficPolicy %v, want Local", p)
	}
	if !podLabelsMatch(svc.Spec.Selector, ds.Spec.Template.Labels) {
		t.Errorf("Service statsd-sink: selector %v does not match the DaemonSet's pod labels", svc.Spec.Selector)
	}
	for _, sp := range svc.Spec.Ports {
		if _, ok := containerPort(ds.Spec.Template.Spec, sp); !ok {
			t.Errorf("Service statsd-sink port %s: the DaemonSet's pod has no such container port", sp.Name)
		}
	}
	metrics := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "metrics" })
	if metrics < 0 {
		t.Fatal("Service statsd-sink has no port named metrics")
	}

	// Prometheus may list the sink pods: a token, a service account, and
	// a Role bound to it that reads EndpointSlices, Services and Pods.
	prom := objs.deployments["prometheus"]
	checkDiscoveryRBAC(t, objs, prom)

	// The rendered prometheus.yml: valid for the real promtool, and its
	// statsd-sink job keeps exactly the discovered sink pods' metrics port.
	name, text := renderedConfig(t, objs, prom)
	if text == "" {
		t.Fatal("Deployment prometheus has no render-config init container")
	}
	promtoolCheck(t, name, text)
	var cfg struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string          `yaml:"targets"`
				Labels  map[string]string `yaml:"labels"`
			} `yaml:"static_configs"`
			KubernetesSD []struct {
				Role       string `yaml:"role"`
				Namespaces struct {
					OwnNamespace bool `yaml:"own_namespace"`
				} `yaml:"namespaces"`
			} `yaml:"kubernetes_sd_configs"`
			Relabel []*relabel.Config `yaml:"relabel_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yamlv3.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("rendered prometheus.yml: %v", err)
	}
	found := false
	for _, sc := range cfg.ScrapeConfigs {
		for _, rc := range sc.Relabel {
			if err := rc.Validate(model.UTF8Validation); err != nil {
				t.Fatalf("job %s: relabel config: %v", sc.JobName, err)
			}
		}
		// Every static target that would still reach the Service, after
		// the job's relabelling, is a scrape of one node's sink only.
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				lb := map[string]string{model.AddressLabel: target, model.JobLabel: sc.JobName}
				for k, v := range st.Labels {
					lb[k] = v
				}
				if keep := relabel.ProcessBuilder(labels.NewBuilder(labels.FromMap(lb)), sc.Relabel...); keep && strings.HasPrefix(target, "statsd-sink") {
					t.Errorf("job %s still scrapes %s, the Service: with internalTrafficPolicy Local it reaches only the sink on Prometheus's node", sc.JobName, target)
				}
			}
		}
		if sc.JobName != "statsd-sink" {
			continue
		}
		found = true
		if len(sc.KubernetesSD) != 1 || sc.KubernetesSD[0].Role != "endpointslice" || !sc.KubernetesSD[0].Namespaces.OwnNamespace {
			t.Errorf("job statsd-sink: kubernetes_sd_configs %+v, want one with role endpointslice in its own namespace", sc.KubernetesSD)
		}
		// What discovery gives for one sink pod: one target per port of
		// every Service in the namespace. Only the sink's metrics port
		// may stay, with the sink's node and pod as labels.
		discovered := func(service, port string) labels.Labels {
			return labels.FromMap(map[string]string{
				model.AddressLabel: "10.0.0.7:9102", model.JobLabel: "statsd-sink",
				"__meta_kubernetes_service_name":            service,
				"__meta_kubernetes_endpointslice_port_name": port,
				"__meta_kubernetes_pod_node_name":           "node-a",
				"__meta_kubernetes_pod_name":                "statsd-sink-x7k2p",
			})
		}
		kept := 0
		for svcName, s := range objs.services {
			for _, p := range s.Spec.Ports {
				b := labels.NewBuilder(discovered(svcName, p.Name))
				keep := relabel.ProcessBuilder(b, sc.Relabel...)
				out := b.Labels()
				want := svcName == "statsd-sink" && p.Name == "metrics"
				if keep != want {
					t.Errorf("job statsd-sink: Service %s port %s: kept %v, want %v", svcName, p.Name, keep, want)
				}
				if !keep {
					continue
				}
				kept++
				for k, v := range map[string]string{"node": "node-a", "pod": "statsd-sink-x7k2p", "component": "statsd-sink"} {
					if got := out.Get(k); got != v {
						t.Errorf("job statsd-sink: a sink pod's target has %s=%q, want %q (labels %v)", k, got, v, out)
					}
				}
			}
		}
		if kept != 1 {
			t.Errorf("job statsd-sink keeps %d ports of a sink pod, want 1 (metrics)", kept)
		}
	}
	if !found {
		t.Error("the rendered prometheus.yml has no statsd-sink job")
	}
}

// checkDiscoveryRBAC checks that the Prometheus pod runs with a mounted
// token of a service account that a RoleBinding gives list and watch on
// what role endpointslice reads.
func checkDiscoveryRBAC(t *testing.T, objs objects, prom appsv1.Deployment) {
	t.Helper()
	pod := prom.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("Deployment prometheus: automountServiceAccountToken is not true; discovery needs the token")
	}
	sa := pod.ServiceAccountName
	if _, ok := objs.serviceAccounts[sa]; sa == "" || !ok {
		t.Fatalf("Deployment prometheus: service account %q is not rendered", sa)
	}
	type grant struct{ group, resource, verb string }
	granted := map[grant]bool{}
	for _, rb := range objs.roleBindings {
		if rb.RoleRef.Kind != "Role" || !slices.ContainsFunc(rb.Subjects, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa
		}) {
			continue
		}
		role, ok := objs.roles[rb.RoleRef.Name]
		if !ok {
			t.Errorf("RoleBinding %s: Role %s is not rendered", rb.Name, rb.RoleRef.Name)
			continue
		}
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						granted[grant{g, res, v}] = true
					}
				}
			}
		}
	}
	for _, need := range []grant{
		{"discovery.k8s.io", "endpointslices", "list"}, {"discovery.k8s.io", "endpointslices", "watch"},
		{"", "services", "list"}, {"", "services", "watch"},
		{"", "pods", "list"}, {"", "pods", "watch"},
	} {
		if !granted[need] {
			t.Errorf("service account %s may not %s %s (group %q): Prometheus's endpointslice discovery needs it", sa, need.verb, need.resource, need.group)
		}
	}
}

// promtoolCheck runs the pinned promtool on a rendered Prometheus config
// (syntax only: its rule file path is the pod's, not this checkout's).
func promtoolCheck(t *testing.T, name, text string) {
	t.Helper()
	bin := filepath.Join(e2etest.RepoRoot(t), "bin", "promtool")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is missing: run `make tools-test` (it builds the promtool pinned in tools/promtool/go.mod)", bin)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "config", "--syntax-only", path).CombinedOutput(); err != nil {
		t.Errorf("promtool check config on the rendered %s: %v\n%s\n%s", name, err, out, text)
	}
}
