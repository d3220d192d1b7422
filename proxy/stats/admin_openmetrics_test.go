package stats

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// The media types of Prometheus's scrape protocols (its
// config.ScrapeProtocolsHeaders; the config package itself would pull
// service discovery into go.mod). The e2e test scrapes with the real
// binary.
const (
	omText1_0_0   = "application/openmetrics-text;version=1.0.0"
	omText0_0_1   = "application/openmetrics-text;version=0.0.1"
	promText1_0_0 = "text/plain;version=1.0.0"
	promText0_0_4 = "text/plain;version=0.0.4"
)

// defaultScrapeProtocols is Prometheus's default scrape_protocols.
var defaultScrapeProtocols = []string{omText1_0_0, omText0_0_1, promText1_0_0, promText0_0_4}

// prometheusAccept is the Accept header a Prometheus sends when it scrapes
// with the given protocols, built as its scrape package's acceptHeader.
func prometheusAccept(protocols []string) string {
	var vals []string
	weight := 7 // len(config.ScrapeProtocolsHeaders) + 1
	for _, v := range protocols {
		if v == promText1_0_0 || v == omText1_0_0 {
			v += ";escaping=allow-utf-8"
		}
		vals = append(vals, fmt.Sprintf("%s;q=0.%d", v, weight))
		weight--
	}
	return strings.Join(append(vals, fmt.Sprintf("*/*;q=0.%d", weight)), ",")
}

func scrape(t *testing.T, h http.Handler, accept string) (contentType, body string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/stats/prometheus", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	return rec.Header().Get("Content-Type"), rec.Body.String()
}

// scraped is what Prometheus's own parser read from one scrape: the
// series (as labels strings, __name__ included) and their exemplars.
type scraped struct {
	series    []string
	exemplars map[string][]exemplar.Exemplar
	types     map[string]string
}

// parseScrape parses body as Prometheus does, choosing the parser from
// contentType.
func parseScrape(t *testing.T, contentType, body string) scraped {
	t.Helper()
	p, err := textparse.New([]byte(body), contentType, labels.NewSymbolTable(), textparse.ParserOptions{})
	if err != nil {
		t.Fatalf("textparse.New(%q): %v", contentType, err)
	}
	out := scraped{exemplars: map[string][]exemplar.Exemplar{}, types: map[string]string{}}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Prometheus's parser (%s) rejects the scrape: %v\n%s", contentType, err, body)
		}
		switch e {
		case textparse.EntryType:
			name, typ := p.Type()
			out.types[string(name)] = string(typ)
		case textparse.EntrySeries:
			var l labels.Labels
			p.Labels(&l)
			out.series = append(out.series, l.String())
			var ex exemplar.Exemplar
			for p.Exemplar(&ex) {
				out.exemplars[l.String()] = append(out.exemplars[l.String()], ex)
			}
		}
	}
	slices.Sort(out.series)
	return out
}

