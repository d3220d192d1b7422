package cluster

import (
	"log/slog"
	"math"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

// odFixture is a static cluster with outlier detection, a clock the test
// moves by hand and real stats. Nothing runs in the background: the test
// calls sweep itself, as the interval timer would.
type odFixture struct {
	t     *testing.T
	c     *Cluster
	hosts []*Host
	now   time.Time
	stats *stats.ClusterStats
}

// fixedRand returns a random source that always draws v.
func fixedRand(v uint64) randSource { return func() uint64 { return v } }

// newODFixture builds an n-host cluster whose outlier_detection is
// Envoy's defaults (through config.ApplyDefaults) changed by edit.
func newODFixture(t *testing.T, n int, edit func(*config.OutlierDetection), rnd randSource) *odFixture {
	t.Helper()
	weights := make([]int, n)
	for i := range weights {
		weights[i] = 1
	}
	cl := staticCluster("c", "round_robin", weights...)
	cl.OutlierDetection = &config.OutlierDetection{}
	full := config.Config{Clusters: []config.Cluster{cl}}
	full.ApplyDefaults()
	cl = full.Clusters[0]
	if edit != nil {
		edit(cl.OutlierDetection)
	}
	store, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if rnd == nil {
		rnd = fixedRand(0)
	}
	c, err := newCluster(&cl, Options{rnd: rnd, ClusterStats: store.ClusterStats}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("newCluster: %v", err)
	}
	t.Cleanup(c.close)
	f := &odFixture{t: t, c: c, hosts: c.Hosts(), now: time.Unix(1_000_000, 0), stats: store.ClusterStats("c")}
	c.od.now = func() time.Time { return f.now }
	return f
}

// send reports n responses with status code from host i.
func (f *odFixture) send(i, code, n int) {
	for range n {
		f.c.ObserveResponse(f.hosts[i], code, nil)
	}
}

// sweep advances the clock by d and runs an interval sweep.
func (f *odFixture) sweep(d time.Duration) {
	f.now = f.now.Add(d)
	f.c.od.sweep(f.now)
}

// ejected returns the indexes of the ejected hosts.
func (f *odFixture) ejected() []int {
	var out []int
	for i, h := range f.hosts {
		if h.FailedOutlierCheck() {
			out = append(out, i)
		}
	}
	return out
}

// step is one input of a table test: responses from a host, or a sweep.
type step struct {
	host, code, n int
	sweep         time.Duration // > 0: advance the clock and sweep instead
	timeout       bool          // with code 0: a failure without response
}

func run(f *odFixture, steps []step) {
	for _, s := range steps {
		switch {
		case s.sweep > 0:
			f.sweep(s.sweep)
		case s.code == 0:
			for range s.n {
				f.c.ObserveFailure(f.hosts[s.host], s.timeout)
			}
		default:
			f.send(s.host, s.code, s.n)
		}
	}
}

func TestOutlierConsecutiveErrors(t *testing.T) {
	allowAll := func(o *config.OutlierDetection) { o.MaxEjectionPercent = 100 }
	tests := []struct {
		name        string
		hosts       int
		edit        func(*config.OutlierDetection)
		steps       []step
		wantEjected []int
		want        map[string]uint64 // outlier_detection.* stats
	}{
		{
			name: "four 5xx and a success: no ejection", hosts: 3, edit: allowAll,
			steps:       []step{{host: 0, code: 500, n: 4}, {host: 0, code: 200, n: 1}, {host: 0, code: 500, n: 4}},
			wantEjected: nil,
			want:        map[string]uint64{"ejections_detected_consecutive_5xx": 0, "ejections_active": 0},
		},
		{
			name: "five 500s eject", hosts: 3, edit: allowAll,
			steps:       []step{{host: 1, code: 500, n: 5}},
			wantEjected: []int{1},
			want: map[string]uint64{
				"ejections_detected_consecutive_5xx": 1, "ejections_enforced_consecutive_5xx": 1,
				"ejections_enforced_total": 1, "ejections_active": 1, "ejections_total": 1,
				"ejections_consecutive_5xx": 1, "ejections_detected_consecutive_gateway_failure": 0,
			},
		},
		{
			name: "five 503s: the gateway failure is detected but not enforced (enforcing 0), the 5xx ejects", hosts: 3, edit: allowAll,
			steps:       []step{{host: 2, code: 503, n: 5}},
			wantEjected: []int{2},
			want: map[string]uint64{
				"ejections_detected_consecutive_gateway_failure": 1, "ejections_enforced_consecutive_gateway_failure": 0,
				"ejections_detected_consecutive_5xx": 1, "ejections_enforced_consecutive_5xx": 1, "ejections_enforced_total": 1,
			},
		},
		{
			name: "gateway failures enforced, 5xx off", hosts: 3,
			edit: func(o *config.OutlierDetection) {
				o.MaxEjectionPercent = 100
				o.Consecutive5xx = 0
				o.EnforcingConsecutiveGatewayFailure = 100
			},
			steps:       []step{{host: 0, code: 0, n: 3}, {host: 0, code: 0, n: 2, timeout: true}},
			wantEjected: []int{0},
			want: map[string]uint64{
				"ejections_detected_consecutive_gateway_failure": 1, "ejections_enforced_consecutive_gateway_failure": 1,
				"ejections_detected_consecutive_5xx": 0, "ejections_total": 0,
			},
		},
		{
			name: "a 500 breaks a run of gateway failures", hosts: 3,
			edit: func(o *config.OutlierDetection) {
				o.MaxEjectionPercent = 100
				o.Consecutive5xx = 0
				o.EnforcingConsecutiveGatewayFailure = 100
			},
			steps:       []step{{host: 0, code: 502, n: 4}, {host: 0, code: 500, n: 1}, {host: 0, code: 504, n: 4}},
			wantEjected: nil,
			want:        map[string]uint64{"ejections_detected_consecutive_gateway_failure": 0},
		},
		{
			name: "default max_ejection_percent 10 of 3 hosts: overflow", hosts: 3,
			steps:       []step{{host: 0, code: 500, n: 5}},
			wantEjected: nil,
			want:        map[string]uint64{"ejections_detected_consecutive_5xx": 1, "ejections_overflow": 1, "ejections_enforced_total": 0},
		},
		{
			name: "always_eject_one_host lifts the limit for the first only", hosts: 3,
			edit:        func(o *config.OutlierDetection) { o.AlwaysEjectOneHost = true },
			steps:       []step{{host: 0, code: 500, n: 5}, {host: 1, code: 500, n: 5}},
			wantEjected: []int{0},
			want:        map[string]uint64{"ejections_enforced_total": 1, "ejections_overflow": 1, "ejections_active": 1},
		},
		{
			name: "34% of 3 hosts allows one ejection, not two", hosts: 3,
			edit:        func(o *config.OutlierDetection) { o.MaxEjectionPercent = 34 },
			steps:       []step{{host: 2, code: 500, n: 5}, {host: 0, code: 500, n: 5}},
			wantEjected: []int{2},
			want:        map[string]uint64{"ejections_enforced_total": 1, "ejections_overflow": 1},
		},
		{
			name: "an overflowed detection resets the counter: five more to detect again", hosts: 3,
			steps: []step{{host: 0, code: 500, n: 9}},
			want:  map[string]uint64{"ejections_detected_consecutive_5xx": 1, "ejections_overflow": 1},
		},
		{
			name: "an ejected host keeps counting but is not ejected twice", hosts: 3, edit: allowAll,
			steps:       []step{{host: 0, code: 500, n: 12}},
			wantEjected: []int{0},
			want:        map[string]uint64{"ejections_detected_consecutive_5xx": 1, "ejections_enforced_total": 1},
		},
		{
			name: "enforcing 50%: a draw of 50 of 100 is not enforced", hosts: 3,
			edit: func(o *config.OutlierDetection) {
				o.MaxEjectionPercent = 100
				o.EnforcingConsecutive5xx = 50
			},
			steps: []step{{host: 0, code: 500, n: 5}},
			want:  map[string]uint64{"ejections_detected_consecutive_5xx": 1, "ejections_total": 1, "ejections_enforced_total": 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 1<<63 draws 50 from intN(100).
			f := newODFixture(t, tt.hosts, tt.edit, fixedRand(1<<63))
			run(f, tt.steps)
			if got := f.ejected(); !slices.Equal(got, tt.wantEjected) {
				t.Errorf("ejected hosts %v, want %v", got, tt.wantEjected)
			}
			checkODStats(t, f.stats, tt.want)
		})
	}
}

func checkODStats(t *testing.T, cs *stats.ClusterStats, want map[string]uint64) {
	t.Helper()
	s := &cs.OutlierDetection
	got := map[string]uint64{
		"ejections_active":                               s.EjectionsActive.Value(),
		"ejections_overflow":                             s.EjectionsOverflow.Value(),
		"ejections_total":                                s.EjectionsTotal.Value(),
		"ejections_enforced_total":                       s.EjectionsEnforcedTotal.Value(),
		"ejections_consecutive_5xx":                      s.EjectionsConsecutive5xx.Value(),
		"ejections_detected_consecutive_5xx":             s.EjectionsDetectedConsecutive5xx.Value(),
		"ejections_enforced_consecutive_5xx":             s.EjectionsEnforcedConsecutive5xx.Value(),
		"ejections_detected_consecutive_gateway_failure": s.EjectionsDetectedConsecutiveGatewayFail.Value(),
		"ejections_enforced_consecutive_gateway_failure": s.EjectionsEnforcedConsecutiveGatewayFail.Value(),
		"ejections_detected_success_rate":                s.EjectionsDetectedSuccessRate.Value(),
		"ejections_enforced_success_rate":                s.EjectionsEnforcedSuccessRate.Value(),
		"ejections_detected_failure_percentage":          s.EjectionsDetectedFailurePercentage.Value(),
		"ejections_enforced_failure_percentage":          s.EjectionsEnforcedFailurePercentage.Value(),
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Fatalf("test asks for unknown stat %q", name)
		}
		if g != w {
			t.Errorf("outlier_detection.%s = %d, want %d", name, g, w)
		}
	}
}

