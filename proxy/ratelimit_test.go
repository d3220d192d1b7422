package proxy_test

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"google.golang.org/grpc"

	"github.com/hopwatch/hopwatch/proxy/ratelimit"
)

// The rate-limiting tests run the proxy in process with real sockets:
// an upstream, and a gRPC rate-limit service (a stand-in whose answers the
// test decides; e2e/ratelimit runs the real envoyproxy/ratelimit).

// rlsStub answers OVER_LIMIT for descriptors holding user=bob, OK
// otherwise, and records the requests.
type rlsStub struct {
	rlsv3.UnimplementedRateLimitServiceServer
	mu  sync.Mutex
	got []*rlsv3.RateLimitRequest
}

func (s *rlsStub) ShouldRateLimit(_ context.Context, req *rlsv3.RateLimitRequest) (*rlsv3.RateLimitResponse, error) {
	s.mu.Lock()
	s.got = append(s.got, req)
	s.mu.Unlock()
	res := &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OK, RequestHeadersToAdd: []*corev3.HeaderValue{{Key: "x-rl-checked", Value: "1"}}}
	for _, d := range req.GetDescriptors() {
		for _, e := range d.GetEntries() {
			if e.GetKey() == "user" && e.GetValue() == "bob" {
				return &rlsv3.RateLimitResponse{OverallCode: rlsv3.RateLimitResponse_OVER_LIMIT, ResponseHeadersToAdd: []*corev3.HeaderValue{{Key: "x-rl-reason", Value: "user"}}}, nil
			}
		}
	}
	return res, nil
}

func (s *rlsStub) requests() []*rlsv3.RateLimitRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*rlsv3.RateLimitRequest(nil), s.got...)
}

func startRLSStub(t *testing.T) (*rlsStub, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	stub := &rlsStub{}
	rlsv3.RegisterRateLimitServiceServer(srv, stub)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return stub, ln.Addr().String()
}

var rateLimitConfig = `
admin: {address: "127.0.0.1:0"}
lifecycle: {drain_time: 0s, watch_config: false}
node: {cluster: front}
listeners:
  - name: ingress
    address: "127.0.0.1:0"
    stat_prefix: ingress_http
    request_id: {always_set_request_id_in_response: true}
    access_log: [{path: "{{LOG}}", format: json}]
    rate_limit_service: {cluster: rls, domain: edge, timeout: 2s}
    virtual_hosts:
      - name: all
        domains: ["*"]
        local_rate_limit:
          stat_prefix: shared
          token_bucket: {max_tokens: 2, fill_interval: 1h}
        rate_limits:
          - actions: [{source_cluster: {}}, {request_headers: {header_name: x-user, descriptor_key: user}}]
        routes:
          - name: own
            match: {prefix: /own}
            route: {cluster: up}
            local_rate_limit:
              stat_prefix: own
              token_bucket: {max_tokens: 1, fill_interval: 1h}
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              status: 503
              response_headers_to_add: [{key: x-limited-by, value: own}]
          - name: shared_a
            match: {prefix: /a}
            route: {cluster: up, rate_limits: [{actions: [{destination_cluster: {}}, {generic_key: {descriptor_value: a}}]}]}
          - name: shared_direct
            match: {prefix: /direct}
            direct_response: {status: 200, body: direct}
          - name: global
            match: {prefix: /global}
            route: {cluster: up}
            local_rate_limit: {token_bucket: {max_tokens: 100, fill_interval: 1h}}
` + listenerHead("down_allow", "down_allow", `request_id: {always_set_request_id_in_response: true}`, `access_log: [{path: "{{LOG}}", format: json}]`, `rate_limit_service: {cluster: rls_down, domain: edge}`) + `
          - match: {prefix: /}
            route: {cluster: up, rate_limits: [{actions: [{remote_address: {}}]}]}
` + listenerHead("down_deny", "down_deny", `request_id: {always_set_request_id_in_response: true}`, `access_log: [{path: "{{LOG}}", format: json}]`, `rate_limit_service: {cluster: rls_down, domain: edge, failure_mode_deny: true}`) + `
          - match: {prefix: /}
            route: {cluster: up2, rate_limits: [{actions: [{remote_address: {}}]}]}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
  - name: up2
    endpoints: [{address: "{{UP}}"}]
  - name: rls
    protocol: h2c
    endpoints: [{address: "{{RLS}}"}]
  - name: rls_down
    protocol: h2c
    connect_timeout: 1s
    endpoints: [{address: "{{DOWN}}"}]
`

