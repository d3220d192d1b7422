package proxy_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// uuidV4 matches a canonical lower-case version 4 UUID.
var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// simpleConfig is one listener routing everything to cluster "up".
var simpleConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}", format: json}]`) + `
          - name: to_up
            match: {prefix: /}
            route: {cluster: up}
clusters:
  - name: up
    protocol: {{PROTO}}
    endpoints: [{address: "{{UP}}"}]
`

func upstream(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func TestHTTP1Proxying(t *testing.T) {
	t.Parallel()
	up := upstream(t, echoHandler("a"))
	h := startProxy(t, simpleConfig, "{{UP}}", up, "{{PROTO}}", "http1")

	req, _ := http.NewRequest(http.MethodPut, h.url("ingress", "/some/path?q=1&r=a%20b"), strings.NewReader("hello body"))
	req.Header.Set("X-Custom", "v1")
	req.Header.Add("X-Multi", "a")
	req.Header.Add("X-Multi", "b")
	req.Header.Set("User-Agent", "hopwatch-test")
	res, body := h.do(req)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, body %q", res.StatusCode, body)
	}
	e := decodeEcho(t, body)
	if e.Method != http.MethodPut || e.Path != "/some/path" || e.Query != "q=1&r=a%20b" || e.Body != "hello body" {
		t.Errorf("upstream saw %s %s?%s body %q; want PUT /some/path?q=1&r=a%%20b body \"hello body\"", e.Method, e.Path, e.Query, e.Body)
	}
	if got := e.Header.Get("X-Custom"); got != "v1" {
		t.Errorf("upstream X-Custom = %q, want v1", got)
	}
	if got := e.Header.Values("X-Multi"); strings.Join(got, ",") != "a,b" {
		t.Errorf("upstream X-Multi = %q, want [a b]", got)
	}
	if e.Host != req.URL.Host {
		t.Errorf("upstream Host = %q, want %q", e.Host, req.URL.Host)
	}
	rid := e.Header.Get("X-Request-Id")
	if !uuidV4.MatchString(rid) {
		t.Errorf("generated x-request-id %q is not a UUID v4", rid)
	}
	if got := res.Header.Get("X-Upstream"); got != "a" {
		t.Errorf("response X-Upstream = %q, want a", got)
	}
	if got := res.Header.Get("Server"); got != "hopwatch" {
		t.Errorf("response Server = %q, want hopwatch (overwritten)", got)
	}
	if got := res.Header.Get("X-Envoy-Upstream-Service-Time"); got == "" {
		t.Error("response lacks x-envoy-upstream-service-time")
	}
	if got := res.Header.Get("X-Request-Id"); got != "" {
		t.Errorf("x-request-id %q echoed without always_set_request_id_in_response", got)
	}

	// The access log line for this request carries every promised field.
	m := h.logLine(rid)
	for _, k := range []string{"start_time", "method", "path", "protocol", "response_code", "response_flags",
		"response_code_details", "bytes_received", "bytes_sent", "duration", "upstream_service_time",
		"x_forwarded_for", "user_agent", "request_id", "authority", "upstream_cluster", "upstream_host",
		"route_name", "attempts", "trace_id", "span_id"} {
		if _, ok := m[k]; !ok {
			t.Errorf("access log line lacks %q: %v", k, m)
		}
	}
	want := map[string]any{
		"method": "PUT", "path": "/some/path?q=1&r=a%20b", "protocol": "HTTP/1.1", "response_code": 200.0,
		"response_flags": "-", "response_code_details": "via_upstream", "bytes_received": 10.0,
		"x_forwarded_for": "127.0.0.1", "user_agent": "hopwatch-test", "authority": req.URL.Host,
		"upstream_cluster": "up", "upstream_host": up, "route_name": "to_up", "attempts": 1.0,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("access log %s = %#v, want %#v", k, m[k], v)
		}
	}
	if bs, _ := m["bytes_sent"].(float64); int(bs) != len(body) {
		t.Errorf("access log bytes_sent = %v, want %d", m["bytes_sent"], len(body))
	}
	if _, ok := m["upstream_service_time"].(float64); !ok {
		t.Errorf("access log upstream_service_time = %#v, want a number", m["upstream_service_time"])
	}
	if st, _ := m["start_time"].(string); !strings.HasSuffix(st, "Z") {
		t.Errorf("access log start_time = %q, want RFC 3339 UTC", st)
	}
}

func TestH2OverTLSDownstream(t *testing.T) {
	t.Parallel()
	up := upstream(t, echoHandler("a"))
	dir := t.TempDir()
	certFile, keyFile, pool, _ := selfSigned(t, dir)
	h := startProxy(t, testHead+listenersHead("tls", "tls_http", `tls: {cert_file: "{{CERT}}", key_file: "{{KEY}}"}`, `access_log: []`)+` [{match: {prefix: /}, route: {cluster: up}}]
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`, "{{UP}}", up, "{{CERT}}", certFile, "{{KEY}}", keyFile)

	var protos http.Protocols
	protos.SetHTTP2(true)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}},
		Protocols:       &protos,
	}}
	t.Cleanup(c.CloseIdleConnections)
	addr := h.srv.ListenerAddr("tls").String()
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/tls?x=1", strings.NewReader("over h2"))
	res, body := e2etest.Fetch(t, c, req)
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		t.Fatalf("status %d proto %s, want 200 over HTTP/2", res.StatusCode, res.Proto)
	}
	e := decodeEcho(t, body)
	if e.Body != "over h2" || e.Path != "/tls" || e.Query != "x=1" {
		t.Errorf("upstream saw %s?%s body %q", e.Path, e.Query, e.Body)
	}
	if got := e.Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", got)
	}
}

func TestH2CDownstream(t *testing.T) {
	t.Parallel()
	up := upstream(t, echoHandler("a"))
	h := startProxy(t, simpleConfig, "{{UP}}", up, "{{PROTO}}", "http1")
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &protos}}
	t.Cleanup(c.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodPost, h.url("ingress", "/h2c"), strings.NewReader("prior knowledge"))
	res, body := e2etest.Fetch(t, c, req)
	if res.StatusCode != http.StatusOK || res.ProtoMajor != 2 {
		t.Fatalf("status %d proto %s, want 200 over HTTP/2", res.StatusCode, res.Proto)
	}
	if e := decodeEcho(t, body); e.Body != "prior knowledge" || e.Proto != 1 {
		t.Errorf("upstream saw body %q over HTTP/%d, want the body over HTTP/1 (http1 cluster)", e.Body, e.Proto)
	}
}

func TestUpstreamProtocols(t *testing.T) {
	t.Parallel()
	// http2: TLS with ALPN h2.
	tlsUp := httptest.NewUnstartedServer(echoHandler("tls"))
	tlsUp.EnableHTTP2 = true
	tlsUp.StartTLS()
	t.Cleanup(tlsUp.Close)
	// h2c: HTTP/2 with prior knowledge.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2cUp := httptest.NewUnstartedServer(echoHandler("h2c"))
	h2cUp.Config.Protocols = &protos
	h2cUp.Start()
	t.Cleanup(h2cUp.Close)

	h := startProxy(t, testHead+listenersHead("ingress", "ingress_http", `access_log: []`)+`
          - {match: {prefix: /tls}, route: {cluster: tls}}
          - {match: {prefix: /h2c}, route: {cluster: h2c}}