func TestOutlierEjectedHostGetsNoTraffic(t *testing.T) {
	f := newODFixture(t, 3, func(o *config.OutlierDetection) { o.MaxEjectionPercent = 50 }, nil)
	f.send(1, 503, 5)
	for range 300 {
		if h := f.c.Pick(nil); h == f.hosts[1] {
			t.Fatal("picked the ejected host")
		}
	}
	if f.c.set.Load().panic {
		t.Error("panic mode with 2 of 3 hosts healthy")
	}
	if got := f.hosts[1].HealthFlags(); got != "/failed_outlier_check" {
		t.Errorf("health flags %q, want /failed_outlier_check", got)
	}
}

// TestOutlierEjectionTime follows one host through repeated ejections:
// base × backoff, capped at max_ejection_time, and the backoff shrinking
// again while the host stays healthy (Envoy's ejectTimeBackoff).
func TestOutlierEjectionTime(t *testing.T) {
	f := newODFixture(t, 2, func(o *config.OutlierDetection) {
		o.MaxEjectionPercent = 100
		o.Interval = config.Duration(time.Second)
		o.BaseEjectionTime = config.Duration(10 * time.Second)
		o.MaxEjectionTime = config.Duration(25 * time.Second)
	}, nil)
	h := f.hosts[0]
	eject := func() {
		t.Helper()
		f.send(0, 500, 5)
		if !h.FailedOutlierCheck() {
			t.Fatal("five 500s did not eject the host")
		}
	}
	// ejectedFor sweeps every second and returns how long the host stayed
	// ejected, to the second.
	ejectedFor := func() time.Duration {
		t.Helper()
		start := f.now
		for range 120 {
			f.sweep(time.Second)
			if !h.FailedOutlierCheck() {
				return f.now.Sub(start)
			}
		}
		t.Fatal("host still ejected after 120s")
		return 0
	}
	for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second, 25 * time.Second} {
		eject()
		if got := ejectedFor(); got != want {
			t.Errorf("ejection %d lasted %v, want %v", i+1, got, want)
		}
	}
	if h.od.numEjections != 4 {
		t.Errorf("numEjections = %d, want 4", h.od.numEjections)
	}
	// The backoff stopped at 4 (4 × 10s ≥ 25s + 10s). Healthy intervals
	// take it down by one each, starting one interval after the return.
	if h.od.backoff != 4 {
		t.Fatalf("backoff = %d, want 4", h.od.backoff)
	}
	f.sweep(time.Second)
	f.sweep(time.Second)
	if h.od.backoff != 2 {
		t.Fatalf("backoff after two healthy intervals = %d, want 2", h.od.backoff)
	}
	eject()
	if got := ejectedFor(); got != 25*time.Second {
		t.Errorf("ejection with backoff 3 lasted %v, want 25s (capped)", got)
	}
	for range 10 {
		f.sweep(time.Second)
	}
	if h.od.backoff != 0 {
		t.Fatalf("backoff after ten healthy intervals = %d, want 0", h.od.backoff)
	}
	eject()
	if got := ejectedFor(); got != 10*time.Second {
		t.Errorf("ejection after a long healthy spell lasted %v, want the base 10s", got)
	}
	if got := f.stats.OutlierDetection.EjectionsActive.Value(); got != 0 {
		t.Errorf("ejections_active = %d after the last return, want 0", got)
	}
}

