// Package alerts_test is the live proof of the generated alerting rules:
// it runs the local pipeline (deploy/local/up.sh) on a free block of
// loopback ports, the pinned Prometheus (bin/prometheus) with rules built
// by dashboards.Rules, and the pinned Alertmanager (bin/alertmanager) with
// deploy/local/alertmanager.yml. It injects errors into the demo's catalog
// service through /demo/inject and requires the 5xx burn-rate alert and the
// matching cause alert (retries exhausted) for the catalog's upstream
// cluster to reach Alertmanager, then to resolve once the injection stops.
//
// The rules are the generated ones with shorter windows and for: durations,
// set through dashboards.RuleOptions (the same parameters a team sets its
// objectives with), and Prometheus scrapes and evaluates every second: the
// production windows (1h and 5m, for: 2m) would take an hour to prove.
package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/dashboards"
	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// numPorts and the offsets follow port_names in deploy/local/up.sh.
const (
	numPorts      = 23
	offCatalogApp = 9
	offStatsd     = 11
	offSinkWeb    = 12
)

// The cluster the catalog's sidecar sends to, and the alerts injected
// errors there must raise.
const (
	cluster    = "catalog_app"
	burnAlert  = "EnvoyClusterErrorBudgetBurn"
	causeAlert = "EnvoyClusterRetriesExhausted"
)

// testRuleOptions shorten the windows so that the test runs in minutes:
// one burn-rate pair, 14.4× over 2m and 30s, and 30s windows for the
// cause alerts, each with for: 10s.
func testRuleOptions() dashboards.RuleOptions {
	return dashboards.RuleOptions{
		BurnWindows: []dashboards.BurnWindow{{Long: 2 * time.Minute, Short: 30 * time.Second, Factor: 14.4, Severity: "page", For: 10 * time.Second}},
		CauseWindow: 30 * time.Second,
		CauseFor:    10 * time.Second,
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// amAlert is an alert as Alertmanager's API v2 lists it.
type amAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// activeAlerts returns the active alerts Alertmanager holds for the
// cluster, by name.
func activeAlerts(ctx context.Context, amURL string) (map[string]amAlert, error) {
	var as []amAlert
	if err := e2etest.GetJSON(ctx, amURL+"/api/v2/alerts?active=true&silenced=false&inhibited=false", &as); err != nil {
		return nil, err
	}
	got := map[string]amAlert{}
	for _, a := range as {
		if a.Labels["envoy_cluster_name"] == cluster && a.Status.State == "active" {
			got[a.Labels["alertname"]] = a
		}
	}
	return got, nil
}

// promHasData reports whether an instant query returns a sample.
func promHasData(ctx context.Context, promURL, query string) (bool, error) {
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := e2etest.GetJSON(ctx, promURL+"/api/v1/query?query="+url.QueryEscape(query), &r); err != nil {
		return false, err
	}
	if r.Status != "success" {
		return false, fmt.Errorf("prometheus: %s: %s", query, r.Error)
	}
	return len(r.Data.Result) > 0, nil
}

func inject(t *testing.T, method, u string) {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, u, resp.Status)
	}
}

