package retry

import (
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/proxy/config"
)

func intp(v int) *int { return &v }

func mustCompile(t *testing.T, p *config.RetryPolicy) *Policy {
	t.Helper()
	out, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return out
}

func TestCompileDefaults(t *testing.T) {
	p := mustCompile(t, &config.RetryPolicy{RetryOn: []string{"5xx", "reset"}})
	want := Policy{On: On5xx | OnReset, NumRetries: 1, BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond}
	if !equalPolicy(*p, want) {
		t.Fatalf("got %+v, want %+v", *p, want)
	}

	p = mustCompile(t, &config.RetryPolicy{
		RetryOn:              []string{"retriable-status-codes", "gateway-error"},
		NumRetries:           intp(0),
		PerTryTimeout:        config.Duration(2 * time.Second),
		RetriableStatusCodes: []int{429, 503},
		RetryBackOff:         config.RetryBackOff{BaseInterval: config.Duration(100 * time.Millisecond)},
		HonorRequestHeaders:  true,
	})
	want = Policy{
		On: OnRetriableStatusCodes | OnGatewayError, NumRetries: 0, PerTryTimeout: 2 * time.Second,
		BaseInterval: 100 * time.Millisecond, MaxInterval: time.Second,
		RetriableStatusCodes: []int{429, 503}, HonorRequestHeaders: true,
	}
	if !equalPolicy(*p, want) {
		t.Fatalf("got %+v, want %+v", *p, want)
	}

	if p, err := Compile(nil); p != nil || err != nil {
		t.Fatalf("Compile(nil) = %v, %v; want nil, nil", p, err)
	}
}

func equalPolicy(a, b Policy) bool {
	return a.On == b.On && a.NumRetries == b.NumRetries && a.PerTryTimeout == b.PerTryTimeout &&
		a.BaseInterval == b.BaseInterval && a.MaxInterval == b.MaxInterval &&
		slices.Equal(a.RetriableStatusCodes, b.RetriableStatusCodes) && a.HonorRequestHeaders == b.HonorRequestHeaders
}

