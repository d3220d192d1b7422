package cluster

import (
	"bufio"
	"context"
	"errors"
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

	"github.com/hopwatch/hopwatch/e2e/e2etest"
	"github.com/hopwatch/hopwatch/proxy/headers"
)

// newTestHTTP1 returns the HTTP/1.1 client a cluster would build, dialing
// plain TCP.
func newTestHTTP1(t *testing.T, idleTimeout time.Duration) *http1Transport {
	t.Helper()
	d := newDialer("test", 2*time.Second, nil, false, nil, func(a string) string { return a })
	tr := newHTTP1Transport(d.DialContext, 8, idleTimeout)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// countingServer is an httptest server that counts the connections it
// accepted. configure, if given, adjusts the server before it starts.
func countingServer(t *testing.T, h http.HandlerFunc, configure ...func(*http.Server)) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(h)
	for _, f := range configure {
		f(srv.Config)
	}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func do(t *testing.T, tr http.RoundTripper, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return res, string(b)
}

func newReq(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestHTTP1KeepAliveReusesOneConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead || r.URL.Path == "/empty" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
	tr := newTestHTTP1(t, time.Hour)
	for i := range 20 {
		path := fmt.Sprintf("/%d", i)
		method := http.MethodGet
		switch i % 4 {
		case 1:
			method = http.MethodHead
		case 2:
			path = "/empty"
		}
		res, body := do(t, tr, newReq(t, method, srv.URL+path, nil))
		want := "hello " + path
		if method == http.MethodHead || path == "/empty" {
			want = ""
		}
		if body != want {
			t.Fatalf("request %d: body %q, want %q (status %d)", i, body, want, res.StatusCode)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("20 sequential requests used %d connections, want 1", n)
	}
}

// TestHTTP1StaleIdleConnection: an upstream that closes idle connections
// behind the pool's back (a short keep-alive timeout) must not fail the
// next request, with or without a body.
func TestHTTP1StaleIdleConnection(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %d", r.Method, len(b))
	}, func(s *http.Server) { s.IdleTimeout = 50 * time.Millisecond })
	tr := newTestHTTP1(t, time.Hour)
	for i := range 4 {
		method, body := http.MethodGet, io.Reader(nil)
		if i%2 == 1 {
			method, body = http.MethodPost, strings.NewReader("payload")
		}
		_, got := do(t, tr, newReq(t, method, srv.URL, body))
		want := method + " 0"
		if body != nil {
			want = method + " 7"
		}
		if got != want {
			t.Fatalf("request %d: %q, want %q", i, got, want)
		}
		time.Sleep(200 * time.Millisecond) // the upstream closes the idle connection
	}
	if n := conns.Load(); n != 4 {
		t.Errorf("connections = %d, want 4 (each idle one closed by the upstream)", n)
	}
}

// TestHTTP1StreamsBothWays: the response flows back while the request body
// is still being sent — the client only sends the next chunk after it has
// read the echo of the previous one, which deadlocks unless both directions
// move at once.
func TestHTTP1StreamsBothWays(t *testing.T) {
	srv, _ := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		buf := make([]byte, 64)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				_, _ = w.Write(buf[:n])
				w.(http.Flusher).Flush()
			}
			if err != nil {
				return
			}
		}
	})
	tr := newTestHTTP1(t, time.Hour)
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := newReq(t, http.MethodPost, srv.URL, pr).WithContext(ctx)
	type result struct {
		res *http.Response
		err error
	}
	got := make(chan result, 1)
	go func() { res, err := tr.RoundTrip(req); got <- result{res, err} }()
	if _, err := pw.Write([]byte("ping0")); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	br := bufio.NewReader(r.res.Body)
	for i := range 5 {
		msg := fmt.Sprintf("ping%d", i)
		if i > 0 {
			if _, err := pw.Write([]byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		echo := make([]byte, len(msg))
		if _, err := io.ReadFull(br, echo); err != nil || string(echo) != msg {
			t.Fatalf("echo %d: %q, %v", i, echo, err)
		}
	}
	pw.Close()
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the body ended: %q, %v", rest, err)
	}
	r.res.Body.Close()
}