clusters:
  - name: tls
    protocol: http2
    tls: {insecure_skip_verify: true}
    endpoints: [{address: "{{TLS}}"}]
  - name: h2c
    protocol: h2c
    endpoints: [{address: "{{H2C}}"}]
`, "{{TLS}}", tlsUp.Listener.Addr().String(), "{{H2C}}", h2cUp.Listener.Addr().String())

	for _, tc := range []struct {
		path, upstream string
		tls            bool
	}{{"/tls", "tls", true}, {"/h2c", "h2c", false}} {
		t.Run(tc.upstream, func(t *testing.T) {
			h := h.with(t)
			req, _ := http.NewRequest(http.MethodPost, h.url("ingress", tc.path), strings.NewReader("payload"))
			res, body := h.do(req)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			e := decodeEcho(t, body)
			if e.Proto != 2 || e.TLS != tc.tls || e.Body != "payload" {
				t.Errorf("upstream saw HTTP/%d tls=%v body %q, want HTTP/2 tls=%v body payload", e.Proto, e.TLS, e.Body, tc.tls)
			}
			if got := res.Header.Get("X-Upstream"); got != tc.upstream {
				t.Errorf("X-Upstream = %q, want %q", got, tc.upstream)
			}
		})
	}
}

// duplexServer echoes each message on a FullDuplexCall and fails the call
// with FailedPrecondition when a message's body is "fail".
type duplexServer struct {
	testpb.UnimplementedTestServiceServer
}

func (duplexServer) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		body := req.GetPayload().GetBody()
		if string(body) == "fail" {
			return status.Error(codes.FailedPrecondition, "told to fail")
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: append([]byte("echo:"), body...)}}); err != nil {
			return err
		}
	}
}

func TestGRPCBidiStreaming(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	testpb.RegisterTestServiceServer(gs, duplexServer{})
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)

	h := startProxy(t, simpleConfig, "{{UP}}", ln.Addr().String(), "{{PROTO}}", "h2c")
	cc, err := grpc.NewClient(h.srv.ListenerAddr("ingress").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	client := testpb.NewTestServiceClient(cc)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("ok", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Strictly alternating send and receive proves the proxy streams
		// both ways: nothing would come back if it buffered either body.
		for i := range 5 {
			msg := fmt.Sprintf("m%d", i)
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			res, err := stream.Recv()
			if err != nil {
				t.Fatalf("recv %d: %v", i, err)
			}
			if got := string(res.GetPayload().GetBody()); got != "echo:"+msg {
				t.Fatalf("recv %d = %q, want echo:%s", i, got, msg)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("after CloseSend: %v, want io.EOF (grpc-status 0 in trailers)", err)
		}
	})
	t.Run("error status", func(t *testing.T) {
		stream, err := client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("one")}}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("fail")}}); err != nil {
			t.Fatal(err)
		}
		_, err = stream.Recv()
		st, _ := status.FromError(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != "told to fail" {
			t.Fatalf("got %v, want FailedPrecondition \"told to fail\" from the upstream's trailers", err)
		}
	})
}

func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
	h := startProxy(t, simpleConfig, "{{UP}}", up, "{{PROTO}}", "http1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, res, err := websocket.Dial(ctx, "ws://"+h.srv.ListenerAddr("ingress").String()+"/ws", nil)
	if err != nil {
		t.Fatalf("dial through proxy: %v (response %v)", err, res)
	}
	defer c.CloseNow()
	if res.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("status %d, want 101", res.StatusCode)
	}
	for i := range 10 {
		msg := strings.Repeat(fmt.Sprintf("message %d ", i), i*100+1)
		typ := websocket.MessageText
		if i%2 == 1 {
			typ = websocket.MessageBinary
		}
		if err := c.Write(ctx, typ, []byte(msg)); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		gotTyp, got, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if gotTyp != typ || string(got) != "echo:"+msg {
			t.Fatalf("message %d: got %v %d bytes, want %v echo of %d bytes", i, gotTyp, len(got), typ, len(msg))
		}
	}
	if got := h.stat("http.ingress_http.downstream_cx_upgrades_active"); got != 1 {
		t.Errorf("downstream_cx_upgrades_active = %d while the WebSocket is open, want 1", got)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Errorf("close: %v", err)
	}
	h.waitStat("http.ingress_http.downstream_cx_upgrades_active", 0)
	if got := h.stat("http.ingress_http.downstream_cx_upgrades_total"); got != 1 {
		t.Errorf("downstream_cx_upgrades_total = %d, want 1", got)
	}
}

// pattern fills p with a deterministic byte sequence starting at offset off.
func pattern(p []byte, off int64) {
	for i := range p {
		n := off + int64(i)
		p[i] = byte(n*131 + n>>11)
	}
}

// patternReader yields n pattern bytes.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	pattern(p, r.off)
	r.off += int64(len(p))
	return len(p), nil
}

func TestLargeBodiesStream(t *testing.T) {
	t.Parallel()
	const size = 64 << 20
	started := make(chan struct{})
	clientGotFirst := make(chan struct{})
	var once sync.Once
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sum := sha256.New()
		buf := make([]byte, 64<<10)
		var n int64
		for {
			k, err := r.Body.Read(buf)
			if k > 0 {
				once.Do(func() { close(started) })
				sum.Write(buf[:k])
				n += int64(k)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		w.Header().Set("X-Request-Sha256", hex.EncodeToString(sum.Sum(nil)))
		w.Header().Set("X-Request-Bytes", fmt.Sprint(n))
		// No Content-Length: chunked. The first MiB goes out, then the rest
		// waits until the client has it: a proxy that buffered the response
		// would deliver nothing and the test would fail after 20 s.
		src := &patternReader{n: size}
		_, _ = io.CopyN(w, src, 1<<20)
		w.(http.Flusher).Flush()
		select {
		case <-clientGotFirst:
		case <-time.After(20 * time.Second):
			panic(http.ErrAbortHandler)
		}
		_, _ = io.Copy(w, src)
	}))
	h := startProxy(t, simpleConfig, "{{UP}}", up, "{{PROTO}}", "http1")

	pr, pw := io.Pipe()
	want := sha256.New()
	writeErr := make(chan error, 1)
	go func() {
		src := &patternReader{n: size}
		buf := make([]byte, 256<<10)
		var sent int64
		for {
			k, err := src.Read(buf)
			if k > 0 {
				want.Write(buf[:k])
				if _, werr := pw.Write(buf[:k]); werr != nil {
					writeErr <- werr
					return
				}
				sent += int64(k)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if sent == 1<<20 {
				// Hold back the other 63 MiB until the upstream has bytes:
				// a proxy that buffered the body would never deliver them.
				select {
				case <-started:
				case <-time.After(20 * time.Second):
					pw.CloseWithError(errors.New("upstream received nothing while the client was still sending: the proxy buffers request bodies"))
					writeErr <- errors.New("upstream did not start receiving before the client finished")
					return
				}
			}
		}
		writeErr <- pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, h.url("ingress", "/upload"), pr)
	req.ContentLength = -1
	res, err := h.client.Do(req)
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	defer res.Body.Close()
	got := sha256.New()
	n, err := io.CopyN(got, res.Body, 1<<20)
	if err != nil {
		t.Fatalf("reading the first MiB of the response: %v (the proxy buffers responses?)", err)
	}
	close(clientGotFirst)
	rest, err := io.Copy(got, res.Body)
	n += rest
	if err != nil {
		t.Fatalf("reading response after %d bytes: %v", n, err)
	}
	if err := <-writeErr; err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if got := res.Header.Get("X-Request-Sha256"); got != hex.EncodeToString(want.Sum(nil)) {
		t.Errorf("upstream received a request body with sha256 %s (%s bytes), want %x (%d bytes)", got, res.Header.Get("X-Request-Bytes"), want.Sum(nil), size)
	}
	wantRes := sha256.New()
	_, _ = io.Copy(wantRes, &patternReader{n: size})
	if n != size || string(got.Sum(nil)) != string(wantRes.Sum(nil)) {
		t.Errorf("response body: %d bytes, sha256 %x; want %d bytes, sha256 %x", n, got.Sum(nil), size, wantRes.Sum(nil))
	}
}

// retryConfig routes /flaky to cluster "up" with a retry policy.
var retryConfig = testHead + listenersHead("ingress", "ingress_http", `access_log: [{path: "{{LOG}}", format: json}]`) + `
          - match: {prefix: /}
            route:
              cluster: up
              timeout: {{TIMEOUT}}
              retry_policy:
                retry_on: [{{RETRY_ON}}]
                num_retries: {{RETRIES}}
                per_try_timeout: {{PER_TRY}}
                retry_back_off: {base_interval: 5ms, max_interval: 20ms}