func TestOutlierEjectionJitter(t *testing.T) {
	// intN(3001ms) of a draw of 1<<63 is 1500ms.
	f := newODFixture(t, 2, func(o *config.OutlierDetection) {
		o.MaxEjectionPercent = 100
		o.Interval = config.Duration(500 * time.Millisecond)
		o.BaseEjectionTime = config.Duration(time.Second)
		o.MaxEjectionTimeJitter = config.Duration(3 * time.Second)
	}, fixedRand(1<<63))
	f.send(0, 500, 5)
	f.sweep(2 * time.Second)
	if !f.hosts[0].FailedOutlierCheck() {
		t.Fatal("returned after 2s, want 1s + 1.5s jitter")
	}
	f.sweep(500 * time.Millisecond)
	if f.hosts[0].FailedOutlierCheck() {
		t.Fatal("still ejected after 2.5s, want back after 1s + 1.5s jitter")
	}
}

func TestOutlierSuccessRate(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*config.OutlierDetection)
		volumes     []int // requests per host in the interval
		successes   []int
		wantEjected []int
		want        map[string]uint64
	}{
		{
			// Envoy's worked example: {50, 100, 100, 100, 100}, mean 90,
			// stdev 20, threshold 90 − 1.9 × 20 = 52.
			name:        "one host at 50% among four at 100%",
			volumes:     []int{100, 100, 100, 100, 100},
			successes:   []int{50, 100, 100, 100, 100},
			wantEjected: []int{0},
			want:        map[string]uint64{"ejections_detected_success_rate": 1, "ejections_enforced_success_rate": 1, "ejections_total": 1},
		},
		{
			name:      "the outlier has too few requests: four valid hosts are below the minimum of 5",
			volumes:   []int{99, 100, 100, 100, 100},
			successes: []int{49, 100, 100, 100, 100},
			want:      map[string]uint64{"ejections_detected_success_rate": 0},
		},
		{
			// With four hosts and factor 1.9 one low host can never fall
			// below mean − 1.9 stdev; factor 1.0 lets it.
			name: "minimum hosts lowered to 4, factor 1.0",
			edit: func(o *config.OutlierDetection) {
				o.SuccessRateMinimumHosts = 4
				o.SuccessRateStdevFactor = 1000
			},
			volumes:     []int{100, 100, 100, 100, 10},
			successes:   []int{40, 100, 100, 100, 10},
			wantEjected: []int{0},
			want:        map[string]uint64{"ejections_detected_success_rate": 1},
		},
		{
			// Mean 97, stdev 4: the threshold is 89.4.
			name:      "spread within the threshold",
			volumes:   []int{100, 100, 100, 100, 100},
			successes: []int{90, 95, 100, 100, 100},
			want:      map[string]uint64{"ejections_detected_success_rate": 0},
		},
		{
			name:      "detected, not enforced",
			edit:      func(o *config.OutlierDetection) { o.EnforcingSuccessRate = 0 },
			volumes:   []int{100, 100, 100, 100, 100},
			successes: []int{50, 100, 100, 100, 100},
			want:      map[string]uint64{"ejections_detected_success_rate": 1, "ejections_enforced_success_rate": 0, "ejections_total": 1},
		},
		{
			name: "failure percentage: 90% failures ≥ 85",
			edit: func(o *config.OutlierDetection) {
				o.EnforcingSuccessRate = 0
				o.EnforcingFailurePercentage = 100
			},
			volumes:     []int{50, 50, 50, 50, 50},
			successes:   []int{5, 50, 50, 50, 50},
			wantEjected: []int{0},
			// 50 requests are below success_rate_request_volume (100):
			// success-rate analysis does not run.
			want: map[string]uint64{
				"ejections_detected_failure_percentage": 1, "ejections_enforced_failure_percentage": 1,
				"ejections_detected_success_rate": 0, "ejections_total": 0,
			},
		},
		{
			name:      "failure percentage off by default (enforcing 0), still detected",
			volumes:   []int{50, 50, 50, 50, 50},
			successes: []int{5, 50, 50, 50, 50},
			want:      map[string]uint64{"ejections_detected_failure_percentage": 1, "ejections_enforced_failure_percentage": 0},
		},
		{
			name:      "failure percentage: 84% failures stay",
			edit:      func(o *config.OutlierDetection) { o.EnforcingFailurePercentage = 100 },
			volumes:   []int{50, 50, 50, 50, 50},
			successes: []int{8, 50, 50, 50, 50},
			want:      map[string]uint64{"ejections_detected_failure_percentage": 0},
		},
		{
			name:      "failure percentage needs its request volume",
			edit:      func(o *config.OutlierDetection) { o.EnforcingFailurePercentage = 100 },
			volumes:   []int{49, 50, 50, 50, 50},
			successes: []int{0, 50, 50, 50, 50},
			want:      map[string]uint64{"ejections_detected_failure_percentage": 0},
		},
		{
			name: "failure percentage ejects several, limited by max_ejection_percent",
			edit: func(o *config.OutlierDetection) {
				o.EnforcingFailurePercentage = 100
				o.EnforcingSuccessRate = 0
				o.MaxEjectionPercent = 40
			},
			volumes:     []int{50, 50, 50, 50, 50},
			successes:   []int{0, 0, 0, 50, 50},
			wantEjected: []int{0, 1},
			want:        map[string]uint64{"ejections_detected_failure_percentage": 3, "ejections_enforced_failure_percentage": 2, "ejections_overflow": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newODFixture(t, len(tt.volumes), func(o *config.OutlierDetection) {
				o.MaxEjectionPercent = 100
				// Only the interval analysis here: runs of 500s must not
				// eject on their own.
				o.Consecutive5xx = 0
				o.ConsecutiveGatewayFailure = 0
				if tt.edit != nil {
					tt.edit(o)
				}
			}, nil)
			for i, v := range tt.volumes {
				f.send(i, 200, tt.successes[i])
				f.send(i, 500, v-tt.successes[i])
			}
			// Responses count in the interval they arrive in; the sweep
			// that closes it analyses them.
			if got := f.ejected(); len(got) != 0 {
				t.Fatalf("ejected %v before the sweep", got)
			}
			f.sweep(10 * time.Second)
			if got := f.ejected(); !slices.Equal(got, tt.wantEjected) {
				t.Errorf("ejected %v, want %v", got, tt.wantEjected)
			}
			checkODStats(t, f.stats, tt.want)
			// The next interval has no requests: nothing more happens.
			before := f.stats.OutlierDetection.EjectionsEnforcedTotal.Value()
			f.sweep(10 * time.Second)
			if after := f.stats.OutlierDetection.EjectionsEnforcedTotal.Value(); after != before {
				t.Errorf("an empty interval ejected %d more", after-before)
			}
		})
	}
}