func TestLocalRateLimit(t *testing.T) {
	t.Parallel()
	_, rls := startRLSStub(t)
	h := startProxy(t, rateLimitConfig, "{{UP}}", upstream(t, echoHandler("up")), "{{RLS}}", rls, "{{DOWN}}", closedPort(t))

	// The route's own bucket of one: the second request is refused with
	// its status, headers and Envoy's body.
	res, _ := h.get(h.url("ingress", "/own"))
	if res.StatusCode != 200 || res.Header.Get("X-Ratelimit-Limit") != "1" || res.Header.Get("X-Ratelimit-Remaining") != "0" || res.Header.Get("X-Ratelimit-Reset") != "3600" {
		t.Errorf("first /own: %d, x-ratelimit %q %q %q", res.StatusCode, res.Header.Get("X-Ratelimit-Limit"), res.Header.Get("X-Ratelimit-Remaining"), res.Header.Get("X-Ratelimit-Reset"))
	}
	res, body := h.get(h.url("ingress", "/own"))
	if res.StatusCode != 503 || body != "local_rate_limited" || res.Header.Get("X-Envoy-Ratelimited") != "true" ||
		res.Header.Get("X-Limited-By") != "own" || res.Header.Get("X-Ratelimit-Remaining") != "0" || res.Header.Get("X-Upstream") != "" {
		t.Errorf("second /own: %d %q, headers %v", res.StatusCode, body, res.Header)
	}
	m := h.logLine(res.Header.Get("X-Request-Id"))
	if !hasFlag(flags(m), "RL") || m["response_code_details"] != "local_rate_limited" || m["response_code"] != 503.0 {
		t.Errorf("refused request's log line: %v", m)
	}

	// The virtual host's bucket of two is shared by /a and /direct (a
	// direct response is limited too, as Envoy's filter limits it); /own
	// and /global have their own.
	codes := []int{}
	for _, p := range []string{"/a", "/direct", "/a", "/direct"} {
		res, _ := h.get(h.url("ingress", p), "X-User", "alice")
		codes = append(codes, res.StatusCode)
	}
	if want := []int{200, 200, 429, 429}; !slices.Equal(codes, want) {
		t.Errorf("shared bucket: statuses %v, want %v", codes, want)
	}

	h.wantStats(map[string]uint64{
		"own.http_local_rate_limit.enabled": 2, "own.http_local_rate_limit.ok": 1,
		"own.http_local_rate_limit.rate_limited": 1, "own.http_local_rate_limit.enforced": 1,
		"shared.http_local_rate_limit.enabled": 4, "shared.http_local_rate_limit.ok": 2,
		"shared.http_local_rate_limit.rate_limited": 2, "shared.http_local_rate_limit.enforced": 2,
		"http.ingress_http.downstream_rq_4xx": 2,
	})
}

