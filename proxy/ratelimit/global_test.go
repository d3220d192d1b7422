package ratelimit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/hopwatch/hopwatch/proxy/config"
)

// fakeService is a RateLimitService on a real loopback socket whose
// answer the test sets.
type fakeService struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu    sync.Mutex
	res   *rlsv3.RateLimitResponse
	err   error
	delay time.Duration
	got   []*rlsv3.RateLimitRequest
}

func (f *fakeService) ShouldRateLimit(ctx context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	f.mu.Lock()
	f.got = append(f.got, req)
	res, err, delay := f.res, f.err, f.delay
	f.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			// As a real service: the call's deadline passed, so it fails
			// rather than answering late.
			return nil, status.FromContextError(ctx.Err()).Err()
		}
	}
	return res, err
}

func (f *fakeService) set(res *rlsv3.RateLimitResponse, err error, delay time.Duration) {
	f.mu.Lock()
	f.res, f.err, f.delay = res, err, delay
	f.mu.Unlock()
}

func startFakeService(t *testing.T) (*fakeService, string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fakeService{res: &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}}
	rlsv3.RegisterRateLimitServiceServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return f, ln.Addr().String(), srv.Stop
}

func newTestGlobal(t *testing.T, addr string, deny bool, xHeaders string) *Global {
	t.Helper()
	c, err := Dial([]string{addr}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	g := newGlobal(&config.RateLimitService{Domain: "edge", Timeout: config.Duration(200 * time.Millisecond), FailureModeDeny: deny, EnableXRateLimitHeaders: xHeaders}, c)
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func TestGlobalCheck(t *testing.T) {
	f, addr, _ := startFakeService(t)
	descs := []Descriptor{{{"remote_address", "10.0.0.1"}}, {{"generic_key", "g"}, {"path", "/a"}}}
	limit := &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: 20, Unit: rlsv3.RateLimitResponse_RateLimit_SECOND}
	tests := []struct {
		name     string
		deny     bool
		x        string
		res      *rlsv3.RateLimitResponse
		err      error
		delay    time.Duration
		want     GlobalDecision
		counters [4]uint64 // ok, error, over_limit, failure_mode_allowed
	}{
		{
			name: "ok, with the service's headers and x-ratelimit headers",
			x:    config.XRateLimitHeadersDraft03,
			res: &rlsv3.RateLimitResponse{
				OverallCode:          rlsv3.RateLimitResponse_OK,
				Statuses:             []*rlsv3.RateLimitResponse_DescriptorStatus{{Code: rlsv3.RateLimitResponse_OK, CurrentLimit: limit, LimitRemaining: 7, DurationUntilReset: durationpb.New(800 * time.Millisecond)}},
				ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-quota", Value: "q"}},
				RequestHeadersToAdd:  []*corev3.HeaderValue{{Key: "x-user-tier", RawValue: []byte("gold")}},
			},
			want: GlobalDecision{Outcome: Allow,
				ResponseHeaders: http.Header{"X-Quota": {"q"}, HeaderLimit: {"20, 20;w=1"}, HeaderRemaining: {"7"}, HeaderReset: {"0"}},
				RequestHeaders:  http.Header{"X-User-Tier": {"gold"}}},
			counters: [4]uint64{1, 0, 0, 0},
		},
		{
			name:     "ok without x-ratelimit headers",
			res:      &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, Statuses: []*rlsv3.RateLimitResponse_DescriptorStatus{{CurrentLimit: limit}}},
			want:     GlobalDecision{Outcome: Allow},
			counters: [4]uint64{1, 0, 0, 0},
		},
		{
			name:     "over limit, with the service's body",
			res:      &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT, RawBody: []byte("slow down")},
			want:     GlobalDecision{Outcome: OverLimit, Status: 429, Body: "slow down", ResponseHeaders: http.Header{HeaderRateLimited: {"true"}}},
			counters: [4]uint64{0, 0, 1, 0},
		},
		{
			name:     "service error, failure mode allow",
			err:      errors.New("boom"),
			want:     GlobalDecision{Outcome: FailedAllow},
			counters: [4]uint64{0, 1, 0, 1},
		},
		{
			name:     "service error, failure mode deny",
			deny:     true,
			err:      errors.New("boom"),
			want:     GlobalDecision{Outcome: FailedDeny, Status: 500},
			counters: [4]uint64{0, 1, 0, 0},
		},
		{
			name:     "timeout, failure mode deny",
			deny:     true,
			delay:    2 * time.Second,
			want:     GlobalDecision{Outcome: FailedDeny, Status: 500},
			counters: [4]uint64{0, 1, 0, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGlobal(t, addr, tt.deny, tt.x)
			f.set(tt.res, tt.err, tt.delay)
			st := &newTestStats(t).ClusterStats("backend").RateLimit
			start := time.Now()
			got := g.Check(context.Background(), descs, st)
			if took := time.Since(start); took > time.Second {
				t.Errorf("Check took %v with a 200ms timeout", took)
			}
			if (got.Err != nil) != (tt.want.Outcome == FailedAllow || tt.want.Outcome == FailedDeny) {
				t.Errorf("Err = %v for outcome %v", got.Err, got.Outcome)
			}
			got.Err = nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decision = %+v\nwant       %+v", got, tt.want)
			}
			c := [4]uint64{st.OK.Value(), st.Error.Value(), st.OverLimit.Value(), st.FailureModeAllowed.Value()}
			if c != tt.counters {
				t.Errorf("ok, error, over_limit, failure_mode_allowed = %v, want %v", c, tt.counters)
			}
		})
	}

	// What the service received: the domain and the descriptors, in order.
	f.mu.Lock()
	req := f.got[0]
	f.mu.Unlock()
	if req.GetDomain() != "edge" || len(req.GetDescriptors()) != 2 {
		t.Fatalf("request = %v", req)
	}
	e := req.GetDescriptors()[1].GetEntries()
	if len(e) != 2 || e[0].GetKey() != "generic_key" || e[0].GetValue() != "g" || e[1].GetKey() != "path" || e[1].GetValue() != "/a" {
		t.Errorf("second descriptor = %v", e)
	}
}

