package stats

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestResponseCodeCollapse(t *testing.T) {
	s := newTestStore(t, Config{})
	c := s.ClusterStats("b")
	z := s.ZoneStats("b", "us-east-1a", "us-east-1b")
	for _, code := range []int{200, 200, 299, 503, 599, 700, 0, -1, 418} {
		c.RecordResponse(code, true)
		c.RecordRetriedResponse(code)
		z.RecordResponse(code)
	}
	for _, tc := range []struct {
		name string
		got  uint64
		want uint64
	}{
		{"upstream_rq_200", c.Responses.Code(200).Value(), 2},
		{"upstream_rq_503", c.Responses.Code(503).Value(), 1},
		{"upstream_rq_418", c.Responses.Code(418).Value(), 1},
		{"upstream_rq_2xx (200,200,299)", c.Responses.Class(2).Value(), 3},
		{"upstream_rq_5xx (503,599)", c.Responses.Class(5).Value(), 2},
		{"upstream_rq_completed", c.Responses.Completed.Value(), 9},
		{"canary.upstream_rq_2xx", c.Canary.Class(2).Value(), 3},
		{"retry.upstream_rq_5xx", c.Retry.Class(5).Value(), 2},
		{"zone upstream_rq_200", z.Responses.Code(200).Value(), 2},
		// 299, 599, 700, 0, -1 collapse in each of responses, canary, retry, zone.
		{"upstream_rq_code_collapsed", c.UpstreamRqCodeCollapsed.Value(), 5 * 4},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	if c.Responses.Code(299) != nil || c.Responses.Code(700) != nil || c.Retry.Completed != nil {
		t.Error("unexpected counters")
	}
	if s.Find("cluster.b.upstream_rq_299") != nil {
		t.Error("an unregistered code got its own stat")
	}
	// Route collapse has its own counter.
	r := s.RouteStats("vh", "api")
	r.RecordResponse(299)
	if r.UpstreamRqCodeCollapsed.Value() != 1 || r.Responses.Class(2).Value() != 1 {
		t.Error("route collapse")
	}
}

// TestCardinalityFlood: a flood of random response codes and times adds no
// stats; a flood of configured names stops at the cap and is counted.
func TestCardinalityFlood(t *testing.T) {
	s := newTestStore(t, Config{MaxStats: 2000})
	c := s.ClusterStats("b")
	n := s.Len()
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100_000 {
		code := rng.IntN(2000) - 500
		c.RecordResponse(code, rng.IntN(2) == 0)
		c.RecordRetriedResponse(code)
		c.RecordResponseTime(rng.Uint64N(1<<40), false, TraceID{})
	}
	if s.Len() != n {
		t.Errorf("request data created stats: %d -> %d", n, s.Len())
	}
	for i := range 200 {
		cl := s.ClusterStats(fmt.Sprintf("flood%d", i))
		cl.UpstreamRqTotal.Inc() // overflow stats must still work
		cl.RecordResponse(200, true)
		cl.RecordResponseTime(5, true, TraceID{})
		s.RouteStats("vh", fmt.Sprint(i)).RecordResponse(200)
	}
	if s.Len() > 2000+5 { // +5: the store's own stats are exempt
		t.Errorf("store grew to %d stats past the cap", s.Len())
	}
	if s.OverflowCount() == 0 {
		t.Error("stats.overflow not counted")
	}
	// The overflow stand-ins are never exported.
	_, body := get(t, s.PrometheusHandler(), "/stats/prometheus")
	if strings.Contains(body, "overflow_stat") {
		t.Error("overflow stand-in listed")
	}
	parseProm(t, body)
}

func TestSameNamesSameStats(t *testing.T) {
	s := newTestStore(t, Config{})
	//nolint:staticcheck // SA4000: calling each constructor twice is the point
	if s.ClusterStats("a") != s.ClusterStats("a") || s.ClusterStats("a") == s.ClusterStats("b") {
		t.Error("ClusterStats identity")
	}
	//nolint:staticcheck // SA4000: calling each constructor twice is the point
	if s.HTTPConnManagerStats("p") != s.HTTPConnManagerStats("p") || s.ListenerStats("x:1") != s.ListenerStats("x:1") ||
		s.RouteStats("v", "r") != s.RouteStats("v", "r") || s.ServerStats() != s.ServerStats() ||
		s.ZoneStats("a", "z1", "z2") != s.ZoneStats("a", "z1", "z2") || s.ListenerHTTPStats("x:1", "p") != s.ListenerHTTPStats("x:1", "p") {
		t.Error("constructor identity")
	}
	// Zone stats created before the cluster share its collapse counter.
	z := s.ZoneStats("late", "z1", "z2")
	z.RecordResponse(299)
	if s.ClusterStats("late").UpstreamRqCodeCollapsed.Value() != 1 {
		t.Error("zone collapse counter is not the cluster's")
	}
	n := s.Len()
	s.ClusterStats("a")
	if s.Len() != n {
		t.Error("second call created stats")
	}
}

func TestNamesAndTags(t *testing.T) {
	s := newTestStore(t, Config{})
	c := s.ClusterStats("svc.ns") // dotted names keep their full value as the tag
	l := s.ListenerStats("[::1]:8080")
	lh := s.ListenerHTTPStats("0.0.0.0:80", "ingress")
	z := s.ZoneStats("b", "us-east-1a", "eu|west")
	r := s.RouteStats("vh", "api")
	tests := []struct {
		st        Stat
		name, ext string
		tags      []Tag
		prom      string
	}{
		{c.Responses.Code(200), "cluster.svc.ns.upstream_rq_200", "cluster.upstream_rq",
			[]Tag{{TagResponseCode, "200"}, {TagClusterName, "svc.ns"}}, `envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="svc.ns"}`},
		{c.Retry.Class(5), "cluster.svc.ns.retry.upstream_rq_5xx", "cluster.retry.upstream_rq_xx",
			[]Tag{{TagResponseCodeClass, "5"}, {TagClusterName, "svc.ns"}}, `envoy_cluster_retry_upstream_rq_xx{envoy_response_code_class="5",envoy_cluster_name="svc.ns"}`},
		{c.CircuitBreakers.RqOpen, "cluster.svc.ns.circuit_breakers.default.rq_open", "cluster.circuit_breakers.default.rq_open",
			[]Tag{{TagClusterName, "svc.ns"}}, `envoy_cluster_circuit_breakers_default_rq_open{envoy_cluster_name="svc.ns"}`},
		{l.DownstreamCxActive, "listener.[__1]_8080.downstream_cx_active", "listener.downstream_cx_active",
			[]Tag{{TagListenerAddress, "[__1]_8080"}}, `envoy_listener_downstream_cx_active{envoy_listener_address="[__1]_8080"}`},
		{lh.Responses.Class(2), "listener.0.0.0.0_80.http.ingress.downstream_rq_2xx", "listener.http.downstream_rq_xx",
			[]Tag{{TagResponseCodeClass, "2"}, {TagHTTPConnManager, "ingress"}, {TagListenerAddress, "0.0.0.0_80"}}, ""},
		{z.Responses.Code(503), "cluster.b.zone.us-east-1a.eu_west.upstream_rq_503", "cluster.zone.us-east-1a.eu_west.upstream_rq",
			[]Tag{{TagResponseCode, "503"}, {TagClusterName, "b"}}, `envoy_cluster_zone_us_east_1a_eu_west_upstream_rq{envoy_response_code="503",envoy_cluster_name="b"}`},
		{r.Responses.Time, "vhost.vh.route.api.upstream_rq_time", "vhost.route.upstream_rq_time",
			[]Tag{{TagVirtualHost, "vh"}, {TagRoute, "api"}}, ""},
		{s.ServerStats().Uptime, "server.uptime", "server.uptime", nil, "envoy_server_uptime{}"},
	}
	for _, tc := range tests {
		if tc.st.Name() != tc.name || tc.st.TagExtractedName() != tc.ext || !slices.Equal(tc.st.Tags(), tc.tags) {
			t.Errorf("%s: got %s | %s | %v, want %s | %s | %v", tc.name, tc.st.Name(), tc.st.TagExtractedName(), tc.st.Tags(), tc.name, tc.ext, tc.tags)
		}
		if tc.prom != "" {
			var m *meta
			switch v := tc.st.(type) {
			case *Counter:
				m = &v.meta
			case *Gauge:
				m = &v.meta
			case *Histogram:
				m = &v.meta
			}
			if got := m.promName + "{" + m.promLabels + "}"; got != tc.prom {
				t.Errorf("%s: prometheus %s, want %s", tc.name, got, tc.prom)
			}
		}
	}
}

// TestCatalogueMatchesStore: every stat the constructors create belongs to
// exactly one catalogue family, and every family has stats.
func TestCatalogueMatchesStore(t *testing.T) {
	fams := Catalogue()
	type compiled struct {
		f   Family
		re  *regexp.Regexp
		ext *regexp.Regexp
	}
	tmplRE := func(tmpl string) *regexp.Regexp {
		q := regexp.QuoteMeta(tmpl)
		q = regexp.MustCompile(`\\\{[a-z_.\\]+\\\}`).ReplaceAllString(q, `[^.]+(?:\.[^.]+)*?`)
		return regexp.MustCompile("^" + q + "$")
	}
	var cs []compiled
	seen := map[string]bool{}
	for _, f := range fams {
		if seen[f.Name] {
			t.Errorf("duplicate family %s", f.Name)
		}
		seen[f.Name] = true
		if f.Help == "" || f.PrometheusName == "" || len(f.Tags) != len(f.PrometheusLabels) {
			t.Errorf("incomplete family %+v", f)
		}
		cs = append(cs, compiled{f, tmplRE(f.Name), tmplRE(f.TagExtractedName)})
	}
	s := newTestStore(t, Config{})
	s.ClusterStats("c")
	s.CircuitBreakerRemainingStats("c")
	s.ZoneStats("c", "z1", "z2")
	s.HTTPConnManagerStats("p")
	s.ListenerStats("1.2.3.4:5")
	s.ListenerHTTPStats("1.2.3.4:5", "p")
	s.ListenerCertStats("1.2.3.4:5", "/etc/certs/cert.pem")
	s.RouteStats("v", "r")
	s.ServerStats()
	s.TracerStats()
	s.HTTP2CodecStats()
	s.LocalRateLimitStats("lrl")
	used := map[string]bool{}
	var all []Stat
	for _, c := range s.Counters() {
		all = append(all, c)
	}
	for _, g := range s.Gauges() {
		all = append(all, g)
	}
	for _, h := range s.Histograms() {
		all = append(all, h)
	}
	for _, st := range all {
		var match []Family
		for _, c := range cs {
			if c.f.Kind == st.Kind() && c.re.MatchString(st.Name()) && c.ext.MatchString(st.TagExtractedName()) && len(c.f.Tags) == len(st.Tags()) {
				match = append(match, c.f)
			}
		}
		if len(match) != 1 {
			t.Errorf("%s (%s) matches %d families", st.Name(), st.Kind(), len(match))
			continue
		}
		for i, tg := range st.Tags() {
			if tg.Name != match[0].Tags[i] {
				t.Errorf("%s: tag %d is %s, family says %s", st.Name(), i, tg.Name, match[0].Tags[i])
			}
		}
		used[match[0].Name] = true
	}
	for _, f := range fams {
		if !used[f.Name] {
			t.Errorf("family %s has no stat", f.Name)
		}
	}
	// The list, spot-checked.
	for _, want := range []string{
		"http.{envoy.http_conn_manager_prefix}.downstream_cx_length_ms",
		"http.{envoy.http_conn_manager_prefix}.tracing.random_sampling",
		"listener.{envoy.listener_address}.downstream_cx_length_ms",
		"cluster.{envoy.cluster_name}.membership_healthy",
		"cluster.{envoy.cluster_name}.health_check.attempt",
		"cluster.{envoy.cluster_name}.outlier_detection.ejections_active",
		"cluster.{envoy.cluster_name}.circuit_breakers.default.rq_retry_open",
		"cluster.{envoy.cluster_name}.retry.upstream_rq_{envoy.response_code}",
		"cluster.{envoy.cluster_name}.canary.upstream_rq_time",
		"cluster.{envoy.cluster_name}.lb_healthy_panic",
		"server.days_until_first_cert_expiring",
		"http2.rx_reset",
		"http2.inbound_window_update_frames_flood",
	} {
		if !seen[want] {
			t.Errorf("catalogue lacks %s", want)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{HistogramBuckets: []float64{1, 1}}, "stats_config.histogram_buckets[1]: 1 is not greater than the previous bucket 1"},
		{Config{HistogramBuckets: []float64{0}}, "stats_config.histogram_buckets[0]: 0 is not a positive finite number"},
		{Config{MaxStats: -1}, "stats_config.max_stats: -1 is negative"},
	} {
		if _, err := NewStore(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	s := newTestStore(t, Config{HistogramBuckets: []float64{0.5, 1, 5}})
	h := s.ClusterStats("b").UpstreamCxConnectMs
	for _, v := range []uint64{0, 1, 1, 2, 5, 6, 100} {
		h.Record(v)
	}
	snap := h.Snapshot()
	if !slices.Equal(snap.Counts, []uint64{1, 2, 2, 2}) || !slices.Equal(snap.Sums, []uint64{0, 2, 7, 106}) {
		t.Errorf("counts %v sums %v", snap.Counts, snap.Sums)
	}
	if !slices.Equal(snap.Cumulative(), []uint64{1, 3, 5}) || snap.Count() != 7 || snap.Sum() != 115 {
		t.Errorf("cumulative %v", snap.Cumulative())
	}
	if q, ok := snap.Quantile(1); !ok || q != 53 { // mean of the +Inf bucket
		t.Errorf("p100 = %v", q)
	}
}

func TestServerStats(t *testing.T) {
	s := newTestStore(t, Config{})
	v := s.ServerStats()
	v.SetDaysUntilFirstCertExpiring(12)
	s.refreshServer()
	if v.Live.Value() != 1 || v.Concurrency.Value() == 0 || v.MemoryAllocated.Value() == 0 || v.MemoryHeapSize.Value() == 0 || v.DaysUntilFirstCertExpiring.Value() != 12 {
		t.Errorf("live=%d concurrency=%d alloc=%d heap=%d days=%d", v.Live.Value(), v.Concurrency.Value(), v.MemoryAllocated.Value(), v.MemoryHeapSize.Value(), v.DaysUntilFirstCertExpiring.Value())
	}
}

func TestSampleQueueConcurrent(t *testing.T) {
	q := newSampleQueue(1024)
	const producers, per = 8, 5000
	var wg sync.WaitGroup
	var pushed [producers]int
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				if q.push(sample{hist: uint32(p), v: uint64(i)}) {
					pushed[p]++
				}
			}
		}()
	}
	got := make([]int, producers)
	last := make([]int64, producers)
	for i := range last {
		last[i] = -1
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drain := func() {
		for {
			s, ok := q.pop()
			if !ok {
				return
			}
			got[s.hist]++
			if int64(s.v) <= last[s.hist] {
				t.Errorf("producer %d: %d after %d (FIFO per producer)", s.hist, s.v, last[s.hist])
			}
			last[s.hist] = int64(s.v)
		}
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
		}
		drain()
	}
	drain()
	for p := range producers {
		if got[p] != pushed[p] {
			t.Errorf("producer %d: pushed %d, popped %d", p, pushed[p], got[p])
		}
	}
}

// TestHotPathAllocs proves the request path allocates nothing, with a
// timer-mode sink installed (the costliest case).
func TestHotPathAllocs(t *testing.T) {
	s := newTestStore(t, Config{})
	f := newTestFlusher(t, s, SinkConfig{Address: "127.0.0.1:9"})
	_ = f
	c := s.ClusterStats("b")
	h := s.HTTPConnManagerStats("p")
	for name, fn := range map[string]func(){
		"Counter.Inc":         func() { c.UpstreamRqTotal.Inc() },
		"Gauge.Inc/Dec":       func() { c.UpstreamRqActive.Inc(); c.UpstreamRqActive.Dec() },
		"RecordResponse":      func() { c.RecordResponse(503, true); h.RecordResponse(503) },
		"RecordResponse(299)": func() { c.RecordResponse(299, false) },
		"Histogram.Record":    func() { c.RecordResponseTime(42, true, TraceID{}) },
	} {
		if n := testing.AllocsPerRun(1000, fn); n != 0 {
			t.Errorf("%s: %v allocs/op", name, n)
		}
	}
}
