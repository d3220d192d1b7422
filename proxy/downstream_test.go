package proxy_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// limitsConfig is a plaintext listener with small downstream limits.
var limitsConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}"}]`, `limits: {max_request_headers_kb: 1, read_header_timeout: 1s, idle_timeout: 1s}`) + `
          - match: {path: /direct}
            direct_response: {status: 200, body: "ok"}
          - match: {prefix: /slow}
            route: {cluster: slow, timeout: 30s}
clusters:
  - name: slow
    endpoints: [{address: "{{SLOW}}"}]
`

// dialSend opens a connection to addr with a 10 s deadline on everything,
// writes req on it, and closes it when the test ends.
func dialSend(t *testing.T, addr, req string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return sendOn(t, c, req)
}

// sendOn gives c a 10 s deadline on everything, writes req on it, and
// closes it when the test ends.
func sendOn(t *testing.T, c net.Conn, req string) net.Conn {
	t.Helper()
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	return c
}

// rawExchange writes req on a new connection and returns everything the
// proxy sent until it closed the connection (bounded by 10 s).
func rawExchange(t *testing.T, addr, req string) string {
	t.Helper()
	return readUntilClosed(t, dialSend(t, addr, req))
}

// readUntilClosed returns everything the proxy sends on c until it closes.
func readUntilClosed(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading until the proxy closes: %v (got %q)", err, b)
	}
	return string(b)
}

// TestDownstreamCodecRejects: requests the HTTP/1 codec refuses get the
// status Envoy's codec gives, a body that says why, a closed connection,
// and a count in downstream_cx_protocol_error.
func TestDownstreamCodecRejects(t *testing.T) {
	t.Parallel()
	h := startProxy(t, limitsConfig, "{{SLOW}}", "127.0.0.1:1")
	addr := h.srv.ListenerAddr("ingress").String()
	tests := []struct {
		name, req, status, reason string
	}{
		{"head over max_request_headers_kb", "GET /direct HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 1100) + "\r\n\r\n",
			"431 Request Header Fields Too Large", "max_request_headers_kb"},
		{"Transfer-Encoding with Content-Length", "POST /direct HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
			"400 Bad Request", "both Transfer-Encoding and Content-Length"},
		{"unsupported Transfer-Encoding", "POST /direct HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
			"501 Not Implemented", `"gzip"`},
		{"missing Host", "GET /direct HTTP/1.1\r\n\r\n", "400 Bad Request", "missing required Host header"},
	}
	for i, tc := range tests {
		got := rawExchange(t, addr, tc.req)
		if !strings.HasPrefix(got, "HTTP/1.1 "+tc.status+"\r\n") || !strings.Contains(got, tc.reason) || !strings.Contains(got, "Connection: close\r\n") {
			t.Errorf("%s: response %q, want %s naming %q with Connection: close", tc.name, got, tc.status, tc.reason)
		}
		h.waitStat("http.ingress_http.downstream_cx_protocol_error", uint64(i+1))
	}
	// Each refusal is in the access log (flag DPE, details
	// http1.codec_error) and counted with its status class, as Envoy
	// records a codec error.
	h.waitStat("http.ingress_http.downstream_rq_4xx", 3)
	h.waitStat("http.ingress_http.downstream_rq_5xx", 1)
	logged := codecErrorCodes(t, h, len(tests))
	slices.Sort(logged)
	if want := []int{400, 400, 431, 501}; !slices.Equal(logged, want) {
		t.Errorf("codec errors in the access log: %v, want %v", logged, want)
	}

	// A good request on the same listener still works.
	if got := rawExchange(t, addr, "GET /direct HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(got, "HTTP/1.1 200 OK\r\n") || !strings.HasSuffix(got, "\r\n\r\nok") {
		t.Errorf("valid request after the refused ones: %q", got)
	}
}

// codecErrorCodes waits up to 10 s for want access-log lines of codec
// errors (details http1.codec_error, which must carry flag DPE) and
// returns their response codes.
func codecErrorCodes(t *testing.T, h *harness, want int) []int {
	t.Helper()
	var logged []int
	deadline := time.Now().Add(10 * time.Second)
	for len(logged) < want && time.Now().Before(deadline) {
		logged = logged[:0]
		b, _ := os.ReadFile(h.logPath)
		for line := range strings.Lines(string(b)) {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["response_code_details"] == "http1.codec_error" {
				if !hasFlag(flags(m), "DPE") {
					t.Errorf("codec error logged without DPE: %s", line)
				}
				code, _ := m["response_code"].(float64)
				logged = append(logged, int(code))
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return logged
}

// TestDownstreamTimeouts: read_header_timeout disconnects a client that
// stalls inside its request head (slowloris), and idle_timeout closes a
// kept-alive connection with no next request and counts it.
func TestDownstreamTimeouts(t *testing.T) {
	t.Parallel()
	h := startProxy(t, limitsConfig, "{{SLOW}}", "127.0.0.1:1")
	addr := h.srv.ListenerAddr("ingress").String()

	t.Run("read_header_timeout", func(t *testing.T) {
		c := dialSend(t, addr, "GET /direct HTTP/1.1\r\nHost: a\r\nX-Slow: ")
		b, err := io.ReadAll(c)
		if err != nil || len(b) != 0 {
			t.Fatalf("a stalled request head: read %q, %v; want the connection closed without a response", b, err)
		}
		h.waitStat("http.ingress_http.downstream_rq_header_timeout", 1)
	})

	t.Run("idle_timeout", func(t *testing.T) {
		c := dialSend(t, addr, "GET /direct HTTP/1.1\r\nHost: a\r\n\r\n")
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(res.Body); res.StatusCode != 200 || string(b) != "ok" || res.Close {
			t.Fatalf("first request: %d %q close=%v", res.StatusCode, b, res.Close)
		}
		if _, err := br.ReadByte(); err != io.EOF { //nolint:errorlint // io.EOF is returned unwrapped
			t.Fatalf("idle kept-alive connection: read %v, want io.EOF once idle_timeout closes it", err)
		}
		h.waitStat("http.ingress_http.downstream_cx_idle_timeout", 1)
	})
}

// TestDownstreamDisconnectCancelsUpstream: a client that hangs up while
// its request waits for a slow upstream cancels the upstream request (the
// upstream sees its context end), and the access log says DC.
func TestDownstreamDisconnectCancelsUpstream(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	slow := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-time.After(20 * time.Second):
			_, _ = io.WriteString(w, "too late")
		}
	}))
	h := startProxy(t, limitsConfig, "{{SLOW}}", slow)
	addr := h.srv.ListenerAddr("ingress").String()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\nX-Request-Id: dc-test\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	_ = c.Close()
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled within 10s of the client hanging up")
	}
	h.waitStat("http.ingress_http.downstream_rq_rx_reset", 1)
	// The client ended the connection while its request was active.
	h.waitStat("http.ingress_http.downstream_cx_destroy_remote_active_rq", 1)
	if got := h.stat("http.ingress_http.downstream_cx_destroy_local"); got != 0 {
		t.Errorf("downstream_cx_destroy_local = %d, want 0", got)
	}
	line := h.logLine("dc-test")
	if f := flags(line); !hasFlag(f, "DC") {
		t.Errorf("access-log flags %q, want DC; line %v", f, line)
	}
}

// bodyIdleConfig routes to an upstream without a route timeout, so that
// only stream_idle_timeout bounds a request body that stops arriving.
var bodyIdleConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}"}]`, `limits: {stream_idle_timeout: 1s}`) + `
          - match: {prefix: /}
            route: {cluster: up, timeout: 0s}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`