func TestOutlierSuccessRateShownPerHost(t *testing.T) {
	// Envoy computes nothing for a cluster smaller than both minimums.
	f := newODFixture(t, 2, func(o *config.OutlierDetection) {
		o.FailurePercentageRequestVolume = 10
		o.FailurePercentageMinimumHosts = 2
	}, nil)
	if got := f.hosts[0].SuccessRate(); got != -1 {
		t.Fatalf("success rate before any interval = %v, want -1", got)
	}
	f.send(0, 200, 9)
	f.send(0, 500, 1)
	f.send(1, 200, 5)
	f.sweep(10 * time.Second)
	if got := f.hosts[0].SuccessRate(); math.Abs(got-90) > 1e-9 {
		t.Errorf("host 0 success rate = %v, want 90", got)
	}
	if got := f.hosts[1].SuccessRate(); got != -1 {
		t.Errorf("host 1 (5 requests, below both volumes) success rate = %v, want -1", got)
	}
	f.sweep(10 * time.Second)
	if got := f.hosts[0].SuccessRate(); got != -1 {
		t.Errorf("after an empty interval, success rate = %v, want -1", got)
	}
}

func TestSuccessRateThreshold(t *testing.T) {
	tests := []struct {
		rates               []float64
		factor              float64
		wantMean, wantThres float64
	}{
		{[]float64{50, 100, 100, 100, 100}, 1.9, 90, 52},
		{[]float64{100, 100, 100}, 1.9, 100, 100},
		{[]float64{80, 90, 100}, 1, 90, 90 - math.Sqrt(200.0/3)},
	}
	for _, tt := range tests {
		var hrs []hostRate
		sum := 0.0
		for _, r := range tt.rates {
			hrs = append(hrs, hostRate{rate: r})
			sum += r
		}
		mean, thres := successRateThreshold(sum, hrs, tt.factor)
		if math.Abs(mean-tt.wantMean) > 1e-9 || math.Abs(thres-tt.wantThres) > 1e-9 {
			t.Errorf("%v × %v: mean %v threshold %v, want %v %v", tt.rates, tt.factor, mean, thres, tt.wantMean, tt.wantThres)
		}
	}
}