clusters:
  - name: up
    connect_timeout: 1s
    endpoints: [{{ENDPOINTS}}]
`

// retryVars fills retryConfig.
func retryVars(endpoints []string, retryOn string, retries int, timeout, perTry string) []string {
	var eps []string
	for _, e := range endpoints {
		eps = append(eps, fmt.Sprintf("{address: %q}", e))
	}
	return []string{"{{ENDPOINTS}}", strings.Join(eps, ", "), "{{RETRY_ON}}", retryOn,
		"{{RETRIES}}", fmt.Sprint(retries), "{{TIMEOUT}}", timeout, "{{PER_TRY}}", perTry}
}

// failingUpstream answers 503 to the first `fail` requests of each
// x-request-id and 200 afterwards.
func failingUpstream(t *testing.T, fail int) string {
	var mu sync.Mutex
	seen := map[string]int{}
	return upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		rid := r.Header.Get("X-Request-Id")
		seen[rid]++
		n := seen[rid]
		mu.Unlock()
		if n <= fail {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprintf(w, "ok after %d", n)
	}))
}

func TestRetryOn5xx(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		retries   int
		status    int
		attempts  float64
		wantFlags string
	}{
		{"enough retries", 3, http.StatusOK, 3, "-"},
		{"retries exhausted", 1, http.StatusServiceUnavailable, 2, "URX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			up := failingUpstream(t, 2)
			h := startProxy(t, retryConfig, retryVars([]string{up}, "5xx", tc.retries, "10s", "0s")...)
			rid := "retry-" + strings.ReplaceAll(tc.name, " ", "-")
			res, body := h.get(h.url("ingress", "/flaky"), "X-Request-Id", rid)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", res.StatusCode, body, tc.status)
			}
			m := h.logLine(rid)
			if m["attempts"] != tc.attempts || flags(m) != tc.wantFlags {
				t.Errorf("access log attempts %v flags %q, want %v %q", m["attempts"], flags(m), tc.attempts, tc.wantFlags)
			}
		})
	}
}

func TestRetryOnConnectFailure(t *testing.T) {
	t.Parallel()
	live := upstream(t, echoHandler("live"))
	dead := closedPort(t)
	h := startProxy(t, retryConfig, retryVars([]string{dead, live}, "connect-failure", 1, "10s", "0s")...)
	// Round robin alternates: some of these requests try the dead
	// endpoint first and must be rescued by the retry.
	for i := range 6 {
		rid := fmt.Sprintf("cf-%d", i)
		res, body := h.get(h.url("ingress", "/"), "X-Request-Id", rid)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d (%q), want 200 from the live endpoint", i, res.StatusCode, body)
		}
	}
	for i := range 6 {
		m := h.logLine(fmt.Sprintf("cf-%d", i))
		if hasFlag(flags(m), "UF") || hasFlag(flags(m), "URX") {
			t.Errorf("request %d: flags %q after a successful retry", i, flags(m))
		}
		if m["upstream_host"] != live {
			t.Errorf("request %d: upstream_host %v, want %s", i, m["upstream_host"], live)
		}
	}
}

func TestAllEndpointsRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		retries int
		flags   string
	}{
		{"no retries", 0, "UF"},
		{"with retries", 2, "UF,URX"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startProxy(t, retryConfig, retryVars([]string{closedPort(t), closedPort(t)}, "connect-failure", tc.retries, "10s", "0s")...)
			rid := "refused-" + strings.ReplaceAll(tc.name, " ", "-")
			res, body := h.get(h.url("ingress", "/"), "X-Request-Id", rid)
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d (%q), want 503", res.StatusCode, body)
			}
			if m := h.logLine(rid); flags(m) != tc.flags {
				t.Errorf("flags %q, want %q", flags(m), tc.flags)
			}
		})
	}
}

// slowUpstream sleeps for the duration in the x-delay header (or until the
// request is cancelled) before answering 200.
func slowUpstream(t *testing.T) string {
	return upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.Header.Get("X-Delay"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, "slow ok")
	}))
}

func TestRouteTimeout(t *testing.T) {
	t.Parallel()
	h := startProxy(t, retryConfig, retryVars([]string{slowUpstream(t)}, "5xx", 0, "200ms", "0s")...)
	res, body := h.get(h.url("ingress", "/"), "X-Request-Id", "timeout-1", "X-Delay", "5s")
	if res.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d (%q), want 504", res.StatusCode, body)
	}
	if m := h.logLine("timeout-1"); flags(m) != "UT" {
		t.Errorf("flags %q, want UT", flags(m))
	}
}

func TestPerTryTimeoutThenSuccess(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			select { // the first attempt hangs until the proxy gives up on it
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, "second try")
	}))
	h := startProxy(t, retryConfig, retryVars([]string{up}, "5xx", 2, "10s", "200ms")...)
	res, body := h.get(h.url("ingress", "/"), "X-Request-Id", "pertry-1")
	if res.StatusCode != http.StatusOK || body != "second try" {
		t.Fatalf("status %d body %q, want 200 \"second try\"", res.StatusCode, body)
	}
	if m := h.logLine("pertry-1"); m["attempts"] != 2.0 || flags(m) != "-" {
		t.Errorf("attempts %v flags %q, want 2 and -", m["attempts"], flags(m))
	}
}

func TestHopByHopHeaders(t *testing.T) {
	t.Parallel()
	// A raw upstream, so that the response can carry headers net/http's
	// server would not send as written.
	seen := make(chan http.Header, 1)
	origin := rawOrigin(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		seen <- req.Header
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\n"+
			"Connection: X-Conn-Res\r\n"+
			"X-Conn-Res: secret\r\n"+
			"Keep-Alive: timeout=5\r\n"+
			"Proxy-Authenticate: Basic\r\n"+
			"Upgrade: foo\r\n"+
			"X-Kept: yes\r\n"+
			"Content-Length: 2\r\n\r\nok")
	})
	h := startProxy(t, simpleConfig, "{{UP}}", origin, "{{PROTO}}", "http1")

	c, err := net.Dial("tcp", h.srv.ListenerAddr("ingress").String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = io.WriteString(c, "GET /hop HTTP/1.1\r\nHost: example.test\r\n"+
		"Connection: X-Conn-Req, keep-alive\r\n"+
		"X-Conn-Req: secret\r\n"+
		"Keep-Alive: timeout=5\r\n"+
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"+
		"Proxy-Connection: keep-alive\r\n"+
		"TE: gzip, trailers\r\n"+
		"Upgrade: websocket\r\n"+
		"X-Kept: yes\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	var up http.Header
	select {
	case up = <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("upstream saw no request")
	}
	for _, k := range []string{"X-Conn-Req", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "Upgrade"} {
		if v, ok := up[k]; ok {
			t.Errorf("request header %s: %q reached the upstream", k, v)
		}
	}
	if got := up.Values("Te"); strings.Join(got, ",") != "trailers" {
		t.Errorf("upstream TE = %q, want only \"trailers\"", got)
	}
	if conn := up.Get("Connection"); strings.Contains(strings.ToLower(conn), "x-conn-req") || strings.Contains(strings.ToLower(conn), "upgrade") {
		t.Errorf("upstream Connection = %q", conn)
	}
	if up.Get("X-Kept") != "yes" {
		t.Error("end-to-end request header X-Kept was dropped")
	}
	for _, k := range []string{"X-Conn-Res", "Keep-Alive", "Proxy-Authenticate", "Upgrade"} {
		if v, ok := res.Header[k]; ok {
			t.Errorf("response header %s: %q reached the client", k, v)
		}
	}
	if res.Header.Get("X-Kept") != "yes" {
		t.Error("end-to-end response header X-Kept was dropped")
	}
}

func TestForwardedHeadersAndRequestID(t *testing.T) {
	t.Parallel()
	up := upstream(t, echoHandler("a"))
	cfg := testHead + listenersHead("edge", "edge_http", `access_log: []`) + ` [{match: {prefix: /}, route: {cluster: up}}]