// TestHTTP1EarlyResponse: an upstream that answers without reading a large
// body gets its answer to the client, and the connection is not reused
// (its state is unknown).
func TestHTTP1EarlyResponse(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			w.Header().Set("Connection", "close")
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprint(w, "ok")
	})
	tr := newTestHTTP1(t, time.Hour)
	big := strings.NewReader(strings.Repeat("x", 8<<20))
	res, _ := do(t, tr, newReq(t, http.MethodPost, srv.URL, big))
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", res.StatusCode)
	}
	if _, body := do(t, tr, newReq(t, http.MethodGet, srv.URL, nil)); body != "ok" {
		t.Fatalf("next request: %q", body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestHTTP1CancelUnblocksAndDropsConnection(t *testing.T) {
	release := make(chan struct{})
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, "ok")
	})
	defer close(release)
	tr := newTestHTTP1(t, time.Hour)
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("per-try timeout")
	time.AfterFunc(100*time.Millisecond, func() { cancel(cause) })
	_, err := tr.RoundTrip(newReq(t, http.MethodGet, srv.URL+"/slow", nil).WithContext(ctx))
	if !errors.Is(err, cause) {
		t.Fatalf("err = %v, want the context's cause", err)
	}
	// Cancel while reading the body, too.
	ctx2, cancel2 := context.WithCancel(context.Background())
	res, err := tr.RoundTrip(newReq(t, http.MethodGet, srv.URL+"/fast", nil).WithContext(ctx2))
	if err != nil {
		t.Fatal(err)
	}
	cancel2()
	res.Body.Close()
	if _, body := do(t, tr, newReq(t, http.MethodGet, srv.URL+"/again", nil)); body != "ok" {
		t.Fatalf("after cancellations: %q", body)
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("connections = %d, want 3 (a cancelled exchange's connection is never reused)", n)
	}
}

// rawServer reads one request per connection, answers it with a fixed
// byte string and closes the connection.
func rawServer(t *testing.T, response string) string {
	t.Helper()
	return "http://" + rawUpstream(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			_, _ = io.WriteString(c, response)
		}
	})
}

func TestHTTP1ResponseParsing(t *testing.T) {
	tests := []struct {
		name     string
		response string
		status   int
		body     string
		trailer  string
		wantErr  string
	}{
		{name: "informational responses are skipped",
			response: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			status:   200, body: "ok"},
		{name: "chunked with trailers",
			response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n2\r\nhi\r\n0\r\nGrpc-Status: 0\r\n\r\n",
			status:   200, body: "hi", trailer: "0"},
		{name: "close-delimited body",
			response: "HTTP/1.0 200 OK\r\n\r\nuntil close",
			status:   200, body: "until close"},
		{name: "malformed status line", response: "HTTP/1.1 abc\r\n\r\n", wantErr: "malformed HTTP"},
		{name: "headers too large",
			response: "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxResponseHeaderBytes+10) + "\r\n\r\n",
			wantErr:  "malformed HTTP response: headers exceed"},
		{name: "closed before responding", response: "", wantErr: "closed the connection before a complete response"},
		{name: "101 without an upgrade request", response: "HTTP/1.1 101 Switching Protocols\r\n\r\n", wantErr: "malformed HTTP response: 101"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := rawServer(t, tc.response)
			tr := newTestHTTP1(t, time.Hour)
			res, err := tr.RoundTrip(newReq(t, http.MethodGet, url, nil))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != tc.status || string(b) != tc.body || res.Trailer.Get("Grpc-Status") != tc.trailer {
				t.Fatalf("got %d %q trailer %q err %v; want %d %q trailer %q", res.StatusCode, b, res.Trailer.Get("Grpc-Status"), err, tc.status, tc.body, tc.trailer)
			}
		})
	}
}

// rawUpstream is e2etest.RawServer: an origin that records or sends exact bytes.
func rawUpstream(t *testing.T, serve func(c net.Conn)) string { return e2etest.RawServer(t, serve) }

// readHead reads one request head, byte for byte as it arrived.
func readHead(br *bufio.Reader) (string, error) {
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if err != nil {
			return head.String(), err
		}
		if line == "\r\n" {
			return head.String(), nil
		}
	}
}