func TestCompileErrors(t *testing.T) {
	ms := func(d time.Duration) config.Duration { return config.Duration(d) }
	tests := []struct {
		name string
		in   config.RetryPolicy
		want string
	}{
		{"no conditions", config.RetryPolicy{}, "retry_on: at least one"},
		{"unknown condition", config.RetryPolicy{RetryOn: []string{"5xx", "5XX"}}, `retry_on[1]: unknown condition "5XX"`},
		{"negative retries", config.RetryPolicy{RetryOn: []string{"5xx"}, NumRetries: intp(-1)}, "num_retries: -1 is negative"},
		{"negative per try", config.RetryPolicy{RetryOn: []string{"5xx"}, PerTryTimeout: ms(-time.Second)}, "per_try_timeout"},
		{"bad status", config.RetryPolicy{RetryOn: []string{"retriable-status-codes"}, RetriableStatusCodes: []int{503, 99}}, "retriable_status_codes[1]: 99"},
		{"negative base", config.RetryPolicy{RetryOn: []string{"5xx"}, RetryBackOff: config.RetryBackOff{BaseInterval: ms(-1)}}, "base_interval"},
		{"negative max", config.RetryPolicy{RetryOn: []string{"5xx"}, RetryBackOff: config.RetryBackOff{MaxInterval: ms(-1)}}, "max_interval"},
		{"max below base", config.RetryPolicy{RetryOn: []string{"5xx"}, RetryBackOff: config.RetryBackOff{BaseInterval: ms(time.Second), MaxInterval: ms(time.Millisecond)}}, "less than base_interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(&tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseCondition(t *testing.T) {
	for _, n := range conditionNames {
		c, ok := ParseCondition(" " + n.name + " ")
		if !ok || c != n.c {
			t.Errorf("ParseCondition(%q) = %v, %v", n.name, c, ok)
		}
	}
	if _, ok := ParseCondition("retriable-headers"); ok {
		t.Error("unsupported condition parsed")
	}
	all := On5xx | OnGatewayError | OnConnectFailure | OnReset | OnRetriableStatusCodes | OnRefusedStream | OnRetriable4xx
	if got := all.String(); got != "5xx,gateway-error,connect-failure,reset,retriable-status-codes,refused-stream,retriable-4xx" {
		t.Errorf("String() = %q", got)
	}
}

func TestRetryOnStatus(t *testing.T) {
	codes := []int{200, 404, 409, 429, 500, 501, 502, 503, 504, 599}
	tests := []struct {
		on    Conditions
		extra []int
		want  []int // codes that are retried
	}{
		{0, nil, nil},
		{On5xx, nil, []int{500, 501, 502, 503, 504, 599}},
		{OnGatewayError, nil, []int{502, 503, 504}},
		{OnRetriable4xx, nil, []int{409}},
		{OnRetriableStatusCodes, []int{429, 501}, []int{429, 501}},
		{OnRetriableStatusCodes, nil, nil},
		// The codes alone do nothing without the condition.
		{OnConnectFailure, []int{429}, nil},
		{OnReset | OnRefusedStream | OnConnectFailure, nil, nil},
		{OnGatewayError | OnRetriable4xx, nil, []int{409, 502, 503, 504}},
	}
	for _, tt := range tests {
		p := &Policy{On: tt.on, RetriableStatusCodes: tt.extra}
		var got []int
		for _, c := range codes {
			if p.RetryOnStatus(c) {
				got = append(got, c)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("on=%s codes=%v: retried %v, want %v", tt.on, tt.extra, got, tt.want)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.RetryOnStatus(503) {
		t.Error("nil policy retries")
	}
}

func TestRetryOnFailure(t *testing.T) {
	failures := []Failure{ConnectFailure, Reset, RefusedStream, PerTryTimeout}
	tests := []struct {
		on   Conditions
		want []Failure
	}{
		{0, nil},
		{On5xx, failures},
		{OnGatewayError, failures},
		{OnReset, []Failure{ConnectFailure, Reset, RefusedStream}},
		{OnConnectFailure, []Failure{ConnectFailure}},
		{OnRefusedStream, []Failure{RefusedStream}},
		{OnRetriableStatusCodes | OnRetriable4xx, nil},
		{OnConnectFailure | OnRefusedStream, []Failure{ConnectFailure, RefusedStream}},
	}
	for _, tt := range tests {
		p := &Policy{On: tt.on}
		var got []Failure
		for _, f := range failures {
			if p.RetryOnFailure(f) {
				got = append(got, f)
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("on=%s: retried %v, want %v", tt.on, got, tt.want)
		}
		if p.RetryOnFailure(Failure(99)) {
			t.Errorf("on=%s: unknown failure retried", tt.on)
		}
	}
	var nilPolicy *Policy
	if nilPolicy.RetryOnFailure(Reset) {
		t.Error("nil policy retries")
	}
}

func TestForRequest(t *testing.T) {
	base := &Policy{On: OnConnectFailure, NumRetries: 2, BaseInterval: time.Millisecond, MaxInterval: 10 * time.Millisecond,
		RetriableStatusCodes: []int{503}, HonorRequestHeaders: true}
	noHonor := *base
	noHonor.HonorRequestHeaders = false

	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Add(kv[i], kv[i+1])
		}
		return h
	}
	tests := []struct {
		name      string
		p         *Policy
		h         http.Header
		wantOn    Conditions
		wantN     int
		wantCodes []int
	}{
		{"no headers", base, hdr(), OnConnectFailure, 2, []int{503}},
		{"retry-on adds", base, hdr("x-envoy-retry-on", "5xx, reset"), OnConnectFailure | On5xx | OnReset, 2, []int{503}},
		{"retry-on unknown ignored", base, hdr("x-envoy-retry-on", "bogus,,gateway-error"), OnConnectFailure | OnGatewayError, 2, []int{503}},
		{"retry-on repeated header", base, hdr("x-envoy-retry-on", "5xx", "x-envoy-retry-on", "retriable-4xx"), OnConnectFailure | On5xx | OnRetriable4xx, 2, []int{503}},
		{"max retries overrides", base, hdr("x-envoy-max-retries", "5"), OnConnectFailure, 5, []int{503}},
		{"max retries zero", base, hdr("x-envoy-max-retries", " 0 "), OnConnectFailure, 0, []int{503}},
		{"max retries negative ignored", base, hdr("x-envoy-max-retries", "-3"), OnConnectFailure, 2, []int{503}},
		{"max retries garbage ignored", base, hdr("x-envoy-max-retries", "3x"), OnConnectFailure, 2, []int{503}},
		{"max retries huge ignored", base, hdr("x-envoy-max-retries", "99999999999999999999999"), OnConnectFailure, 2, []int{503}},
		{"status codes add", base, hdr("x-envoy-retriable-status-codes", "429, 503,abc,42"), OnConnectFailure, 2, []int{503, 429}},
		{"not honoured", &noHonor, hdr("x-envoy-retry-on", "5xx", "x-envoy-max-retries", "9", "x-envoy-retriable-status-codes", "429"), OnConnectFailure, 2, []int{503}},
		{"nil policy", nil, hdr("x-envoy-retry-on", "5xx", "x-envoy-max-retries", "9"), 0, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.p.ForRequest(tt.h)
			if got.On != tt.wantOn || got.NumRetries != tt.wantN || !slices.Equal(got.RetriableStatusCodes, tt.wantCodes) {
				t.Fatalf("got on=%s n=%d codes=%v, want on=%s n=%d codes=%v",
					got.On, got.NumRetries, got.RetriableStatusCodes, tt.wantOn, tt.wantN, tt.wantCodes)
			}
		})
	}
	// The compiled policy must not be changed by a request.
	if base.On != OnConnectFailure || base.NumRetries != 2 || !slices.Equal(base.RetriableStatusCodes, []int{503}) {
		t.Fatalf("ForRequest mutated the compiled policy: %+v", base)
	}
	var zero Policy
	if zero.RetryOnStatus(500) || zero.RetryOnFailure(Reset) || zero.NumRetries != 0 {
		t.Fatal("zero policy retries")
	}
}

func TestBackoffBoundsAndGrowth(t *testing.T) {
	p := &Policy{BaseInterval: 25 * time.Millisecond, MaxInterval: 250 * time.Millisecond}
	// The ceiling for retry n is min(base*2^n, max).
	ceilings := []time.Duration{25, 50, 100, 200, 250, 250}
	for i := range ceilings {
		ceilings[i] *= time.Millisecond
	}
	ceilings = append(ceilings, 250*time.Millisecond) // a very large retry number
	numbers := []int{0, 1, 2, 3, 4, 5, 1000}
	rnds := []uint64{0, 1, 7, 1 << 20, 24_999_999, 25_000_000, 123456789123, math.MaxUint64, math.MaxUint64 - 1}
	for i, n := range numbers {
		ceiling := ceilings[i]
		var maxSeen time.Duration
		for _, r := range rnds {
			d := p.Backoff(n, r)
			if d < 0 || d >= ceiling {
				t.Fatalf("Backoff(%d, %d) = %v, want in [0, %v)", n, r, d, ceiling)
			}
			if want := time.Duration(r % uint64(ceiling)); d != want {
				t.Fatalf("Backoff(%d, %d) = %v, want %v", n, r, d, want)
			}
			maxSeen = max(maxSeen, d)
		}
		// rnd = ceiling-1 gives the largest possible value.
		if got := p.Backoff(n, uint64(ceiling)-1); got != ceiling-1 {
			t.Fatalf("Backoff(%d, ceiling-1) = %v, want %v", n, got, ceiling-1)
		}
	}
	// Growth: the largest reachable backoff doubles until it hits the cap.
	prev := time.Duration(0)
	for n := 0; n < 8; n++ {
		top := p.Backoff(n, uint64(p.MaxInterval)-1)
		if top < prev {
			t.Fatalf("retry %d: top backoff %v shrank from %v", n, top, prev)
		}
		prev = top
	}
	if p.Backoff(-1, 30_000_000) != p.Backoff(0, 30_000_000) {
		t.Fatal("a negative retry number is not treated as the first retry")
	}
	var nilPolicy *Policy
	if nilPolicy.Backoff(3, 99) != 0 || (&Policy{}).Backoff(3, 99) != 0 {
		t.Fatal("a policy without backoff waits")
	}
	// Overflow: a base close to the int64 limit must not wrap around.
	huge := &Policy{BaseInterval: time.Duration(math.MaxInt64 / 2), MaxInterval: time.Duration(math.MaxInt64)}
	for n := range 70 {
		if d := huge.Backoff(n, math.MaxUint64); d < 0 {
			t.Fatalf("Backoff(%d) overflowed to %v", n, d)
		}
	}
}

func TestBackoffDistribution(t *testing.T) {
	// A deterministic sweep of rnd over one full ceiling hits every value
	// exactly once: the jitter is uniform, not biased to either end.
	p := &Policy{BaseInterval: 4, MaxInterval: 16}
	counts := map[time.Duration]int{}
	for r := range uint64(8) {
		counts[p.Backoff(1, r)]++
	}
	for d := range time.Duration(8) {
		if counts[d] != 1 {
			t.Fatalf("value %v seen %d times, want 1 (%v)", d, counts[d], counts)
		}
	}
}

func FuzzForRequest(f *testing.F) {
	f.Add("5xx,reset", "3", "429,503")
	f.Add("", "-1", "")
	f.Add(",,,", "99999999999999999999", "a,b,,600")
	p := &Policy{On: OnConnectFailure, NumRetries: 1, BaseInterval: time.Millisecond, MaxInterval: time.Second,
		RetriableStatusCodes: []int{503}, HonorRequestHeaders: true}
	f.Fuzz(func(t *testing.T, retryOn, maxRetries, codes string) {
		h := http.Header{}
		h.Set(HeaderRetryOn, retryOn)
		h.Set(HeaderMaxRetries, maxRetries)
		h.Set(HeaderRetriableStatusCodes, codes)
		got := p.ForRequest(h)
		if got.NumRetries < 0 {
			t.Fatalf("negative retries %d", got.NumRetries)
		}
		if got.On&OnConnectFailure == 0 {
			t.Fatal("header removed a configured condition")
		}
		for _, c := range got.RetriableStatusCodes {
			if c < 100 || c > 599 {
				t.Fatalf("invalid status %d accepted", c)
			}
		}
		if len(p.RetriableStatusCodes) != 1 || p.RetriableStatusCodes[0] != 503 {
			t.Fatal("compiled policy mutated")
		}
		for n := range 70 {
			if d := got.Backoff(n, uint64(len(retryOn))*0x9e3779b97f4a7c15); d < 0 || d >= got.MaxInterval {
				t.Fatalf("Backoff(%d) = %v out of range", n, d)
			}
		}
	})
}

func BenchmarkForRequest(b *testing.B) {
	p := &Policy{On: OnConnectFailure, NumRetries: 1, BaseInterval: time.Millisecond, MaxInterval: time.Second, HonorRequestHeaders: true}
	h := http.Header{HeaderRetryOn: {"5xx,reset"}, HeaderMaxRetries: {"3"}}
	b.ReportAllocs()
	for b.Loop() {
		got := p.ForRequest(h)
		if !got.RetryOnStatus(503) {
			b.Fatal("not retried")
		}
	}
}