func TestGlobalRateLimit(t *testing.T) {
	t.Parallel()
	stub, rls := startRLSStub(t)
	h := startProxy(t, rateLimitConfig, "{{UP}}", upstream(t, echoHandler("up")), "{{RLS}}", rls, "{{DOWN}}", closedPort(t))

	// OK: the service's request header reaches the upstream.
	res, body := h.get(h.url("ingress", "/global"), "X-User", "alice")
	if res.StatusCode != 200 || decodeEcho(t, body).Header.Get("X-Rl-Checked") != "1" {
		t.Fatalf("alice: %d %q", res.StatusCode, body)
	}
	// OVER_LIMIT: 429 with the service's headers, flag RL.
	res, body = h.get(h.url("ingress", "/global"), "X-User", "bob")
	if res.StatusCode != 429 || body != "" || res.Header.Get("X-Envoy-Ratelimited") != "true" || res.Header.Get("X-Rl-Reason") != "user" {
		t.Errorf("bob: %d %q, headers %v", res.StatusCode, body, res.Header)
	}
	m := h.logLine(res.Header.Get("X-Request-Id"))
	if !hasFlag(flags(m), "RL") || m["response_code_details"] != "request_rate_limited" || m["upstream_cluster"] != "up" {
		t.Errorf("over-limit log line: %v", m)
	}
	// No x-user: the virtual host's descriptor is dropped and the route
	// has none, so the service is not asked.
	before := len(stub.requests())
	if res, _ := h.get(h.url("ingress", "/global")); res.StatusCode != 200 {
		t.Errorf("without x-user: %d", res.StatusCode)
	}
	if n := len(stub.requests()) - before; n != 0 {
		t.Errorf("the service was asked %d times for a request without descriptors", n)
	}
	// The route's descriptor comes first, then the virtual host's.
	if res, _ := h.get(h.url("ingress", "/a"), "X-User", "carol"); res.StatusCode != 200 {
		t.Errorf("/a: %d", res.StatusCode)
	}
	reqs := stub.requests()
	last := reqs[len(reqs)-1]
	var got []string
	for _, d := range last.GetDescriptors() {
		var es []string
		for _, e := range d.GetEntries() {
			es = append(es, e.GetKey()+"="+e.GetValue())
		}
		got = append(got, strings.Join(es, ","))
	}
	if want := []string{"destination_cluster=up,generic_key=a", "source_cluster=front,user=carol"}; last.GetDomain() != "edge" || !slices.Equal(got, want) {
		t.Errorf("descriptors sent: domain %q, %q; want edge, %q", last.GetDomain(), got, want)
	}
	h.wantStats(map[string]uint64{
		"cluster.up.ratelimit.ok": 2, "cluster.up.ratelimit.over_limit": 1, "cluster.up.ratelimit.error": 0,
		"cluster.up.upstream_rq_429": 1,
	})
}

// TestGlobalRateLimitFailureMode: the service's cluster has nothing
// listening; failure_mode_deny decides.
func TestGlobalRateLimitFailureMode(t *testing.T) {
	t.Parallel()
	_, rls := startRLSStub(t)
	h := startProxy(t, rateLimitConfig, "{{UP}}", upstream(t, echoHandler("up")), "{{RLS}}", rls, "{{DOWN}}", closedPort(t))
	for range 3 {
		if res, body := h.get(h.url("down_allow", "/")); res.StatusCode != 200 {
			t.Errorf("failure mode allow: %d %q", res.StatusCode, body)
		}
	}
	res, body := h.get(h.url("down_deny", "/"))
	if res.StatusCode != 500 || res.Header.Get("X-Upstream") != "" {
		t.Errorf("failure mode deny: %d %q", res.StatusCode, body)
	}
	m := h.logLine(res.Header.Get("X-Request-Id"))
	if !hasFlag(flags(m), "RLSE") || m["response_code_details"] != ratelimit.DetailsError {
		t.Errorf("denied request's log line: %v", m)
	}
	h.wantStats(map[string]uint64{
		"cluster.up.ratelimit.error": 3, "cluster.up.ratelimit.failure_mode_allowed": 3,
		"cluster.up2.ratelimit.error": 1, "cluster.up2.ratelimit.failure_mode_allowed": 0,
	})
}

// TestRateLimitReload: a reload builds fresh buckets and a new service
// client, and requests keep being limited and answered across it.
func TestRateLimitReload(t *testing.T) {
	t.Parallel()
	_, rls := startRLSStub(t)
	up := upstream(t, echoHandler("up"))
	vars := []string{"{{UP}}", up, "{{RLS}}", rls, "{{DOWN}}", closedPort(t)}
	h := startProxy(t, rateLimitConfig, vars...)
	for range 2 {
		h.get(h.url("ingress", "/own"))
	}
	h.writeConfig(strings.Replace(rateLimitConfig, "max_tokens: 1,", "max_tokens: 3,", 1))
	if err := h.srv.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	codes := []int{}
	for range 4 {
		res, _ := h.get(h.url("ingress", "/own"))
		codes = append(codes, res.StatusCode)
	}
	if want := []int{200, 200, 200, 503}; !slices.Equal(codes, want) {
		t.Errorf("after reload: %v, want %v", codes, want)
	}
	if res, _ := h.get(h.url("ingress", "/global"), "X-User", "bob"); res.StatusCode != 429 {
		t.Errorf("global limiter after reload: %d, want 429", res.StatusCode)
	}
}