// TestHTTP1Upgrade: an upgrade goes through hopwatch's own codec, exactly
// as given (no User-Agent added), and the 101 response's body is the raw
// connection, starting with the bytes the upstream sent right behind the
// response head.
func TestHTTP1Upgrade(t *testing.T) {
	heads := make(chan string, 1)
	addr := rawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readHead(br)
		heads <- head
		if err != nil {
			return
		}
		// The head and the first tunnelled bytes in one write: the client
		// reads them into its buffer together.
		_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello|")
		_, _ = io.Copy(c, br)
	})
	tr := newTestHTTP1(t, time.Hour)
	req := newReq(t, http.MethodGet, "http://"+addr+"/chat", nil)
	req.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"echo"}}
	res, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if head := <-heads; head != "GET /chat HTTP/1.1\r\nHost: "+addr+"\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n" &&
		head != "GET /chat HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n" {
		t.Errorf("upstream received %q, want the request line, Host, Connection and Upgrade only", head)
	}
	rw, ok := res.Body.(io.ReadWriteCloser)
	if res.StatusCode != http.StatusSwitchingProtocols || !ok {
		t.Fatalf("status %d, body %T; want 101 with a read-write body", res.StatusCode, res.Body)
	}
	defer rw.Close()
	if _, err := io.WriteString(rw, "tunnel"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("hello|tunnel"))
	if _, err := io.ReadFull(rw, got); err != nil || string(got) != "hello|tunnel" {
		t.Fatalf("read %q, %v; want the early bytes then the echo", got, err)
	}
	if err := rw.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	tr.mu.Lock()
	idle := len(tr.idle[addr])
	tr.mu.Unlock()
	if idle != 0 {
		t.Errorf("an upgraded connection went back to the pool (%d idle)", idle)
	}
}

// TestHTTP1UpgradeDeclined: an upstream that answers an upgrade request
// with an ordinary response gives an ordinary response, and the connection
// is reused once that response was read to the end.
func TestHTTP1UpgradeDeclined(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "plain %s", r.Header.Get("Upgrade"))
	})
	tr := newTestHTTP1(t, time.Hour)
	req := newReq(t, http.MethodGet, srv.URL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	if res, body := do(t, tr, req); res.StatusCode != http.StatusOK || body != "plain echo" {
		t.Fatalf("got %d %q", res.StatusCode, body)
	}
	do(t, tr, newReq(t, http.MethodGet, srv.URL, nil))
	if n := conns.Load(); n != 1 {
		t.Errorf("connections = %d, want 1 (reused after a cleanly finished response)", n)
	}
}

// TestHTTP1UnaskedSwitch: a 101 to a request that asked for no upgrade is
// a protocol error, and the connection is not reused.
func TestHTTP1UnaskedSwitch(t *testing.T) {
	url := rawServer(t, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
	tr := newTestHTTP1(t, time.Hour)
	_, err := tr.RoundTrip(newReq(t, http.MethodGet, url+"/", nil))
	if err == nil || !strings.Contains(err.Error(), "asked for no upgrade") {
		t.Fatalf("err = %v, want a protocol error", err)
	}
}

func TestHTTP1RefusesConnect(t *testing.T) {
	tr := newTestHTTP1(t, time.Hour)
	req := newReq(t, http.MethodConnect, "http://127.0.0.1:1", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, errConnect) {
		t.Fatalf("err = %v, want errConnect", err)
	}
}

func TestHTTP1IdleSweep(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	tr := newTestHTTP1(t, 300*time.Millisecond)
	do(t, tr, newReq(t, http.MethodGet, srv.URL, nil))
	idle := func() int {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		n := 0
		for _, l := range tr.idle {
			n += len(l)
		}
		return n
	}
	if idle() != 1 {
		t.Fatalf("idle connections after one request = %d, want 1", idle())
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the idle connection was not swept within 5s of a 300ms idle_timeout")
		}
		time.Sleep(50 * time.Millisecond)
	}
	do(t, tr, newReq(t, http.MethodGet, srv.URL, nil))
	if n := conns.Load(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

// TestHTTP1Concurrent runs many exchanges at once over a small pool under
// the race detector; every response must match its request.
func TestHTTP1Concurrent(t *testing.T) {
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s|%s", r.URL.Path, b)
	})
	tr := newTestHTTP1(t, time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 16*50)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				path := fmt.Sprintf("/%d/%d", w, i)
				var body io.Reader
				want := path + "|"
				if i%3 == 0 {
					body = strings.NewReader(path)
					want += path
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+path, body)
				res, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(res.Body)
				res.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("%s: got %q (%w), want %q", path, b, err, want)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := conns.Load(); n > 16+8 {
		t.Errorf("connections = %d for 16 concurrent workers, want at most 24 (pool reuse broken?)", n)
	}
}