` + listenerHead("echoing", "echoing_http", `xff_num_trusted_hops: 1`, `request_id: {always_set_request_id_in_response: true}`, `access_log: []`) + ` [{match: {prefix: /}, route: {cluster: up}}]
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`
	h := startProxy(t, cfg, "{{UP}}", up)
	for _, tc := range []struct {
		name     string
		listener string
		hdr      []string
		xff      string
		proto    string
		fwdHost  string
		rid      string // "" = a generated UUID v4
		echoRID  bool
	}{
		{name: "loopback client, no headers", listener: "edge", xff: "127.0.0.1", proto: "http", fwdHost: "svc.test"},
		{name: "internal client keeps its XFF chain, proto, host and request id", listener: "edge",
			hdr: []string{"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "orig.test", "X-Request-Id", "keep-me"},
			xff: "203.0.113.7, 127.0.0.1", proto: "https", fwdHost: "orig.test", rid: "keep-me"},
		{name: "external client behind one trusted hop gets a new request id and proto", listener: "echoing",
			hdr: []string{"X-Forwarded-For", "203.0.113.7", "X-Forwarded-Proto", "https", "X-Forwarded-Host", "orig.test", "X-Request-Id", "from-outside"},
			xff: "203.0.113.7, 127.0.0.1", proto: "http", fwdHost: "svc.test", echoRID: true},
		{name: "echo of a kept id", listener: "echoing", hdr: []string{"X-Request-Id", "mine"},
			xff: "127.0.0.1", proto: "http", fwdHost: "svc.test", rid: "mine", echoRID: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			req, _ := http.NewRequest(http.MethodGet, h.url(tc.listener, "/fwd"), nil)
			req.Host = "svc.test"
			for i := 0; i+1 < len(tc.hdr); i += 2 {
				req.Header.Set(tc.hdr[i], tc.hdr[i+1])
			}
			res, body := h.do(req)
			e := decodeEcho(t, body)
			if got := e.Header.Get("X-Forwarded-For"); got != tc.xff {
				t.Errorf("X-Forwarded-For = %q, want %q", got, tc.xff)
			}
			if got := e.Header.Get("X-Forwarded-Proto"); got != tc.proto {
				t.Errorf("X-Forwarded-Proto = %q, want %q", got, tc.proto)
			}
			if got := e.Header.Get("X-Forwarded-Host"); got != tc.fwdHost {
				t.Errorf("X-Forwarded-Host = %q, want %q", got, tc.fwdHost)
			}
			rid := e.Header.Get("X-Request-Id")
			if tc.rid != "" && rid != tc.rid || tc.rid == "" && !uuidV4.MatchString(rid) {
				t.Errorf("upstream x-request-id = %q, want %q (empty: a new UUID v4)", rid, tc.rid)
			}
			echoed := res.Header.Get("X-Request-Id")
			if tc.echoRID && echoed != rid || !tc.echoRID && echoed != "" {
				t.Errorf("response x-request-id = %q (upstream saw %q), echo wanted: %v", echoed, rid, tc.echoRID)
			}
		})
	}
}

func TestLocalReplies(t *testing.T) {
	t.Parallel()
	up := upstream(t, echoHandler("a"))
	h := startProxy(t, `
