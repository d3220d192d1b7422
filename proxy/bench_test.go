package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/hopwatch/hopwatch/proxy"
	"github.com/hopwatch/hopwatch/tracing"
)

// benchConfig is the bench/proxy setup in process: one listener, one
// static cluster, a JSON access log to a file, and the stats settings
// under test.
var benchConfig = testHead + "{{STATS}}\n" + listenersHead("bench", "bench", `access_log: [{path: "{{LOG}}", format: json}]`) + ` [{match: {prefix: /}, route: {cluster: bench_upstream}}]
clusters:
  - name: bench_upstream
    endpoints: [{address: "{{UP}}"}]
`

// drainUDP reads and discards datagrams, as a StatsD server that keeps up.
func drainUDP(b *testing.B) string {
	b.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() { _ = pc.Close(); <-done })
	return pc.LocalAddr().String()
}

// BenchmarkProxyRequest measures one keep-alive GET through the proxy to a
// loopback upstream (128-byte body), with stats off and with full stats
// flushed every 5s to a UDP StatsD socket. ns/op and allocs/op include the
// client and the upstream, which are the same in both; the difference is
// what stats cost per request.
func BenchmarkProxyRequest(b *testing.B) {
	body := strings.Repeat("x", 128)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	b.Cleanup(up.Close)
	for _, tc := range []struct {
		name  string
		stats func(b *testing.B) string
	}{
		{"stats=off", func(*testing.B) string { return "stats_config: {disabled: true}" }},
		{"stats=on", func(b *testing.B) string {
			return "stats_config: {flush_interval: 5s}\nstats_sinks: [{type: statsd, address: \"" + drainUDP(b) + "\"}]"
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := startProxyWith(b, nil, benchConfig, "{{STATS}}", tc.stats(b), "{{UP}}", up.Listener.Addr().String())
			measureGets(b, h, body)
		})
	}
}

// discardExporter accepts and forgets spans, so that a benchmark measures
// what making spans costs the request path, not a collector.
type discardExporter struct{}

func (discardExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardExporter) Shutdown(context.Context) error                             { return nil }

// BenchmarkProxyTracing measures the same keep-alive GET as
// BenchmarkProxyRequest with tracing off, sampling 1% and 100% (spans
// exported to a discarding exporter). Requests carry no trace context, so
// the 1% case pays for the sampling decision and an unsampled traceparent
// on most requests and for two recorded spans on one in a hundred.
func BenchmarkProxyTracing(b *testing.B) {
	body := strings.Repeat("x", 128)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, body)
	}))
	b.Cleanup(up.Close)
	for _, tc := range []struct{ name, tracing string }{
		{"tracing=off", ""},
		{"tracing=1%", "tracing: {sampling_ratio: 0.01}"},
		{"tracing=100%", "tracing: {sampling_ratio: 1}"},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := startProxyWith(b, []proxy.Option{proxy.WithTracingOptions(tracing.WithExporter(discardExporter{}),
				tracing.WithLookupEnv(func(string) (string, bool) { return "", false }))},
				benchConfig, "{{STATS}}", tc.tracing, "{{UP}}", up.Listener.Addr().String())
			measureGets(b, h, body)
		})
	}
}

// measureGets times keep-alive GETs of / on the listener "bench" over one
// connection, opened before the measurement, each answered 200 with body.
func measureGets(b *testing.B, h *harness, body string) {
	url := h.url("bench", "/")
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	b.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}
	get := func() {
		res, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || n != int64(len(body)) {
			b.Fatalf("status %d, %d body bytes; want 200 and %d", res.StatusCode, n, len(body))
		}
	}
	get() // connect outside the measurement
	b.ReportAllocs()
	for b.Loop() {
		get()
	}
}