// TestOpenMetricsExemplars: a scraper that asks for OpenMetrics as
// Prometheus does gets it, Prometheus's OpenMetrics parser accepts it, the
// sampled observations are exemplars on their buckets, and the series are
// exactly those of Envoy's text format.
func TestOpenMetricsExemplars(t *testing.T) {
	s := newTestStore(t, Config{FixedTags: []Tag{{Name: "node_id", Value: "front-proxy"}}})
	scriptedTraffic(s)
	tracedTraffic(s)
	h := s.PrometheusHandler()

	ct, body := scrape(t, h, prometheusAccept(defaultScrapeProtocols))
	if ct != contentTypeOpenMetrics {
		t.Fatalf("Content-Type %q, want %q", ct, contentTypeOpenMetrics)
	}
	if !strings.HasSuffix(body, "\n# EOF\n") {
		t.Errorf("OpenMetrics body does not end with # EOF")
	}
	om := parseScrape(t, ct, body)
	textCT, textBody := scrape(t, h, prometheusAccept([]string{promText0_0_4}))
	if textCT != contentTypeText {
		t.Fatalf("text scrape: Content-Type %q", textCT)
	}
	text := parseScrape(t, textCT, textBody)
	if !slices.Equal(om.series, text.series) {
		t.Errorf("series differ between formats:\nOpenMetrics only: %v\ntext only: %v", minus(om.series, text.series), minus(text.series, om.series))
	}
	if len(text.exemplars) != 0 {
		t.Errorf("the text format carries exemplars: %v", text.exemplars)
	}
	if om.types["envoy_cluster_upstream_rq"] != "unknown" || om.types["envoy_cluster_upstream_rq_total"] != "unknown" ||
		om.types["envoy_cluster_upstream_rq_time"] != "histogram" || om.types["envoy_cluster_upstream_cx_active"] != "gauge" {
		t.Errorf("OpenMetrics types: %v", om.types)
	}

	want := map[string]struct {
		trace TraceID
		value float64
	}{
		`{__name__="envoy_cluster_upstream_rq_time_bucket", envoy_cluster_name="catalog", le="25.0", node_id="front-proxy"}`:                    {testTraceID(1), 12},
		`{__name__="envoy_http_downstream_rq_time_bucket", envoy_http_conn_manager_prefix="ingress", le="25.0", node_id="front-proxy"}`:         {testTraceID(1), 13},
		`{__name__="envoy_http_downstream_rq_time_bucket", envoy_http_conn_manager_prefix="ingress", le="5.0", node_id="front-proxy"}`:          {testTraceID(3), 2},
		`{__name__="envoy_cluster_upstream_rq_time_bucket", envoy_cluster_name="catalog", le="500.0", node_id="front-proxy"}`:                   {testTraceID(2), 300},
		`{__name__="envoy_cluster_canary_upstream_rq_time_bucket", envoy_cluster_name="catalog", le="500.0", node_id="front-proxy"}`:            {testTraceID(2), 300},
		`{__name__="envoy_cluster_zone_a_b_upstream_rq_time_bucket", envoy_cluster_name="catalog", le="500.0", node_id="front-proxy"}`:          {testTraceID(2), 300},
		`{__name__="envoy_vhost_route_upstream_rq_time_bucket", envoy_route="api", envoy_virtual_host="vh", le="500.0", node_id="front-proxy"}`: {testTraceID(2), 300},
	}
	for series, w := range want {
		exs := om.exemplars[series]
		if len(exs) != 1 {
			t.Errorf("%s: %d exemplars, want 1 (all: %v)", series, len(exs), om.exemplars)
			continue
		}
		ex := exs[0]
		if got := ex.Labels.Get("trace_id"); got != w.trace.String() || ex.Labels.Len() != 1 {
			t.Errorf("%s: exemplar labels %v, want trace_id=%s", series, ex.Labels, w.trace)
		}
		if ex.Value != w.value || !ex.HasTs || ex.Ts <= 0 {
			t.Errorf("%s: exemplar value %v ts %v (has %v), want %v with a timestamp", series, ex.Value, ex.Ts, ex.HasTs, w.value)
		}
	}
	if len(om.exemplars) != len(want) {
		t.Errorf("%d series with exemplars, want %d: %v", len(om.exemplars), len(want), om.exemplars)
	}
}

// TestPrometheusTextUnchangedByAccept: without an Accept header, with
// curl's */*, and with Prometheus asking for text only, the body is
// Envoy's text format, the same bytes each time, with no exemplars even
// though the histograms have some.
func TestPrometheusTextUnchangedByAccept(t *testing.T) {
	s := newTestStore(t, Config{})
	scriptedTraffic(s)
	tracedTraffic(s)
	h := s.PrometheusHandler()
	_, plain := scrape(t, h, "")
	for _, accept := range []string{"*/*", "text/plain", "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5",
		prometheusAccept([]string{promText1_0_0, promText0_0_4})} {
		ct, body := scrape(t, h, accept)
		if ct != contentTypeText || body != plain {
			t.Errorf("Accept %q: Content-Type %q and a different body", accept, ct)
		}
	}
	if strings.Contains(plain, "trace_id") || strings.Contains(plain, "# EOF") {
		t.Errorf("text format has OpenMetrics parts:\n%s", plain)
	}
	ct, _ := scrape(t, h, "application/openmetrics-text;version=0.0.1")
	if ct != "application/openmetrics-text; version=0.0.1; charset=utf-8" {
		t.Errorf("OpenMetrics 0.0.1 asked, Content-Type %q", ct)
	}
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