admin: {address: "127.0.0.1:0"}
lifecycle: {drain_time: 0s, watch_config: false}
listeners:
  - name: ingress
    address: "127.0.0.1:0"
    stat_prefix: ingress_http
    limits: {max_request_headers_count: 10}
    access_log: [{path: "{{LOG}}", format: json}]
    virtual_hosts:
      - name: known
        domains: ["known.test"]
        routes:
          - {match: {prefix: /api}, route: {cluster: up}}
          - match: {path: /direct}
            direct_response: {status: 418, body: "short and stout"}
          - match: {prefix: /old/}
            redirect: {prefix_rewrite: /new/, response_code: 302}
          - match: {path: /secure}
            redirect: {https_redirect: true, host_redirect: secure.test}
clusters:
  - name: up
    endpoints: [{address: "{{UP}}"}]
`, "{{UP}}", up)
	cases := []struct {
		name, host, path string
		extra            int // extra headers to send
		status           int
		body, location   string
		flags            string
	}{
		{name: "routed", host: "known.test", path: "/api/x", status: 200, flags: "-"},
		{name: "no route", host: "known.test", path: "/nope", status: 404, flags: "NR"},
		{name: "unknown host", host: "other.test", path: "/api/x", status: 404, flags: "NR"},
		{name: "too many headers", host: "known.test", path: "/api/x", extra: 20, status: 431, flags: "DPE"},
		{name: "direct response", host: "known.test", path: "/direct", status: 418, body: "short and stout", flags: "-"},
		{name: "prefix redirect", host: "known.test", path: "/old/page?a=1", status: 302, location: "http://known.test/new/page?a=1", flags: "-"},
		{name: "https redirect", host: "known.test:8080", path: "/secure", status: 301, location: "https://secure.test/secure", flags: "-"},
	}
	rid := func(name string) string { return "local-" + strings.ReplaceAll(name, " ", "-") }
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := h.with(t)
			req, _ := http.NewRequest(http.MethodGet, h.url("ingress", tc.path), nil)
			req.Host = tc.host
			req.Header.Set("X-Request-Id", rid(tc.name))
			for i := range tc.extra {
				req.Header.Set(fmt.Sprintf("X-Extra-%d", i), "v")
			}
			res, body := h.do(req)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d (%q), want %d", res.StatusCode, body, tc.status)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
			if got := res.Header.Get("Location"); got != tc.location {
				t.Errorf("Location %q, want %q", got, tc.location)
			}
			if got := res.Header.Get("Server"); got != "hopwatch" {
				t.Errorf("Server %q, want hopwatch", got)
			}
		})
	}
	// The log lines are checked after every request was sent, so that the
	// access log's one-second flush is waited for once.
	for _, tc := range cases {
		if tc.extra > 0 {
			continue // the line exists, but its request ID was not the client's
		}
		if m := h.logLine(rid(tc.name)); flags(m) != tc.flags || m["response_code"] != float64(tc.status) {
			t.Errorf("%s: access log flags %q code %v, want %q %d", tc.name, flags(m), m["response_code"], tc.flags, tc.status)
		}
	}
}

func TestWeightedAndHeaderCanary(t *testing.T) {
	t.Parallel()
	stable := upstream(t, echoHandler("stable"))
	canary := upstream(t, echoHandler("canary"))
	h := startProxy(t, testHead+listenersHead("ingress", "ingress_http", `access_log: []`)+`
          - match:
              prefix: /
              headers: [{name: x-canary, exact_match: "1"}]
            route: {cluster: canary}
          - match: {prefix: /}
            route:
              weighted_clusters:
                clusters:
                  - {name: stable, weight: 90}
                  - {name: canary, weight: 10}