// TestHTTP1ConnectionNamedHeadersWithClose: the client keeps the
// response's Connection header, close or not, so that the router's
// hop-by-hop removal (headers.RemoveHopByHop, applied here as the router
// applies it) also removes every header it names. net/http's parser deleted
// a Connection header that said close, and the names with it.
func TestHTTP1ConnectionNamedHeadersWithClose(t *testing.T) {
	tests := []struct {
		name, response string
		gone, kept     []string
	}{
		{"close and a named header",
			"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok",
			[]string{"X-Secret"}, []string{"X-Kept"}},
		{"lower case, two Connection lines",
			"HTTP/1.1 200 OK\r\nconnection: x-one\r\nCONNECTION: Close , X-Two\r\nX-One: 1\r\nX-Two: 2\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok",
			[]string{"X-One", "X-Two"}, []string{"X-Kept"}},
		{"no Connection header", "HTTP/1.1 200 OK\r\nX-Kept: k\r\nContent-Length: 2\r\n\r\nok",
			nil, []string{"X-Kept"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTestHTTP1(t, time.Hour)
			res, body := do(t, tr, newReq(t, http.MethodGet, rawServer(t, tc.response), nil))
			if body != "ok" {
				t.Fatalf("body %q", body)
			}
			headers.RemoveHopByHop(res.Header)
			for _, h := range tc.gone {
				if v, ok := res.Header[h]; ok {
					t.Errorf("%s: %q reached the caller; the Connection header named it", h, v)
				}
			}
			for _, h := range tc.kept {
				if res.Header.Get(h) == "" {
					t.Errorf("%s was removed, though no Connection header named it (headers %v)", h, res.Header)
				}
			}
		})
	}
}

// failingBody yields some bytes, then the error a downstream codec gives
// for a malformed body.
type failingBody struct {
	first []byte
	gate  chan struct{} // closed when the body may fail
	err   error
}

func (b *failingBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	<-b.gate
	return 0, b.err
}

func (b *failingBody) Close() error { return nil }

// TestHTTP1RequestBodyReadFailure: when reading a streamed request body
// fails (the client's fault), the exchange fails at once with a
// *RequestBodyError, instead of waiting for a response the upstream cannot
// give to half a request; the upstream sees its connection closed, and the
// next request goes on a new connection.
func TestHTTP1RequestBodyReadFailure(t *testing.T) {
	bodyFailed := make(chan error, 1)
	srv, conns := countingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			_, err := io.Copy(io.Discard, r.Body)
			bodyFailed <- err
			return
		}
		fmt.Fprint(w, "ok")
	}, func(s *http.Server) {
		// Bounds the handler's body read, so that a failing test ends.
		s.ReadTimeout = 15 * time.Second
	})
	tr := newTestHTTP1(t, time.Hour)
	if _, body := do(t, tr, newReq(t, http.MethodGet, srv.URL, nil)); body != "ok" {
		t.Fatalf("first request: %q", body)
	}
	readErr := errors.New(`invalid chunk size "zz"`)
	body := &failingBody{first: []byte("hello"), gate: make(chan struct{}), err: readErr}
	req := newReq(t, http.MethodPost, srv.URL, nil)
	req.Body, req.ContentLength = body, -1
	time.AfterFunc(100*time.Millisecond, func() { close(body.gate) })
	done := make(chan error, 1)
	go func() {
		res, err := tr.RoundTrip(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		var berr *RequestBodyError
		if !errors.As(err, &berr) || !errors.Is(err, readErr) {
			t.Fatalf("err = %v, want a *RequestBodyError wrapping the body's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RoundTrip still waiting for a response 10s after the request body failed")
	}
	select {
	case err := <-bodyFailed:
		if err == nil {
			t.Error("the upstream read a complete body; want its connection closed mid-body")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream's body read never ended")
	}
	if _, body := do(t, tr, newReq(t, http.MethodGet, srv.URL, nil)); body != "ok" {
		t.Fatalf("next request: %q", body)
	}
	if n := conns.Load(); n != 2 {
		t.Errorf("connections = %d, want 2 (the one that carried the partial request is never reused)", n)
	}
}