// TestGlobalServiceDown: a dead service fails the call fast (no
// wait-for-ready), well within the timeout, and nothing is asked when
// there are no descriptors.
func TestGlobalServiceDown(t *testing.T) {
	_, addr, stop := startFakeService(t)
	stop()
	g := newTestGlobal(t, addr, false, "")
	st := &newTestStats(t).ClusterStats("backend").RateLimit
	if d := g.Check(context.Background(), nil, st); d.Outcome != Allow || st.OK.Value()+st.Error.Value() != 0 {
		t.Fatalf("no descriptors: %+v, stats touched", d)
	}
	d := g.Check(context.Background(), []Descriptor{{{"k", "v"}}}, st)
	if d.Outcome != FailedAllow || st.Error.Value() != 1 || st.FailureModeAllowed.Value() != 1 {
		t.Fatalf("dead service: %+v, error %d, failure_mode_allowed %d", d, st.Error.Value(), st.FailureModeAllowed.Value())
	}
}

// TestGlobalCanceled: a client that leaves during the call ends it, and
// nothing is counted (Envoy cancels the call without completing it).
func TestGlobalCanceled(t *testing.T) {
	f, addr, _ := startFakeService(t)
	f.set(&rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK}, nil, 5*time.Second)
	g := newTestGlobal(t, addr, true, "")
	st := &newTestStats(t).ClusterStats("backend").RateLimit
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d := g.Check(ctx, []Descriptor{{{"k", "v"}}}, st)
	if d.Outcome != Canceled || d.Err == nil {
		t.Fatalf("decision = %+v, want Canceled", d)
	}
	if n := st.OK.Value() + st.Error.Value() + st.OverLimit.Value() + st.FailureModeAllowed.Value(); n != 0 {
		t.Errorf("a cancelled call counted %d in the stats", n)
	}
}

func TestXRateLimitValues(t *testing.T) {
	type status = rlsv3.RateLimitResponse_DescriptorStatus
	lim := func(n uint32, unit rlsv3.RateLimitResponse_RateLimit_Unit, name string) *rlsv3.RateLimitResponse_RateLimit {
		return &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: n, Unit: unit, Name: name}
	}
	tests := []struct {
		name                    string
		statuses                []*status
		limit, remaining, reset string
		ok                      bool
	}{
		{"none", nil, "", "", "", false},
		{"no current limit", []*status{{LimitRemaining: 3}}, "", "", "", false},
		{"one", []*status{{CurrentLimit: lim(10, rlsv3.RateLimitResponse_RateLimit_MINUTE, ""), LimitRemaining: 4, DurationUntilReset: durationpb.New(30 * time.Second)}},
			"10, 10;w=60", "4", "30", true},
		{"fewest remaining wins, first among equals; names quoted", []*status{
			{CurrentLimit: lim(100, rlsv3.RateLimitResponse_RateLimit_HOUR, "per-ip"), LimitRemaining: 5, DurationUntilReset: durationpb.New(time.Hour)},
			{CurrentLimit: lim(10, rlsv3.RateLimitResponse_RateLimit_SECOND, "burst"), LimitRemaining: 2, DurationUntilReset: durationpb.New(time.Second)},
			{},
			{CurrentLimit: lim(7, rlsv3.RateLimitResponse_RateLimit_DAY, ""), LimitRemaining: 2, DurationUntilReset: durationpb.New(5 * time.Hour)},
		}, `10, 100;w=3600;name="per-ip", 10;w=1;name="burst", 7;w=86400`, "2", "1", true},
		{"unknown unit: no quota policy", []*status{{CurrentLimit: lim(5, rlsv3.RateLimitResponse_RateLimit_UNKNOWN, "")}}, "5", "0", "0", true},
		{"unit multiplier", []*status{{CurrentLimit: &rlsv3.RateLimitResponse_RateLimit{RequestsPerUnit: 5, Unit: rlsv3.RateLimitResponse_RateLimit_MINUTE, UnitMultiplier: wrapperspb.UInt32(5)}}}, "5, 5;w=300", "0", "0", true},
	}
	for _, tt := range tests {
		l, r, s, ok := xRateLimitValues(tt.statuses)
		if l != tt.limit || r != tt.remaining || s != tt.reset || ok != tt.ok {
			t.Errorf("%s: got %q %q %q %v, want %q %q %q %v", tt.name, l, r, s, ok, tt.limit, tt.remaining, tt.reset, tt.ok)
		}
	}
	units := map[rlsv3.RateLimitResponse_RateLimit_Unit]uint64{
		rlsv3.RateLimitResponse_RateLimit_UNKNOWN: 0, rlsv3.RateLimitResponse_RateLimit_SECOND: 1, rlsv3.RateLimitResponse_RateLimit_MINUTE: 60,
		rlsv3.RateLimitResponse_RateLimit_HOUR: 3600, rlsv3.RateLimitResponse_RateLimit_DAY: 86400, rlsv3.RateLimitResponse_RateLimit_WEEK: 604800,
		rlsv3.RateLimitResponse_RateLimit_MONTH: 2592000, rlsv3.RateLimitResponse_RateLimit_YEAR: 31536000,
	}
	for u, want := range units {
		if got := unitSeconds(u); got != want {
			t.Errorf("unitSeconds(%v) = %d, want %d", u, got, want)
		}
	}
}
