package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// bodySize1MiB is the large-body mode's request and response body, the
// upstream's largeSize.
const bodySize1MiB = 1 << 20

// bodiesLoad is the large-body mode's wrk load: few connections, since
// each request moves a mebibyte.
var bodiesLoad = load{Threads: 1, Conns: 8}

// Case names of the large-body mode.
const (
	postCase  = "POST 1 MiB (request body streamed to the upstream)"
	largeCase = "GET 1 MiB response"
)

// postScript makes wrk POST a 1 MiB body; the upstream reads it whole and
// answers with its small body.
const postScript = `wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
`

func bodiesSpec() modeSpec {
	gibPerSec := func(s modeSample) float64 {
		if s.Requests == 0 || s.RPS == 0 {
			return nan
		}
		return s.RPS * bodySize1MiB / (1 << 30)
	}
	cpuPerGiB := func(s modeSample) float64 {
		if s.Bytes == 0 {
			return nan
		}
		return s.CPU / (s.Bytes / (1 << 30))
	}
	return modeSpec{
		Heading: "## hopwatch-proxy vs nginx: 1 MiB bodies",
		peers:   nginxAndHopwatch,
		tweak: func(_ *harness, d *configData) error {
			d.LargeBodies = true
			return nil
		},
		measure:  measureBodies,
		describe: describeBodies,
		columns: []column{
			errorsColumn,
			{Title: "GiB/s", Value: gibPerSec, Format: formatFixed(2), Ratio: true},
			{Title: "proxy CPU s/GiB", Value: cpuPerGiB, Format: formatFixed(2), Ratio: true},
		},
	}
}

func describeBodies(h *harness) string {
	return fmt.Sprintf("`wrk %s` for %v after a %v warm-up, two cases: a 1 MiB POST (a wrk Lua script sets the body; the upstream reads it whole, then answers with its %d-byte body) "+
		"and a GET of `/large`, which the upstream answers with 1 MiB. GiB/s counts the 1 MiB bodies only (req/s × 1 MiB); proxy CPU s/GiB is the proxy's CPU time over the measured run divided by the GiB of bodies wrk completed. "+
		"nginx streams both ways here: `proxy_request_buffering off` (its default would buffer the whole request body, to disk past 16 KiB, before going upstream), `client_max_body_size 2m`, "+
		"and 32 KiB buffers (`client_body_buffer_size`, `proxy_buffer_size`, `proxy_buffers 8 32k`; its defaults are a memory page) with responses kept in memory (`proxy_max_temp_file_size 0`), "+
		"to match hopwatch-proxy's 32 KiB copy buffer; hopwatch-proxy streams a body above `per_request_buffer_limit_bytes` (64 KiB, default) without keeping it for retries.",
		bodiesLoad, h.o.duration, h.o.warmup, h.o.bodySize)
}

func measureBodies(ctx context.Context, h *harness, r *runningPeer) ([]modeSample, error) {
	script := filepath.Join(r.d.Dir, "post-1mib.lua")
	if err := os.WriteFile(script, []byte(postScript), 0o644); err != nil {
		return nil, fmt.Errorf("write wrk script: %w", err)
	}
	var out []modeSample
	for _, c := range []struct {
		name, url string
		extra     []string
	}{
		{postCase, r.url + "upload", []string{"-s", script}},
		{largeCase, r.url + "large", nil},
	} {
		s, err := h.wrkSample(ctx, r, c.name, c.url, bodiesLoad, c.extra...)
		if err != nil {
			return nil, err
		}
		s.Bytes = float64(s.Requests) * bodySize1MiB
		out = append(out, s)
	}
	return out, nil
}
