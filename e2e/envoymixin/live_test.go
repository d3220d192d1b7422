package envoymixin

import (
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// Offsets in the port block of deploy/local/up.sh (its port_names).
const (
	numPorts      = 23
	offFrontAdmin = 4
	offStatsd     = 11
	offSinkWeb    = 12
)

// knownGaps lists the metric name and label sets (Need.Key) of the mixin's
// dashboards that hopwatch does not produce yet, by where they are missing
// ("sink" for statsd-sink's /metrics, "proxy" for the front proxy's
// /stats/prometheus), with the reason. The test fails when a set missing
// from a source is not listed, and when a listed one turns up, so the list
// cannot go stale.
var knownGaps = map[string]string{}

// TestEnvoyMixinLive runs the dev environment (deploy/local/up.sh) on a
// free block of loopback ports with its ordinary load, and checks every
// metric name and label set of the mixin's dashboards against statsd-sink's
// /metrics and the front proxy's /stats/prometheus.
func TestEnvoyMixinLive(t *testing.T) {
	qs, err := LoadQueries(filepath.Join("testdata", "envoy-mixin"))
	if err != nil {
		t.Fatal(err)
	}
	needs, err := Needs(qs)
	if err != nil {
		t.Fatal(err)
	}

	base := e2etest.FreePortBlock(t, numPorts, offStatsd)
	e2etest.StartLocalPipeline(t, e2etest.PipelineBinaries(t), base, "UP_LOAD_RATE=20", "UP_LOAD_DURATION=3m", "UP_JAEGER=0")
	sources := map[string]string{
		"sink":  fmt.Sprintf("http://127.0.0.1:%d/metrics", base+offSinkWeb),
		"proxy": fmt.Sprintf("http://127.0.0.1:%d/stats/prometheus", base+offFrontAdmin),
	}

	// Traffic for a few flush intervals (5 s): every counter exists from
	// the first flush, and the load moves the rest. Poll until nothing
	// unlisted is missing, or time is up.
	var missing, found []string
	e2etest.Settle(60*time.Second, 2*time.Second, func() bool {
		missing, found = missing[:0], found[:0]
		for _, src := range []string{"sink", "proxy"} {
			series, err := scrape(sources[src])
			if err != nil {
				t.Fatalf("%s (%s): %v", src, sources[src], err)
			}
			for _, n := range needs {
				key := src + " " + n.Key()
				reason, listed := knownGaps[key]
				has := n.SatisfiedBy(series)
				switch {
				case !has && !listed:
					missing = append(missing, key)
				case has && listed:
					found = append(found, key+" (listed: "+reason+")")
				}
			}
		}
		return len(missing)+len(found) == 0
	})
	for _, m := range missing {
		t.Errorf("missing, and not a known gap: %s", m)
	}
	for _, f := range found {
		t.Errorf("present but listed in knownGaps; remove it from the list: %s", f)
	}
	for k := range knownGaps {
		src, key, _ := strings.Cut(k, " ")
		if !slices.ContainsFunc(needs, func(n Need) bool { return n.Key() == key }) || sources[src] == "" {
			t.Errorf("knownGaps lists %q, which the dashboards do not query", k)
		}
	}
	t.Logf("%d queries, %d metric name and label sets, checked against %s and %s; %d known gaps",
		len(qs), len(needs), sources["sink"], sources["proxy"], len(knownGaps))
}

// scrape reads a Prometheus text exposition into its series.
func scrape(u string) ([]Series, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	var out []Series
	for name, f := range fams {
		for _, m := range f.Metric {
			ls := map[string]string{}
			for _, l := range m.Label {
				ls[l.GetName()] = l.GetValue()
			}
			switch {
			case m.GetHistogram() != nil:
				// A histogram family exposes name_bucket{le}, name_sum and
				// name_count; the dashboards query those names.
				out = append(out, Series{Name: name + "_sum", Labels: ls}, Series{Name: name + "_count", Labels: ls})
				for _, b := range m.GetHistogram().GetBucket() {
					bl := map[string]string{"le": fmt.Sprint(b.GetUpperBound())}
					for k, v := range ls {
						bl[k] = v
					}
					out = append(out, Series{Name: name + "_bucket", Labels: bl})
				}
			default:
				out = append(out, Series{Name: name, Labels: ls})
			}
		}
	}
	return out, nil
}
