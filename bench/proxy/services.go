package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// versionName is the Versions entry for a -proxies name: the hopwatch-proxy
// variants are one binary.
func versionName(name string) string {
	if isHopwatch(name) {
		return "hopwatch-proxy"
	}
	return name
}

// statsdSinkProc is the statsd-sink that hopwatch-proxy-full and
// hopwatch-proxy-exemplars send their stats to.
type statsdSinkProc struct {
	*child
	// udp is its StatsD UDP listener and web its /metrics, both host:port
	// on 127.0.0.1.
	udp, web string
}

// startStatsdSink runs the real statsd-sink that the full-observability
// variants send their stats to, with the Envoy preset as every deployment
// runs it (so timers become histograms that keep exemplars), UDP and HTTP on
// free loopback ports and TCP off, once its /metrics answers.
func (h *harness) startStatsdSink(ctx context.Context) (*statsdSinkProc, error) {
	dir := filepath.Join(h.workDir, "statsd-sink")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("statsd-sink: %w", err)
	}
	udp, err := freeLoopbackUDPAddr()
	if err != nil {
		return nil, err
	}
	web, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	c, err := startChild("statsd-sink", []string{h.o.statsdSinkBin, "--preset=envoy",
		"--statsd.listen-udp=" + udp, "--statsd.listen-tcp=", "--web.listen-address=" + web},
		nil, filepath.Join(dir, "stdout.log"), filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, c, "http://"+web+"/metrics", nil, nil, 30*time.Second); err != nil {
		c.stop(syscall.SIGKILL, 0)
		return nil, fmt.Errorf("statsd-sink: %w", err)
	}
	return &statsdSinkProc{child: c, udp: udp, web: web}, nil
}

// jaegerProc is the Jaeger that hopwatch-proxy-full traces to.
type jaegerProc struct {
	*child
	// otlp is the OTLP gRPC receiver and query the HTTP query API, both
	// host:port on 127.0.0.1.
	otlp, query string
}

// startJaeger runs Jaeger with the end-to-end tests' config (in-memory
// storage, every listener on a loopback port passed through HOPWATCH_E2E_*)
// and waits until its query API answers.
func (h *harness) startJaeger(ctx context.Context) (*jaegerProc, error) {
	dir := filepath.Join(h.workDir, "jaeger")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	addrs := make([]string, 4)
	for i := range addrs {
		a, err := freeLoopbackAddr()
		if err != nil {
			return nil, err
		}
		addrs[i] = a
	}
	j := &jaegerProc{otlp: addrs[0], query: addrs[2]}
	env := []string{
		"HOPWATCH_E2E_OTLP_GRPC=" + addrs[0],
		"HOPWATCH_E2E_OTLP_HTTP=" + addrs[1],
		"HOPWATCH_E2E_QUERY_HTTP=" + addrs[2],
		"HOPWATCH_E2E_QUERY_GRPC=" + addrs[3],
	}
	c, err := startChild("jaeger", []string{h.o.jaegerBin, "--config", h.o.jaegerConfig}, env,
		filepath.Join(dir, "stdout.log"), filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	j.child = c
	// Jaeger is slow to start on a loaded machine; the e2e tests allow 90 s.
	if err := waitReady(ctx, c, "http://"+j.query+"/api/services", nil, nil, 90*time.Second); err != nil {
		c.stop(syscall.SIGKILL, 0)
		return nil, fmt.Errorf("jaeger: %w", err)
	}
	return j, nil
}

// sawService returns "yes" if Jaeger's query API lists service, else why
// not. The exporter batches for up to a second and hopwatch-proxy-full was
// stopped gracefully, so its spans are in by now.
func (j *jaegerProc) sawService(ctx context.Context, service string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+j.query+"/api/services", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var body struct {
		Data []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Sprintf("GET /api/services: %v", err)
	}
	if slices.Contains(body.Data, service) {
		return "yes"
	}
	return fmt.Sprintf("services: [%s]", strings.Join(body.Data, ", "))
}