func TestOutlierPanicThreshold(t *testing.T) {
	tests := []struct {
		name      string
		threshold *float64
		eject     int // hosts ejected of 4
		wantPanic bool
		wantNone  bool // Pick finds nothing
	}{
		{"default 50: half ejected is not panic", nil, 2, false, false},
		{"default 50: three of four ejected is panic", nil, 3, true, false},
		{"threshold 80: one of four ejected (75% healthy) is panic", ptrTo(80.0), 1, true, false},
		{"threshold 0: all ejected, no panic, no host", ptrTo(0.0), 4, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			weights := []int{1, 1, 1, 1}
			cl := staticCluster("c", "round_robin", weights...)
			cl.CommonLBConfig.HealthyPanicThreshold = tt.threshold
			store, _ := stats.NewStore(stats.Config{})
			m := newTestManager(t, Options{ClusterStats: store.ClusterStats}, cl)
			c := m.Get("c")
			for _, h := range c.Hosts()[:tt.eject] {
				c.setHealthFlag(h, flagFailedOutlierCheck, true)
			}
			if got := c.set.Load().panic; got != tt.wantPanic {
				t.Errorf("panic = %v, want %v", got, tt.wantPanic)
			}
			seen := map[*Host]bool{}
			for range 100 {
				seen[c.Pick(nil)] = true
			}
			switch {
			case tt.wantNone:
				if len(seen) != 1 || !seen[nil] {
					t.Errorf("Pick found %v, want nil only", seen)
				}
			case tt.wantPanic:
				if len(seen) != 4 {
					t.Errorf("panic picks covered %d hosts, want all 4", len(seen))
				}
			default:
				for _, h := range c.Hosts()[:tt.eject] {
					if seen[h] {
						t.Errorf("picked ejected host %s", h.Address())
					}
				}
			}
			wantPanicCount := uint64(0)
			if tt.wantPanic {
				wantPanicCount = 100
			}
			if got := store.ClusterStats("c").LbHealthyPanic.Value(); got != wantPanicCount {
				t.Errorf("lb_healthy_panic = %d, want %d", got, wantPanicCount)
			}
		})
	}
}

