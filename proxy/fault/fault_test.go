package fault

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
	"github.com/hopwatch/hopwatch/proxy/stats"
)

func pct(n int, d string) *config.FractionalPercent {
	return &config.FractionalPercent{Numerator: n, Denominator: d}
}

func dur(d time.Duration) *config.Duration { c := config.Duration(d); return &c }

func faultStats(t *testing.T) *stats.FaultStats {
	t.Helper()
	s, err := stats.NewStore(stats.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &s.HTTPConnManagerStats("test").Fault
}

// seeded returns a deterministic random source for the draws.
func seeded(seed uint64) func() uint64 {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)).Uint64
}

func mustNew(t *testing.T, c *config.Fault) *Fault {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPercentSelects(t *testing.T) {
	tests := []struct {
		p    Percent
		r    uint64
		want bool
	}{
		{Percent{0, 100}, 0, false},
		{Percent{1, 100}, 0, true},
		{Percent{1, 100}, 1, false},
		{Percent{1, 100}, 100, true}, // 100 % 100 = 0
		{Percent{100, 100}, 99, true},
		{Percent{100, 100}, math.MaxUint64, true},
		{Percent{9999, 10000}, 9999, false},
		{Percent{1, 1_000_000}, 1_000_000, true},
		{Percent{5, 0}, 1, false}, // a zero denominator never selects
	}
	for _, tt := range tests {
		if got := tt.p.Selects(tt.r); got != tt.want {
			t.Errorf("%+v.Selects(%d) = %v, want %v", tt.p, tt.r, got, tt.want)
		}
	}
}

func TestCompilePercent(t *testing.T) {
	tests := []struct {
		in      *config.FractionalPercent
		want    Percent
		wantErr bool
	}{
		{nil, Percent{0, 100}, false}, // Envoy: absent is 0%
		{pct(10, ""), Percent{10, 100}, false},
		{pct(10, "TEN_THOUSAND"), Percent{10, 10_000}, false},
		{pct(1_000_000, "MILLION"), Percent{1_000_000, 1_000_000}, false},
		{pct(101, "HUNDRED"), Percent{}, true},
		{pct(-1, "HUNDRED"), Percent{}, true},
		{pct(1, "THOUSAND"), Percent{}, true},
	}
	for _, tt := range tests {
		got, err := CompilePercent(tt.in)
		if (err != nil) != tt.wantErr || !tt.wantErr && got != tt.want {
			t.Errorf("CompilePercent(%+v) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// TestFractions draws a fault at several fractions with a seeded source
// and checks the share injected. The bound is 5 standard deviations of a
// binomial(N, p) count, so a correct draw essentially never fails it (and
// the seed makes it deterministic anyway), while a draw off by a whole
// percentage point at N = 20000 misses it by far: sd at p = 0.1 is 42.
func TestFractions(t *testing.T) {
	const n = 20000
	for _, tt := range []struct {
		p    *config.FractionalPercent
		want float64
	}{
		{pct(10, "HUNDRED"), 0.10},
		{pct(50, "HUNDRED"), 0.50},
		{pct(250, "TEN_THOUSAND"), 0.025},
		{pct(5000, "MILLION"), 0.005},
		{pct(0, "HUNDRED"), 0},
		{pct(100, "HUNDRED"), 1},
	} {
		f := mustNew(t, &config.Fault{Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: tt.p}})
		f.rnd = seeded(42)
		var active Active
		st := faultStats(t)
		aborted := 0
		for range n {
			if f.Run(context.Background(), http.Header{}, &active, st).AbortStatus == 503 {
				aborted++
			}
		}
		mean := n * tt.want
		sd := math.Sqrt(n * tt.want * (1 - tt.want))
		if math.Abs(float64(aborted)-mean) > 5*sd {
			t.Errorf("%d/%s: %d of %d aborted, want %.0f ± %.0f", tt.p.Numerator, tt.p.Denominator, aborted, n, mean, 5*sd)
		}
		if active.Load() != 0 {
			t.Errorf("active faults = %d after all requests finished", active.Load())
		}
	}
}

func TestHeaderParsing(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i+1 < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	t.Run("abort status", func(t *testing.T) {
		for _, tt := range []struct {
			h    http.Header
			want int
			ok   bool
		}{
			{hdr(), 0, false},
			{hdr(HeaderAbortRequest, "503"), 503, true},
			{hdr(HeaderAbortRequest, " 429 "), 429, true},
			{hdr(HeaderAbortRequest, "200"), 200, true},
			{hdr(HeaderAbortRequest, "599"), 599, true},
			{hdr(HeaderAbortRequest, "600"), 0, false},
			{hdr(HeaderAbortRequest, "199"), 0, false},
			{hdr(HeaderAbortRequest, "-503"), 0, false},
			{hdr(HeaderAbortRequest, "+503"), 0, false},
			{hdr(HeaderAbortRequest, "503x"), 0, false},
			{hdr(HeaderAbortRequest, ""), 0, false},
			{hdr(HeaderAbortRequest, "18446744073709551616"), 0, false},
			{hdr(HeaderAbortRequest, "abc", HeaderAbortRequest, "503"), 0, false}, // only the first value counts
			{hdr(HeaderAbortRequest, "502", HeaderAbortRequest, "abc"), 502, true},
		} {
			got, ok := HeaderAbortStatus(tt.h)
			if got != tt.want || ok != tt.ok {
				t.Errorf("HeaderAbortStatus(%v) = %d, %v; want %d, %v", tt.h, got, ok, tt.want, tt.ok)
			}
		}
	})
	t.Run("delay", func(t *testing.T) {
		for _, tt := range []struct {
			h    http.Header
			want time.Duration
			ok   bool
		}{
			{hdr(), 0, false},
			{hdr(HeaderDelayRequest, "250"), 250 * time.Millisecond, true},
			{hdr(HeaderDelayRequest, "0"), 0, false}, // Envoy delays only when > 0ms
			{hdr(HeaderDelayRequest, "1.5"), 0, false},
			{hdr(HeaderDelayRequest, "-5"), 0, false},
			{hdr(HeaderDelayRequest, "9223372036854"), 9223372036854 * time.Millisecond, true},
			{hdr(HeaderDelayRequest, "9223372036855"), 0, false}, // overflows a Duration
		} {
			got, ok := HeaderDelay(tt.h)
			if got != tt.want || ok != tt.ok {
				t.Errorf("HeaderDelay(%v) = %v, %v; want %v, %v", tt.h, got, ok, tt.want, tt.ok)
			}
		}
	})
	t.Run("percentage", func(t *testing.T) {
		def := Percent{50, 100}
		for _, tt := range []struct {
			h    http.Header
			want Percent
		}{
			{hdr(), def},
			{hdr(HeaderAbortRequestPercentage, "10"), Percent{10, 100}},
			{hdr(HeaderAbortRequestPercentage, "0"), Percent{0, 100}},
			{hdr(HeaderAbortRequestPercentage, "80"), Percent{50, 100}}, // capped at the configured numerator
			{hdr(HeaderAbortRequestPercentage, "x"), def},
			{hdr(HeaderAbortRequestPercentage, "4294967296"), def}, // not a uint32
			{hdr(HeaderDelayRequestPercentage, "10"), def},         // another header
		} {
			if got := HeaderPercentage(tt.h, HeaderAbortRequestPercentage, def); got != tt.want {
				t.Errorf("HeaderPercentage(%v) = %+v, want %+v", tt.h, got, tt.want)
			}
		}
	})
}

func TestRun(t *testing.T) {
	headerAbort := &config.Fault{Abort: &config.FaultAbort{HeaderAbort: &config.FaultHeaderControl{}, Percentage: pct(100, "HUNDRED")}}
	headerDelay := &config.Fault{Delay: &config.FaultDelay{HeaderDelay: &config.FaultHeaderControl{}, Percentage: pct(100, "HUNDRED")}}
	both := &config.Fault{
		Abort: &config.FaultAbort{HTTPStatus: 418, Percentage: pct(100, "HUNDRED")},
		Delay: &config.FaultDelay{FixedDelay: dur(time.Millisecond), Percentage: pct(100, "HUNDRED")},
	}
	tests := []struct {
		name   string
		cfg    *config.Fault
		h      http.Header
		want   Result
		delays uint64
		aborts uint64
	}{
		{"fixed abort", &config.Fault{Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: pct(100, "HUNDRED")}}, http.Header{}, Result{AbortStatus: 503}, 0, 1},
		{"abort at 0%", &config.Fault{Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: pct(0, "HUNDRED")}}, http.Header{}, Result{}, 0, 0},
		{"fixed delay", &config.Fault{Delay: &config.FaultDelay{FixedDelay: dur(time.Millisecond), Percentage: pct(100, "HUNDRED")}}, http.Header{}, Result{Delay: time.Millisecond}, 1, 0},
		{"delay then abort", both, http.Header{}, Result{Delay: time.Millisecond, AbortStatus: 418}, 1, 1},
		{"header abort", headerAbort, http.Header{HeaderAbortRequest: {"502"}}, Result{AbortStatus: 502}, 0, 1},
		{"header abort without the header", headerAbort, http.Header{}, Result{}, 0, 0},
		{"header abort with an invalid status", headerAbort, http.Header{HeaderAbortRequest: {"700"}}, Result{}, 0, 0},
		{"header abort lowered to 0%", headerAbort, http.Header{HeaderAbortRequest: {"502"}, HeaderAbortRequestPercentage: {"0"}}, Result{}, 0, 0},
		{"header delay", headerDelay, http.Header{HeaderDelayRequest: {"2"}}, Result{Delay: 2 * time.Millisecond}, 1, 0},
		{"header delay lowered to 0%", headerDelay, http.Header{HeaderDelayRequest: {"2"}, HeaderDelayRequestPercentage: {"0"}}, Result{}, 0, 0},
		{"fixed abort ignores the header", &config.Fault{Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: pct(100, "HUNDRED")}},
			http.Header{HeaderAbortRequest: {"502"}, HeaderAbortRequestPercentage: {"0"}}, Result{AbortStatus: 503}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustNew(t, tt.cfg)
			st := faultStats(t)
			var active Active
			got := f.Run(context.Background(), tt.h, &active, st)
			if got != tt.want {
				t.Errorf("Run = %+v, want %+v", got, tt.want)
			}
			if st.DelaysInjected.Value() != tt.delays || st.AbortsInjected.Value() != tt.aborts {
				t.Errorf("delays_injected = %d, aborts_injected = %d; want %d, %d", st.DelaysInjected.Value(), st.AbortsInjected.Value(), tt.delays, tt.aborts)
			}
			if active.Load() != 0 || st.ActiveFaults.Value() != 0 {
				t.Errorf("active = %d, active_faults = %d after the request", active.Load(), st.ActiveFaults.Value())
			}
		})
	}
}