clusters:
  - name: stable
    endpoints: [{address: "{{STABLE}}"}]
  - name: canary
    endpoints: [{address: "{{CANARY}}"}]
`, "{{STABLE}}", stable, "{{CANARY}}", canary)

	const n = 1000
	counts := map[string]int{}
	for range n {
		res, _ := h.get(h.url("ingress", "/"))
		counts[res.Header.Get("X-Upstream")]++
	}
	// Expected 100 canary responses, standard deviation about 9.5: the
	// bounds are more than five deviations wide, so this never flakes.
	if counts["stable"]+counts["canary"] != n || counts["canary"] < 50 || counts["canary"] > 150 {
		t.Errorf("split over %d requests: %v, want about 900/100", n, counts)
	}
	for i := range 20 {
		if res, _ := h.get(h.url("ingress", "/"), "X-Canary", "1"); res.Header.Get("X-Upstream") != "canary" {
			t.Fatalf("request %d with x-canary: 1 went to %q, want canary", i, res.Header.Get("X-Upstream"))
		}
	}
}

func TestAdmin(t *testing.T) {
	t.Parallel()
	up := upstream(t, echoHandler("a"))
	dir := t.TempDir()
	certFile, keyFile, _, _ := selfSigned(t, dir)
	h := startProxy(t, testHead+"node: {id: test-node, cluster: test-cluster}\n"+listenersHead("ingress", "ingress_http", `access_log: []`)+` [{match: {prefix: /}, route: {cluster: up}}]