// TestRequestBodyStreamIdleTimeout: a client that stops sending its
// request body is answered 408 with flag SI once stream_idle_timeout
// passes (Envoy's behaviour), instead of holding the upstream exchange
// open; a client that sends slowly but steadily is not cut off.
func TestRequestBodyStreamIdleTimeout(t *testing.T) {
	t.Parallel()
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		_, _ = io.WriteString(w, "got "+strconv.Itoa(len(b)))
	}))
	h := startProxy(t, bodyIdleConfig, "{{UP}}", up)
	addr := h.srv.ListenerAddr("ingress").String()

	t.Run("stalled body", func(t *testing.T) {
		c := dialSend(t, addr, "POST /stall HTTP/1.1\r\nHost: a\r\nX-Request-Id: body-stall\r\nContent-Length: 100\r\n\r\n0123456789")
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no response to a stalled body within 10s: %v", err)
		}
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusRequestTimeout || string(b) != "stream timeout" {
			t.Fatalf("stalled body: %d %q, want 408 \"stream timeout\"", res.StatusCode, b)
		}
		if f := flags(h.logLine("body-stall")); !hasFlag(f, "SI") {
			t.Errorf("access-log flags %q, want SI", f)
		}
		h.waitStat("http.ingress_http.downstream_rq_idle_timeout", 1)
	})

	t.Run("slow but steady body", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() {
			for range 5 {
				time.Sleep(200 * time.Millisecond) // well under the 1s idle timeout
				if _, err := pw.Write([]byte("0123456789")); err != nil {
					return
				}
			}
			_ = pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, h.url("ingress", "/steady"), pr)
		req.ContentLength = 50
		res, body := h.do(req)
		if res.StatusCode != http.StatusOK || body != "got 50" {
			t.Errorf("steady body: %d %q, want 200 \"got 50\"", res.StatusCode, body)
		}
	})
}