func TestAlertsLive(t *testing.T) {
	root := e2etest.RepoRoot(t)
	e2etest.PinnedBin(t, "prometheus") // before anything starts: the test needs it
	amBin := e2etest.PinnedBin(t, "alertmanager")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	bin := e2etest.PipelineBinaries(t)
	base := e2etest.FreePortBlock(t, numPorts+1, offStatsd)
	amPort := base + numPorts
	e2etest.StartLocalPipeline(t, bin, base, "UP_LOAD_RATE=30", "UP_LOAD_DURATION=6m", "UP_JAEGER=0")

	rf, err := dashboards.Rules(testRuleOptions())
	if err != nil {
		t.Fatal(err)
	}
	rules, err := rf.YAML()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [hopwatch.rules.yml]
alerting:
  alertmanagers:
    - static_configs:
        - targets: ['127.0.0.1:%d']
scrape_configs:
  - job_name: statsd-sink
    static_configs:
      - targets: ['127.0.0.1:%d']
`, amPort, base+offSinkWeb)

	amURL := "http://127.0.0.1:" + strconv.Itoa(amPort)
	am := e2etest.StartProcess(t, "alertmanager", nil, amBin, "--config.file="+filepath.Join(root, "deploy", "local", "alertmanager.yml"),
		"--storage.path="+filepath.Join(dir, "am"), "--web.listen-address=127.0.0.1:"+strconv.Itoa(amPort), "--cluster.listen-address=", "--log.level=warn")
	am.WaitFor(t, "Alertmanager ready", time.Minute, func() error { return e2etest.HTTPOK(amURL + "/-/ready") })

	prom, promURL := e2etest.StartPrometheus(t, promCfg, e2etest.PrometheusFile{Name: "hopwatch.rules.yml", Text: string(rules)})

	// Healthy first: the recorded request rate of the cluster is there,
	// and no alert for it has reached Alertmanager.
	completed := fmt.Sprintf(`envoy_cluster:upstream_rq_completed:rate30s{envoy_cluster_name=%q} > 0`, cluster)
	prom.WaitFor(t, "recorded requests of "+cluster, 2*time.Minute, func() error {
		ok, err := promHasData(ctx, promURL, completed)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no %s yet", completed)
		}
		return nil
	})
	time.Sleep(15 * time.Second) // longer than the alerts' for:
	got, err := activeAlerts(ctx, amURL)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) > 0 {
		t.Fatalf("before any injection Alertmanager already has alerts for %s: %v", cluster, slices.Sorted(maps.Keys(got)))
	}

	injectURL := fmt.Sprintf("http://127.0.0.1:%d/demo/inject", base+offCatalogApp)
	// Most of the stable catalog's answers fail. Its sidecar retries them,
	// and sends a quarter of the tries to the catalog's canary (zone-aware;
	// deploy/local/sidecar-catalog.yaml), so that at half the answers only
	// about 6 % failed all three tries: within a few times the 1.44 % the
	// page alert needs, which the 30 s window crossed and recrossed, so the
	// alert took up to three minutes to hold for its 10 s. At 80 % about
	// a third of the requests fail for good: far above the threshold in
	// every window.
	inject(t, http.MethodPost, injectURL+"?error_rate=0.8")
	injected := time.Now()
	var fired map[string]amAlert
	am.WaitFor(t, burnAlert+" and "+causeAlert+" for "+cluster+" in Alertmanager", 3*time.Minute, func() error {
		got, err := activeAlerts(ctx, amURL)
		if err != nil {
			return err
		}
		if _, ok := got[burnAlert]; !ok {
			return fmt.Errorf("no %s yet; active: %v", burnAlert, slices.Sorted(maps.Keys(got)))
		}
		if _, ok := got[causeAlert]; !ok {
			return fmt.Errorf("no %s yet; active: %v", causeAlert, slices.Sorted(maps.Keys(got)))
		}
		fired = got
		return nil
	})
	t.Logf("%s and %s reached Alertmanager %v after the injection", burnAlert, causeAlert, time.Since(injected).Round(time.Second))
	for _, name := range []string{burnAlert, causeAlert} {
		a := fired[name]
		if want := "var-envoy_cluster_name=" + cluster; !strings.Contains(a.Annotations["dashboard_url"], want) {
			t.Errorf("%s: dashboard_url %q does not set %s", name, a.Annotations["dashboard_url"], want)
		}
		if !strings.Contains(a.Annotations["description"], `envoy_cluster_name="`+cluster+`"`) {
			t.Errorf("%s: description %q does not name the cluster", name, a.Annotations["description"])
		}
		if a.Labels["severity"] == "" {
			t.Errorf("%s: no severity label: %v", name, a.Labels)
		}
	}

	inject(t, http.MethodDelete, injectURL)
	stopped := time.Now()
	am.WaitFor(t, "both alerts resolved", 3*time.Minute, func() error {
		got, err := activeAlerts(ctx, amURL)
		if err != nil {
			return err
		}
		for _, name := range []string{burnAlert, causeAlert} {
			if _, ok := got[name]; ok {
				return fmt.Errorf("%s still active", name)
			}
		}
		return nil
	})
	t.Logf("both resolved in Alertmanager %v after the injection stopped", time.Since(stopped).Round(time.Second))
}