`+listenerHead("tls", "tls_http", `tls: {cert_file: "{{CERT}}", key_file: "{{KEY}}"}`, `access_log: []`)+` [{match: {prefix: /}, route: {cluster: up}}]
clusters:
  - name: up
    endpoints: [{address: "{{UP}}", weight: 3}]
`, "{{UP}}", up, "{{CERT}}", certFile, "{{KEY}}", keyFile)

	post := func(path string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, h.adminURL(path), nil)
		res, _ := h.do(req)
		return res
	}
	if res, body := h.get(h.adminURL("/ready")); res.StatusCode != 200 || body != "LIVE\n" {
		t.Errorf("/ready: %d %q, want 200 LIVE", res.StatusCode, body)
	}
	if res, _ := h.get(h.adminURL("/healthcheck/fail")); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /healthcheck/fail: %d, want 405", res.StatusCode)
	}
	if res, _ := h.get(h.adminURL("/ready")); res.StatusCode != 200 {
		t.Errorf("/ready after a refused GET /healthcheck/fail: %d, want 200", res.StatusCode)
	}
	if res := post("/healthcheck/fail"); res.StatusCode != 200 {
		t.Fatalf("POST /healthcheck/fail: %d", res.StatusCode)
	}
	if res, body := h.get(h.adminURL("/ready")); res.StatusCode != 503 || body != "DRAINING\n" {
		t.Errorf("/ready while failed: %d %q, want 503 DRAINING", res.StatusCode, body)
	}
	res, _ := h.get(h.url("ingress", "/"))
	if res.StatusCode != 200 || !res.Close {
		t.Errorf("proxied response while failed: %d, Connection %q; want 200 with Connection: close", res.StatusCode, res.Header.Get("Connection"))
	}
	if res := post("/healthcheck/ok"); res.StatusCode != 200 {
		t.Fatalf("POST /healthcheck/ok: %d", res.StatusCode)
	}
	if res, _ := h.get(h.adminURL("/ready")); res.StatusCode != 200 {
		t.Errorf("/ready after /healthcheck/ok: %d, want 200", res.StatusCode)
	}
	if res, _ := h.get(h.url("ingress", "/")); res.Close {
		t.Error("response after /healthcheck/ok still asks to close the connection")
	}

	// HTTP/2 has no Connection header: a draining proxy must send GOAWAY,
	// so the client's next request opens a new connection.
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	h2c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &protos}}
	t.Cleanup(h2c.CloseIdleConnections)
	reused := func() bool {
		var info httptrace.GotConnInfo
		req, _ := http.NewRequest(http.MethodGet, h.url("ingress", "/"), nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { info = i }}))
		if res, _ := e2etest.Fetch(t, h2c, req); res.ProtoMajor != 2 {
			t.Fatalf("h2c request answered over %s", res.Proto)
		}
		return info.Reused
	}
	reused() // opens the connection
	if !reused() {
		t.Fatal("h2c connection not reused while LIVE")
	}
	post("/healthcheck/fail")
	reused() // answered, then GOAWAY
	time.Sleep(300 * time.Millisecond)
	if reused() {
		t.Error("h2c connection still reused after a response while draining: no GOAWAY")
	}
	post("/healthcheck/ok")

	_, text := h.get(h.adminURL("/clusters"))
	for _, want := range []string{"up::" + up + "::health_flags::healthy", "up::" + up + "::weight::3"} {
		if !strings.Contains(text, want) {
			t.Errorf("/clusters lacks %q:\n%s", want, text)
		}
	}
	_, js := h.get(h.adminURL("/clusters?format=json"))
	var cs struct {
		Clusters []struct {
			Name  string `json:"name"`
			Hosts []struct {
				Address string `json:"address"`
				Weight  int    `json:"weight"`
				Healthy bool   `json:"healthy"`
			} `json:"host_statuses"`
		} `json:"cluster_statuses"`
	}
	if err := json.Unmarshal([]byte(js), &cs); err != nil {
		t.Fatalf("/clusters?format=json: %v\n%s", err, js)
	}
	if len(cs.Clusters) != 1 || cs.Clusters[0].Name != "up" || len(cs.Clusters[0].Hosts) != 1 ||
		cs.Clusters[0].Hosts[0].Address != up || cs.Clusters[0].Hosts[0].Weight != 3 || !cs.Clusters[0].Hosts[0].Healthy {
		t.Errorf("/clusters?format=json = %+v", cs)
	}

	res, dump := h.get(h.adminURL("/config_dump"))
	if res.StatusCode != 200 || !json.Valid([]byte(dump)) {
		t.Fatalf("/config_dump: %d, valid JSON %v", res.StatusCode, json.Valid([]byte(dump)))
	}
	if strings.Contains(dump, keyFile) || !strings.Contains(dump, "[redacted]") {
		t.Errorf("/config_dump does not redact the TLS key path:\n%s", dump)
	}
	if !strings.Contains(dump, certFile) || !strings.Contains(dump, "ingress_http") {
		t.Errorf("/config_dump lacks the configuration:\n%s", dump)
	}

	_, si := h.get(h.adminURL("/server_info"))
	var info map[string]any
	if err := json.Unmarshal([]byte(si), &info); err != nil {
		t.Fatalf("/server_info: %v\n%s", err, si)
	}
	if info["state"] != "LIVE" || info["node_id"] != "test-node" || info["node_cluster"] != "test-cluster" ||
		info["config_path"] != h.path || info["config_loads"] != 1.0 {
		t.Errorf("/server_info = %v", info)
	}
}

func TestUpstreamFailuresAndTrailers(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []string
	up := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/trailer":
			w.Header().Set("Trailer", "X-Sum")
			_, _ = io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		case "/replay":
			mu.Lock()
			bodies = append(bodies, string(b))
			mu.Unlock()
			http.Error(w, "no", http.StatusServiceUnavailable)
		case "/midreset":
			_, _ = io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
			panic(http.ErrAbortHandler)
		case "/hang":
			select {
			case <-time.After(10 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	h := startProxy(t, retryConfig, retryVars([]string{up}, "5xx", 2, "10s", "200ms")...)

	t.Run("trailers", func(t *testing.T) {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		h2c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &protos}}
		t.Cleanup(h2c.CloseIdleConnections)
		for _, c := range []*http.Client{h.client, h2c} {
			req, _ := http.NewRequest(http.MethodGet, h.url("ingress", "/trailer"), nil)
			res, body := e2etest.Fetch(t, c, req)
			if body != "body" || res.Trailer.Get("X-Sum") != "42" || res.Trailer.Get("X-Late") != "late" {
				t.Errorf("%s: body %q trailers %v, want X-Sum: 42 and X-Late: late", res.Proto, body, res.Trailer)
			}
		}
	})
	t.Run("retried request bodies are replayed", func(t *testing.T) {
		h := h.with(t)
		req, _ := http.NewRequest(http.MethodPost, h.url("ingress", "/replay"), strings.NewReader("replay me"))
		req.Header.Set("X-Request-Id", "replay-1")
		if res, _ := h.do(req); res.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", res.StatusCode)
		}
		mu.Lock()
		defer mu.Unlock()
		if strings.Join(bodies, "|") != "replay me|replay me|replay me" {
			t.Errorf("upstream bodies %q, want the body on each of 3 attempts", bodies)
		}
	})
	t.Run("reset after headers", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, h.url("ingress", "/midreset"), nil)
		req.Header.Set("X-Request-Id", "midreset-1")
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err == nil {
			t.Errorf("a truncated response read as complete: %q", b)
		}
	})
	t.Run("per-try timeouts exhausted", func(t *testing.T) {
		h := h.with(t)
		res, body := h.get(h.url("ingress", "/hang"), "X-Request-Id", "hang-1")
		if res.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status %d (%q), want 504", res.StatusCode, body)
		}
	})
	for rid, want := range map[string]struct {
		flags    string
		attempts float64
	}{"replay-1": {"URX", 3}, "midreset-1": {"UC", 1}, "hang-1": {"UT,URX", 3}} {
		if m := h.logLine(rid); flags(m) != want.flags || m["attempts"] != want.attempts {
			t.Errorf("%s: flags %q attempts %v, want %q %v", rid, flags(m), m["attempts"], want.flags, want.attempts)
		}
	}
}