func TestOutlierIgnoresRemovedHost(t *testing.T) {
	f := newODFixture(t, 2, func(o *config.OutlierDetection) { o.MaxEjectionPercent = 100 }, nil)
	stranger := testHosts(1)[0]
	for range 5 {
		f.c.ObserveResponse(stranger, 500, nil)
	}
	if stranger.FailedOutlierCheck() || f.stats.OutlierDetection.EjectionsDetectedConsecutive5xx.Value() != 0 {
		t.Error("a host outside the cluster was ejected or counted")
	}
}

func TestObserveWithoutHealthConfigIsFree(t *testing.T) {
	m := newTestManager(t, Options{}, staticCluster("c", "", 1, 1))
	c := m.Get("c")
	h := c.Hosts()[0]
	hdr := http.Header{ImmediateHealthCheckFailHeader: {"true"}}
	allocs := testing.AllocsPerRun(1000, func() {
		c.ObserveResponse(h, 503, hdr)
		c.ObserveFailure(h, true)
	})
	if allocs != 0 || !h.Healthy() {
		t.Errorf("allocs %v, healthy %v; want 0 allocations and no effect without health_checks or outlier_detection", allocs, h.Healthy())
	}
	f := newODFixture(t, 3, nil, nil)
	allocs = testing.AllocsPerRun(1000, func() {
		f.c.ObserveResponse(f.hosts[0], 200, nil)
	})
	if allocs != 0 {
		t.Errorf("ObserveResponse with outlier detection allocates %v per call", allocs)
	}
}

func TestOutlierSweepLoopStops(t *testing.T) {
	f := newODFixture(t, 3, func(o *config.OutlierDetection) {
		o.MaxEjectionPercent = 100
		o.Interval = config.Duration(5 * time.Millisecond)
		o.BaseEjectionTime = config.Duration(time.Millisecond)
	}, nil)
	f.c.od.now = time.Now
	f.c.startHealth()
	f.send(0, 500, 5)
	if !f.hosts[0].FailedOutlierCheck() {
		t.Fatal("not ejected")
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.hosts[0].FailedOutlierCheck() {
		if time.Now().After(deadline) {
			t.Fatal("the sweep loop did not return the host within 5s (1ms ejection, 5ms interval)")
		}
		time.Sleep(time.Millisecond)
	}
	f.c.close() // waits for the loop; the race detector checks the rest
	f.c.close()
}