// TestDelayClientGone: the delay ends when the client goes away, and the
// request is not aborted afterwards.
func TestDelayClientGone(t *testing.T) {
	f := mustNew(t, &config.Fault{
		Delay: &config.FaultDelay{FixedDelay: dur(time.Hour), Percentage: pct(100, "HUNDRED")},
		Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: pct(100, "HUNDRED")},
	})
	st := faultStats(t)
	var active Active
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Result)
	go func() { done <- f.Run(ctx, http.Header{}, &active, st) }()
	// While the delay runs, the fault is active.
	for deadline := time.Now().Add(10 * time.Second); active.Load() != 1; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the delay never became an active fault")
		}
	}
	if st.ActiveFaults.Value() != 1 {
		t.Errorf("active_faults = %d during the delay, want 1", st.ActiveFaults.Value())
	}
	cancel()
	select {
	case got := <-done:
		if !got.ClientGone || got.AbortStatus != 0 || got.Delay != time.Hour {
			t.Errorf("Run = %+v, want ClientGone after a 1h delay and no abort", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the client went away")
	}
	if active.Load() != 0 || st.ActiveFaults.Value() != 0 || st.AbortsInjected.Value() != 0 {
		t.Errorf("active = %d, active_faults = %d, aborts = %d", active.Load(), st.ActiveFaults.Value(), st.AbortsInjected.Value())
	}
}

// TestMaxActiveFaults: a fault beyond max_active_faults is not injected
// and counts faults_overflow, once per fault type tried (as Envoy).
func TestMaxActiveFaults(t *testing.T) {
	max1 := 1
	zero := 0
	cfg := func(m *int) *config.Fault {
		return &config.Fault{
			Delay:           &config.FaultDelay{FixedDelay: dur(time.Millisecond), Percentage: pct(100, "HUNDRED")},
			Abort:           &config.FaultAbort{HTTPStatus: 503, Percentage: pct(100, "HUNDRED")},
			MaxActiveFaults: m,
		}
	}
	t.Run("zero allows none", func(t *testing.T) {
		st := faultStats(t)
		var active Active
		got := mustNew(t, cfg(&zero)).Run(context.Background(), http.Header{}, &active, st)
		if got != (Result{}) {
			t.Errorf("Run = %+v, want no fault", got)
		}
		if st.FaultsOverflow.Value() != 2 || st.DelaysInjected.Value() != 0 || st.AbortsInjected.Value() != 0 {
			t.Errorf("overflow %d delays %d aborts %d, want 2 0 0", st.FaultsOverflow.Value(), st.DelaysInjected.Value(), st.AbortsInjected.Value())
		}
	})
	t.Run("one request holds one fault for delay and abort", func(t *testing.T) {
		st := faultStats(t)
		var active Active
		got := mustNew(t, cfg(&max1)).Run(context.Background(), http.Header{}, &active, st)
		if got.Delay != time.Millisecond || got.AbortStatus != 503 || st.FaultsOverflow.Value() != 0 {
			t.Errorf("Run = %+v, overflow %d; want delay and abort, no overflow", got, st.FaultsOverflow.Value())
		}
	})
	t.Run("the listener's count is shared", func(t *testing.T) {
		st := faultStats(t)
		var active Active
		active.n.Store(1) // another request of the listener holds a fault
		got := mustNew(t, cfg(&max1)).Run(context.Background(), http.Header{}, &active, st)
		if got != (Result{}) || st.FaultsOverflow.Value() != 2 {
			t.Errorf("Run = %+v, overflow %d; want no fault, 2 overflows", got, st.FaultsOverflow.Value())
		}
		if active.Load() != 1 {
			t.Errorf("active = %d, want the other request's 1", active.Load())
		}
	})
}

func TestNewErrors(t *testing.T) {
	for _, c := range []*config.Fault{
		{},
		{Abort: &config.FaultAbort{HTTPStatus: 600, Percentage: pct(1, "HUNDRED")}},
		{Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: pct(101, "HUNDRED")}},
		{Delay: &config.FaultDelay{Percentage: pct(1, "HUNDRED")}},
		{Delay: &config.FaultDelay{FixedDelay: dur(0), Percentage: pct(1, "HUNDRED")}},
		{Delay: &config.FaultDelay{FixedDelay: dur(time.Second), Percentage: pct(1, "TEN")}},
		{Abort: &config.FaultAbort{HTTPStatus: 503, Percentage: pct(1, "HUNDRED")}, MaxActiveFaults: ptr(-1)},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", c)
		}
	}
	if f, err := New(nil); f != nil || err != nil {
		t.Errorf("New(nil) = %v, %v; want nil, nil", f, err)
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzHeaders feeds arbitrary header values to the fault header parsers:
// they must not panic, and whatever they accept must be usable.
func FuzzHeaders(f *testing.F) {
	for _, s := range []string{"503", " 200 ", "600", "-1", "+5", "0", "1.5", "", "18446744073709551615", "9223372036855", "abc", "\x00"} {
		f.Add(s, s, s)
	}
	f.Fuzz(func(t *testing.T, abort, delay, percentage string) {
		h := http.Header{HeaderAbortRequest: {abort}, HeaderDelayRequest: {delay}, HeaderAbortRequestPercentage: {percentage}}
		if s, ok := HeaderAbortStatus(h); ok && (s < 200 || s >= 600) {
			t.Errorf("HeaderAbortStatus(%q) = %d, outside [200, 600)", abort, s)
		}
		if d, ok := HeaderDelay(h); ok && d <= 0 {
			t.Errorf("HeaderDelay(%q) = %v, not positive", delay, d)
		}
		def := Percent{37, 100}
		if p := HeaderPercentage(h, HeaderAbortRequestPercentage, def); p.Denominator != 100 || p.Numerator > 37 {
			t.Errorf("HeaderPercentage(%q) = %+v, above the configured %+v", percentage, p, def)
		}
	})
}
