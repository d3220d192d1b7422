package proxy_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// malformedBodyConfig has a streamed route (no retries: the body goes
// upstream as it arrives) and a retried route (the body is buffered for
// replay before any upstream is contacted), both to one cluster whose
// outlier detection would eject its only host after three gateway
// failures or 5xx in a row. Both are mirrored to a shadow cluster.
var malformedBodyConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}"}]`) + `
          - match: {prefix: /stream}
            route: {cluster: up, timeout: 15s, request_mirror_policies: [{cluster: shadow}]}
          - match: {prefix: /retry}
            route:
              cluster: up
              timeout: 15s
              retry_policy: {retry_on: [5xx, reset, connect-failure], num_retries: 2, retry_back_off: {base_interval: 1ms}}
              request_mirror_policies: [{cluster: shadow}]
clusters:
  - name: shadow
    endpoints: [{address: "{{SHADOW}}"}]
  - name: up
    endpoints: [{address: "{{UP}}"}]
    outlier_detection:
      consecutive_5xx: 3
      consecutive_gateway_failure: 3
      enforcing_consecutive_gateway_failure: 100
      max_ejection_percent: 100
      interval: 1s
`

// recordingUpstream is a real HTTP/1.1 server that records, for each
// request, the connection it came on and whether its body arrived whole,
// and which connections were closed.
type recordingUpstream struct {
	addr    string
	nextID  atomic.Int64
	started chan int64 // connection id of each request, as its handler starts

	mu       sync.Mutex
	requests []upstreamRequest
	closed   map[int64]bool
}

type upstreamRequest struct {
	conn    int64
	path    string
	bodyErr error
}

type connIDKey struct{}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	t.Helper()
	u := &recordingUpstream{started: make(chan int64, 64), closed: map[int64]bool{}}
	ids := sync.Map{} // net.Conn -> id
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := r.Context().Value(connIDKey{}).(int64)
		u.started <- id
		_, err := io.Copy(io.Discard, r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, upstreamRequest{conn: id, path: r.URL.Path, bodyErr: err})
		u.mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	s.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		id := u.nextID.Add(1)
		ids.Store(c, id)
		return context.WithValue(ctx, connIDKey{}, id)
	}
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st != http.StateClosed {
			return
		}
		if id, ok := ids.Load(c); ok {
			u.mu.Lock()
			u.closed[id.(int64)] = true
			u.mu.Unlock()
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	u.addr = s.Listener.Addr().String()
	return u
}

func (u *recordingUpstream) snapshot() ([]upstreamRequest, map[int64]bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	closed := make(map[int64]bool, len(u.closed))
	for k, v := range u.closed {
		closed[k] = v
	}
	return append([]upstreamRequest(nil), u.requests...), closed
}

// waitRequests waits up to 10 s until the upstream has recorded n requests.
func (u *recordingUpstream) waitRequests(t *testing.T, n int) []upstreamRequest {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs, _ := u.snapshot()
		if len(reqs) >= n {
			return reqs
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream recorded %d requests after 10s, want %d", len(reqs), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits up to 10 s until the upstream saw connection id closed.
func (u *recordingUpstream) waitClosed(t *testing.T, id int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, closed := u.snapshot(); closed[id] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("upstream connection %d still open 10s after the malformed request", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestMalformedRequestBody: a request body that the client breaks after
// its headers (a bad, overflowing or bare-LF chunk size, a bad chunk
// terminator, a Content-Length body cut short by a half-close) is the
// client's fault, on a streamed route and on a retried one alike: 400 at
// once with Connection: close, the connection closed, access-log flag DPE
// with details http1.codec_error, downstream_cx_protocol_error and
// downstream_rq_4xx counted, and nothing charged to the upstream host: no
// 5xx, no timeout, no outlier ejection after more requests than its
// thresholds. The upstream connection that carried the partial request is
// closed and never reused, and no shadow is sent the broken body.
func TestMalformedRequestBody(t *testing.T) {
	t.Parallel()
	up, shadow := newRecordingUpstream(t), newRecordingUpstream(t)
	h := startProxy(t, malformedBodyConfig, "{{UP}}", up.addr, "{{SHADOW}}", shadow.addr)
	addr := h.srv.ListenerAddr("ingress").String()

	const hidden = "GET /stream/hidden HTTP/1.1\r\nHost: a\r\n\r\n"
	shapes := []struct {
		name string
		// head is sent first, then tail once the upstream has the
		// request (streamed route); halfClose ends the client's side.
		chunked   bool
		tail      string
		halfClose bool
	}{
		{name: "bad chunk size", chunked: true, tail: "zz\r\nxx\r\n0\r\n\r\n" + hidden},
		{name: "overflowing chunk size", chunked: true, tail: "ffffffffffffffffff\r\nxx\r\n0\r\n\r\n" + hidden},
		{name: "chunk size with 0x", chunked: true, tail: "0x3\r\nabc\r\n0\r\n\r\n" + hidden},
		{name: "bad chunk terminator", chunked: true, tail: "3\r\nabcXY0\r\n\r\n" + hidden},
		{name: "bare LF after chunk size", chunked: true, tail: "3\nabc\r\n0\r\n\r\n" + hidden},
		{name: "bare LF after chunk data", chunked: true, tail: "3\r\nabc\n0\r\n\r\n" + hidden},
		{name: "bare LF after last chunk", chunked: true, tail: "0\n\r\n" + hidden},
		{name: "short content-length then half-close", tail: "abc", halfClose: true},
	}

	// send writes one request whose body the client breaks, and returns
	// everything the proxy answered until it closed the connection.
	send := func(t *testing.T, path, rid string, chunked bool, tail string, halfClose, waitUpstream bool) (string, time.Duration) {
		t.Helper()
		head := "POST " + path + " HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + rid + "\r\n"
		first := "5\r\nhello\r\n"
		if chunked {
			head += "Transfer-Encoding: chunked\r\n\r\n"
		} else {
			// More than the upstream writer buffers, so that the
			// headers go upstream before the body is complete.
			first = strings.Repeat("x", 20000)
			head += "Content-Length: 40000\r\n\r\n"
		}
		start := time.Now()
		c := dialSend(t, addr, head+first)
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if waitUpstream {
			// The headers are upstream before the body breaks.
			select {
			case <-up.started:
			case <-time.After(10 * time.Second):
				t.Fatal("the request never reached the upstream")
			}
		}
		if _, err := io.WriteString(c, tail); err != nil {
			t.Fatal(err)
		}
		if halfClose {
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatal(err)
			}
		}
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading until the proxy closes: %v (got %q)", err, b)
		}
		return string(b), time.Since(start)
	}
	// good sends a valid request and returns its status.
	good := func(t *testing.T, path string) {
		t.Helper()
		res, body := h.do(mustRequest(t, http.MethodPost, h.url("ingress", path), "fine"))
		if res.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("valid request after a malformed one: %d %q, want 200 ok", res.StatusCode, body)
		}
	}

	n := 0
	for _, route := range []string{"/stream", "/retry"} {
		for _, sh := range shapes {
			t.Run(strings.TrimPrefix(route, "/")+"/"+sh.name, func(t *testing.T) {
				h := h.with(t)
				n++
				good(t, route+"/before")
				before := up.waitRequests(t, 0)
				drainStarted(up.started)
				pooled := before[len(before)-1].conn

				rid := fmt.Sprintf("malformed-%d", n)
				streamed := route == "/stream"
				out, took := send(t, route+"/x", rid, sh.chunked, sh.tail, sh.halfClose, streamed)
				t.Logf("answered in %v: %q", took, out)
				if !strings.HasPrefix(out, "HTTP/1.1 400 ") {
					t.Fatalf("after %v the proxy answered %q, want 400", took, out)
				}
				if took > 10*time.Second {
					t.Errorf("400 took %v: the request waited for a timeout", took)
				}
				if strings.Count(out, "HTTP/1.1 ") != 1 || strings.Contains(out, "hidden") {
					t.Errorf("more than one response on the connection (a smuggled request was served): %q", out)
				}
				if !strings.Contains(strings.ToLower(out), "\r\nconnection: close\r\n") {
					t.Errorf("400 without Connection: close: %q", out)
				}

				line := h.logLine(rid)
				if f := flags(line); !hasFlag(f, "DPE") || hasFlag(f, "UT") || hasFlag(f, "DC") {
					t.Errorf("access-log flags %q, want DPE alone; line %v", f, line)
				}
				if d := line["response_code_details"]; d != "http1.codec_error" {
					t.Errorf("response_code_details %v, want http1.codec_error", d)
				}

				if streamed {
					// The upstream got part of a request on the pooled
					// connection; that connection is closed at once.
					up.waitClosed(t, pooled)
				}
				good(t, route+"/after")
				reqs := up.waitRequests(t, len(before)+1)
				after := reqs[len(reqs)-1]
				if after.path != route+"/after" {
					t.Fatalf("upstream's last request is %s, want %s/after (requests %+v)", after.path, route, reqs[len(before):])
				}
				if streamed {
					if after.conn == pooled {
						t.Errorf("the request after the malformed one reused upstream connection %d that carried the partial request", pooled)
					}
					partial := reqs[len(before)]
					if partial.path != route+"/x" || partial.bodyErr == nil {
						t.Errorf("upstream saw %+v, want the partial %s/x whose body failed", partial, route)
					}
				} else if len(reqs) != len(before)+1 {
					t.Errorf("the retried route sent the malformed request upstream: %+v", reqs[len(before):])
				}
				drainStarted(up.started)
			})
		}
	}

	total := uint64(n)
	// Every valid request was mirrored; no malformed one was, complete
	// or truncated.
	for _, r := range shadow.waitRequests(t, 2*n) {
		if !strings.HasSuffix(r.path, "/before") && !strings.HasSuffix(r.path, "/after") {
			t.Errorf("the shadow cluster was sent %s (body error %v)", r.path, r.bodyErr)
		}
	}
	h.waitStat("http.ingress_http.downstream_cx_protocol_error", total)
	h.waitStat("http.ingress_http.downstream_rq_4xx", total)
	for _, name := range []string{
		"cluster.up.upstream_rq_5xx", "cluster.up.upstream_rq_timeout", "cluster.up.upstream_rq_retry",
		"cluster.up.outlier_detection.ejections_active",
		"cluster.up.outlier_detection.ejections_detected_consecutive_5xx",
		"cluster.up.outlier_detection.ejections_detected_consecutive_gateway_failure",
		"cluster.up.outlier_detection.ejections_enforced_total",
	} {
		if got := h.stat(name); got != 0 {
			t.Errorf("%s = %d after %d malformed bodies, want 0", name, got, total)
		}
	}
}

// TestClientGoneMidBodyIsNotUpstreamFailure: a client that resets its
// connection in the middle of a streamed body is a downstream disconnect
// (DC), answered with nothing, and the host is not charged either.
func TestClientGoneMidBodyIsNotUpstreamFailure(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t)
	h := startProxy(t, malformedBodyConfig, "{{UP}}", up.addr, "{{SHADOW}}", closedPort(t))
	addr := h.srv.ListenerAddr("ingress").String()
	for i := range 4 {
		rid := fmt.Sprintf("gone-%d", i)
		c := dialSend(t, addr, "POST /stream/x HTTP/1.1\r\nHost: a\r\nX-Request-Id: "+rid+"\r\nContent-Length: 40000\r\n\r\n"+strings.Repeat("x", 20000))
		select {
		case <-up.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the request never reached the upstream")
		}
		_ = c.(*net.TCPConn).SetLinger(0) // RST, not FIN
		_ = c.Close()
		line := h.logLine(rid)
		if f := flags(line); !hasFlag(f, "DC") || hasFlag(f, "UT") || hasFlag(f, "DPE") {
			t.Errorf("access-log flags %q, want DC; line %v", f, line)
		}
		if code := line["response_code"]; code != float64(0) {
			t.Errorf("response_code %v, want 0 (nothing sent)", code)
		}
	}
	for _, name := range []string{
		"cluster.up.upstream_rq_5xx", "cluster.up.upstream_rq_timeout",
		"cluster.up.outlier_detection.ejections_detected_consecutive_gateway_failure",
		"cluster.up.outlier_detection.ejections_detected_consecutive_5xx",
	} {
		if got := h.stat(name); got != 0 {
			t.Errorf("%s = %d, want 0", name, got)
		}
	}
}

func mustRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// drainStarted empties the upstream's request-started channel.
func drainStarted(c chan int64) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

// TestMalformedRequestBodyHTTP2: over HTTP/2 (h2c with prior knowledge),
// a stream that ends its body before its declared content-length is the
// client's fault too: 400 on that stream, flag DPE with Envoy's HTTP/2
// details, nothing charged to the host, and the upstream connection that
// carried the partial request closed.
func TestMalformedRequestBodyHTTP2(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t)
	h := startProxy(t, malformedBodyConfig, "{{UP}}", up.addr, "{{SHADOW}}", closedPort(t))
	addr := h.srv.ListenerAddr("ingress").String()

	c := dialSend(t, addr, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb strings.Builder
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/stream/x"},
		{"content-length", "40000"}, {"x-request-id", "h2-short"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte(hb.String()), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// More than the upstream writer buffers, so that the request is
	// upstream before its body ends short.
	chunk := []byte(strings.Repeat("x", 10000))
	for range 2 {
		if err := fr.WriteData(1, false, chunk); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-up.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the upstream")
	}
	pooled := int64(1) // the upstream's first connection
	if err := fr.WriteData(1, true, nil); err != nil {
		t.Fatal(err)
	}
	status := ""
	for status == "" {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if f.StreamID == 1 {
				status = f.PseudoValue("status")
			}
		case *http2.RSTStreamFrame:
			t.Fatalf("stream reset (%v), want a 400", f.ErrCode)
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY (%v), want a 400", f.ErrCode)
		}
	}
	if status != "400" {
		t.Fatalf(":status %s, want 400", status)
	}
	line := h.logLine("h2-short")
	if f := flags(line); !hasFlag(f, "DPE") || hasFlag(f, "UT") || hasFlag(f, "DC") {
		t.Errorf("access-log flags %q, want DPE alone; line %v", f, line)
	}
	if d := line["response_code_details"]; d != "http2.violation.of.messaging.rule" {
		t.Errorf("response_code_details %v, want http2.violation.of.messaging.rule", d)
	}
	up.waitClosed(t, pooled)
	h.waitStat("http.ingress_http.downstream_rq_4xx", 1)
	h.waitStat("http.ingress_http.downstream_cx_protocol_error", 1)
	for _, name := range []string{"cluster.up.upstream_rq_5xx", "cluster.up.upstream_rq_timeout"} {
		if got := h.stat(name); got != 0 {
			t.Errorf("%s = %d, want 0", name, got)
		}
	}
}

// TestMalformedBodyAfterResponseStarted: when the upstream answers before
// the body ends (full duplex) and the body then turns out malformed, the
// response cannot become a 400: the downstream stream is reset (the
// connection closes before the response's last chunk), the access log
// says DPE, and the host is not charged.
func TestMalformedBodyAfterResponseStarted(t *testing.T) {
	t.Parallel()
	bodyEnded := make(chan error, 1)
	early := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex() // answer while the body still arrives
		_, _ = io.WriteString(w, "early ")
		_ = rc.Flush()
		_, err := io.Copy(io.Discard, r.Body)
		bodyEnded <- err
		_, _ = io.WriteString(w, "late")
	}))
	h := startProxy(t, malformedBodyConfig, "{{UP}}", early, "{{SHADOW}}", closedPort(t))
	addr := h.srv.ListenerAddr("ingress").String()

	c := dialSend(t, addr, "POST /stream/x HTTP/1.1\r\nHost: a\r\nX-Request-Id: started\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("early "))
	if _, err := io.ReadFull(res.Body, buf); err != nil || string(buf) != "early " {
		t.Fatalf("first bytes of the response: %q, %v", buf, err)
	}
	if _, err := io.WriteString(c, "zz\r\nxx\r\n0\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(res.Body)
	if err == nil {
		t.Fatalf("the response ended cleanly with %q; want it cut off (stream reset)", rest)
	}
	select {
	case err := <-bodyEnded:
		if err == nil {
			t.Error("the upstream read a complete body, want its connection closed mid-body")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream was still reading the body 10s after it broke")
	}
	line := h.logLine("started")
	if f := flags(line); !hasFlag(f, "DPE") || hasFlag(f, "UC") || hasFlag(f, "UT") {
		t.Errorf("access-log flags %q, want DPE and no upstream flag; line %v", f, line)
	}
	for _, name := range []string{"cluster.up.upstream_rq_5xx", "cluster.up.upstream_rq_timeout"} {
		if got := h.stat(name); got != 0 {
			t.Errorf("%s = %d, want 0", name, got)
		}
	}
}

// TestMalformedRequestBodyTLS: HTTP/1.1 over TLS gets the same answer: a
// malformed chunked body is refused with 400 and Connection: close, the
// connection is closed, and the request hidden after the body is never
// served, on the streamed route and the retried one.
func TestMalformedRequestBodyTLS(t *testing.T) {
	t.Parallel()
	up := newRecordingUpstream(t)
	certFile, keyFile, pool, _ := selfSigned(t, t.TempDir())
	cfg := strings.Replace(malformedBodyConfig, "stat_prefix: ingress_http",
		"stat_prefix: ingress_http\n    tls: {cert_file: \"{{CERT}}\", key_file: \"{{KEY}}\"}", 1)
	h := startProxy(t, cfg, "{{UP}}", up.addr, "{{SHADOW}}", closedPort(t), "{{CERT}}", certFile, "{{KEY}}", keyFile)
	addr := h.srv.ListenerAddr("ingress").String()
	const hidden = "GET /stream/hidden HTTP/1.1\r\nHost: a\r\n\r\n"
	for i, tc := range []struct{ path, tail string }{
		{"/stream/x", "zz\r\nxx\r\n0\r\n\r\n" + hidden},
		{"/stream/x", "ffffffffffffffffff\r\nxx\r\n0\r\n\r\n" + hidden},
		{"/retry/x", "zz\r\nxx\r\n0\r\n\r\n" + hidden},
		{"/retry/x", "3\r\nabc\n0\r\n\r\n" + hidden},
	} {
		rid := fmt.Sprintf("tls-%d", i)
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		start := time.Now()
		req := "POST " + tc.path + " HTTP/1.1\r\nHost: a\r\nX-Request-Id: " + rid + "\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n" + tc.tail
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		_ = c.Close()
		out := string(b)
		if err != nil {
			t.Fatalf("%s %q: reading until the proxy closes: %v (got %q)", tc.path, tc.tail, err, out)
		}
		if !strings.HasPrefix(out, "HTTP/1.1 400 ") || strings.Count(out, "HTTP/1.1 ") != 1 ||
			!strings.Contains(strings.ToLower(out), "\r\nconnection: close\r\n") {
			t.Errorf("%s %q: answered %q, want one 400 with Connection: close", tc.path, tc.tail, out)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("400 took %v: the request waited for a timeout", took)
		}
		if f := flags(h.logLine(rid)); !hasFlag(f, "DPE") {
			t.Errorf("access-log flags %q, want DPE", f)
		}
	}
	for _, r := range up.waitRequests(t, 0) {
		if strings.HasSuffix(r.path, "hidden") {
			t.Errorf("the request hidden after a malformed body reached the upstream")
		}
	}
}
