package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// h2Cases are the h2 mode's case names: the same proxy under HTTP/1.1,
// h2 over TLS and h2c, all driven by h2load, so that the HTTP/2 path's cost
// reads against the HTTP/1 path's in the same run.
const (
	h1Case  = "HTTP/1.1 (h2load --h1)"
	h2Case  = "h2 over TLS (ALPN)"
	h2cCase = "h2c (prior knowledge)"
)

func h2Spec() modeSpec {
	return modeSpec{
		Heading: "## hopwatch-proxy vs nginx: HTTP/2 (h2load)",
		peers:   nginxAndHopwatch,
		tweak: func(_ *harness, d *configData) (err error) {
			d.H2 = true
			d.H2CListen, err = freeLoopbackAddr()
			return err
		},
		measure:  measureH2,
		describe: describeH2,
		columns:  []column{errorsColumn, cpuColumn},
		conclude: concludeH2,
	}
}

func describeH2(h *harness) string {
	return fmt.Sprintf("Each proxy serves `/` from the same Go upstream (%d-byte body, HTTP/1.1 keep-alive upstream) three ways, each loaded by `h2load -t1` for %v after a %v warm-up: "+
		"HTTP/1.1 on the plaintext listener (`h2load --h1 -c%d -m1`: %d connections, one request at a time each, so one request in flight per connection as with wrk), "+
		"HTTP/2 over TLS negotiated by ALPN (`-c%d -m%d`: %d connections with up to %d concurrent streams each) and h2c with prior knowledge (same flags) on a listener that speaks only HTTP/2. "+
		"nginx 1.22 serves h2 with `listen … ssl http2` and h2c with `listen … http2` on a port of its own (a plaintext `http2` listener in nginx 1.22 speaks HTTP/2 only, no HTTP/1.1); "+
		"hopwatch-proxy's listeners offer both by default (`protocols: [http1, http2]`), and its h2c listener here is `protocols: [http2]`. "+
		"Every HTTP/2 request of hopwatch-proxy goes through `golang.org/x/net/http2`'s server; its HTTP/1 requests through its own codec (`proxy/http1`). "+
		"The harness checks that h2load negotiated the protocol the row names. The TLS certificate is a self-signed ECDSA P-256 one generated per run.",
		h.o.bodySize, h.o.duration, h.o.warmup, h.o.h1Conns, h.o.h1Conns, h.o.h2Conns, h.o.h2Streams, h.o.h2Conns, h.o.h2Streams)
}

func measureH2(ctx context.Context, h *harness, r *runningPeer) ([]modeSample, error) {
	cases := []struct {
		name, url, proto string
		conns, streams   int
	}{
		{h1Case, r.url, "http/1.1", h.o.h1Conns, 1},
		{h2Case, r.tlsURL, "h2", h.o.h2Conns, h.o.h2Streams},
		{h2cCase, "http://" + r.d.H2CListen + "/", "h2c", h.o.h2Conns, h.o.h2Streams},
	}
	var out []modeSample
	for _, c := range cases {
		if c.url == "https:///" || c.url == "" {
			return nil, fmt.Errorf("%s: the proxy has no TLS listener", c.name)
		}
		run := func(d time.Duration) (h2loadResult, error) {
			return h.h2load(ctx, c.url, c.proto, c.conns, c.streams, d)
		}
		if h.o.warmup > 0 {
			if _, err := run(h.o.warmup); err != nil {
				return nil, fmt.Errorf("%s: warm-up: %w", c.name, err)
			}
		}
		s, err := timed(r, func() (modeSample, error) {
			res, err := run(h.o.duration)
			return modeSample{Case: c.name, RPS: res.RPS, Requests: res.Done, Errors: res.errors()}, err
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// h2load runs one bounded h2load (-D) with one thread and checks that it
// negotiated proto. h2load does not verify certificates, which suits the
// harness's self-signed one.
func (h *harness) h2load(ctx context.Context, url, proto string, conns, streams int, d time.Duration) (h2loadResult, error) {
	if h.h2loadBin == "" {
		return h2loadResult{}, errors.New("h2load not found in PATH (apt-get install -y nghttp2-client)")
	}
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	args := []string{"-t1", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-m%d", streams), fmt.Sprintf("-D%d", int(d/time.Second))}
	if proto == "http/1.1" {
		args = append(args, "--h1")
	}
	args = append(args, url)
	stdout, err := runLoadTool(ctx, h.h2loadBin, args)
	if err != nil {
		return h2loadResult{}, fmt.Errorf("h2load %w", err)
	}
	res, err := parseH2load(stdout)
	if err != nil {
		return res, fmt.Errorf("h2load %s: %w", strings.Join(args, " "), err)
	}
	if res.Protocol != proto {
		return res, fmt.Errorf("h2load %s negotiated %q, want %q", strings.Join(args, " "), res.Protocol, proto)
	}
	if res.Done == 0 {
		return res, fmt.Errorf("h2load %s: %w:\n%s", strings.Join(args, " "), errNoRequests, strings.TrimSpace(string(stdout)))
	}
	return res, nil
}

// concludeH2 states what HTTP/2 costs each proxy against its own HTTP/1.1
// path: CPU per request and req/s, as medians of per-round ratios.
func concludeH2(samples []modeSample) string {
	var proxies []string
	for _, s := range samples {
		if s.Case == h1Case && !slices.Contains(proxies, s.Proxy) {
			proxies = append(proxies, s.Proxy)
		}
	}
	var parts []string
	for _, p := range proxies {
		for _, kase := range []string{h2cCase, h2Case} {
			cpu := ownRatio(samples, p, kase, h1Case, modeSample.cpuPerRequest)
			rate := ownRatio(samples, p, kase, h1Case, rps)
			parts = append(parts, fmt.Sprintf("%s %s: %s the CPU per request of its HTTP/1.1 path, %s the req/s", p, kase, formatRatio(cpu), formatRatio(rate)))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "**HTTP/2 against each proxy's own HTTP/1.1 path** (same run, medians of per-round ratios; the HTTP/2 loads keep more requests in flight, so compare CPU per request rather than req/s): " +
		strings.Join(parts, "; ") + "."
}

// ownRatio is the median over rounds of value(case a) / value(case b) for
// one proxy.
func ownRatio(samples []modeSample, proxy, a, b string, value func(modeSample) float64) float64 {
	var rs []float64
	for _, sa := range samples {
		if sa.Proxy != proxy || sa.Case != a {
			continue
		}
		for _, sb := range samples {
			if sb.Proxy == proxy && sb.Case == b && sb.Round == sa.Round {
				rs = append(rs, ratio(value(sa), value(sb)))
			}
		}
	}
	if len(rs) == 0 {
		return math.NaN()
	}
	return median(rs)
}
