package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// trackedBody is a request body that records being closed.
type trackedBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackedBody) Close() error { b.closed.Add(1); return nil }

func newTrackedBody(s string) *trackedBody { return &trackedBody{Reader: strings.NewReader(s)} }

// newClientRequest builds an outgoing request the way the router does:
// a URL, a Host, headers, and a body with its length.
func newClientRequest(t *testing.T, method, rawURL string, body io.ReadCloser, contentLength int64) *http.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Request{Method: method, URL: u, Host: u.Host, Header: http.Header{}, Body: body, ContentLength: contentLength}
}

// writeRequestBytes returns what WriteRequest puts on the wire.
func writeRequestBytes(req *http.Request) (string, error) {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	err := WriteRequest(bw, req)
	return buf.String(), err
}

func TestWriteRequestBytes(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T) *http.Request
		want  string
	}{
		{
			name: "GET without body has no Content-Length",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://example.com/path?q=1", nil, 0)
				req.Header.Set("X-A", "1")
				return req
			},
			want: "GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n\r\n",
		},
		{
			name: "GET with http.NoBody is bodyless",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "GET", "http://example.com/", http.NoBody, 0)
			},
			want: "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		},
		{
			name:  "empty path becomes /",
			build: func(t *testing.T) *http.Request { return newClientRequest(t, "GET", "http://example.com", nil, 0) },
			want:  "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
		},
		{
			name:  "empty method means GET",
			build: func(t *testing.T) *http.Request { return newClientRequest(t, "", "http://example.com/x", nil, 0) },
			want:  "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n",
		},
		{
			name: "POST with nil body says Content-Length: 0",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "POST", "http://example.com/form", nil, 0)
			},
			want: "POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "PUT with http.NoBody says Content-Length: 0",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "PUT", "http://example.com/o", http.NoBody, 0)
			},
			want: "PUT /o HTTP/1.1\r\nHost: example.com\r\nContent-Length: 0\r\n\r\n",
		},
		{
			name: "Content-Length body",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "POST", "http://example.com/up", newTrackedBody("hello"), 5)
			},
			want: "POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello",
		},
		{
			name: "chunked body with a trailer",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://example.com/rpc", newTrackedBody("hello"), -1)
				req.Trailer = http.Header{"X-Sum": {"abc"}}
				return req
			},
			want: "POST /rpc HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: abc\r\n\r\n",
		},
		{
			// Regression: only CR and LF were kept out of trailer values.
			name: "invalid trailer value skipped",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://example.com/rpc", newTrackedBody("x"), -1)
				req.Trailer = http.Header{"X-Sum": {"a\x00b"}}
				return req
			},
			want: "POST /rpc HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n1\r\nx\r\n0\r\n\r\n",
		},
		{
			name: "trailers force chunking over a known length",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://example.com/rpc", newTrackedBody("hi"), 2)
				req.Trailer = http.Header{"Grpc-Status": {"0"}}
				return req
			},
			want: "POST /rpc HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n2\r\nhi\r\n0\r\nGrpc-Status: 0\r\n\r\n",
		},
		{
			name: "framing headers in req.Header are ignored",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://example.com/", newTrackedBody("abc"), 3)
				req.Header["Content-Length"] = []string{"999"}
				req.Header["Transfer-Encoding"] = []string{"chunked"}
				req.Header["Host"] = []string{"evil.example"}
				req.Header["Trailer"] = []string{"X-Nope"}
				return req
			},
			want: "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
		},
		{
			name: "req.Host wins over URL.Host",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://10.0.0.7:8080/", nil, 0)
				req.Host = "api.example.com"
				return req
			},
			want: "GET / HTTP/1.1\r\nHost: api.example.com\r\n\r\n",
		},
		{
			name: "URL.Host when req.Host is empty",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://10.0.0.7:8080/", nil, 0)
				req.Host = ""
				return req
			},
			want: "GET / HTTP/1.1\r\nHost: 10.0.0.7:8080\r\n\r\n",
		},
		{
			name: "escaped path (RawPath) and query preserved exactly",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "GET", "http://h/a%2Fb/c%20d/%E2%82%AC?x=%41&y=a+b&&z", nil, 0)
			},
			want: "GET /a%2Fb/c%20d/%E2%82%AC?x=%41&y=a+b&&z HTTP/1.1\r\nHost: h\r\n\r\n",
		},
		{
			name:  "a lone ? is kept",
			build: func(t *testing.T) *http.Request { return newClientRequest(t, "GET", "http://h/p?", nil, 0) },
			want:  "GET /p? HTTP/1.1\r\nHost: h\r\n\r\n",
		},
		{
			name: "CONNECT writes the authority",
			build: func(t *testing.T) *http.Request {
				return &http.Request{Method: "CONNECT", URL: &url.URL{Host: "up.example:443"}, Header: http.Header{}}
			},
			want: "CONNECT up.example:443 HTTP/1.1\r\nHost: up.example:443\r\n\r\n",
		},
		{
			name: "multi-valued header: one line per value, in order",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://h/", nil, 0)
				req.Header["X-Forwarded-For"] = []string{"10.0.0.1", "10.0.0.2"}
				return req
			},
			want: "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.build(t)
			got, err := writeRequestBytes(req)
			if err != nil {
				t.Fatalf("WriteRequest: %v", err)
			}
			if got != tt.want {
				t.Errorf("wire:\n%q\nwant\n%q", got, tt.want)
			}
			if tb, ok := req.Body.(*trackedBody); ok && tb.closed.Load() != 1 {
				t.Errorf("body closed %d times, want 1", tb.closed.Load())
			}
			// Whatever we write, net/http must read back as the same request.
			back, err := http.ReadRequest(bufio.NewReader(strings.NewReader(got)))
			if err != nil {
				t.Fatalf("net/http cannot read what WriteRequest wrote: %v", err)
			}
			if _, err := io.Copy(io.Discard, back.Body); err != nil {
				t.Fatalf("net/http cannot read the body: %v", err)
			}
		})
	}
}

func TestWriteRequestErrors(t *testing.T) {
	tests := []struct {
		name    string
		build   func(t *testing.T) *http.Request
		mention string
	}{
		{
			name: "body shorter than ContentLength",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "POST", "http://h/", newTrackedBody("hello"), 10)
			},
			mention: "ContentLength=10 with Body length 5",
		},
		{
			name: "invalid header name",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://h/", newTrackedBody(""), 0)
				req.Header["X Bad"] = []string{"v"}
				return req
			},
			mention: `invalid header field name "X Bad"`,
		},
		{
			name: "header value with CRLF (injection)",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://h/", newTrackedBody(""), 0)
				req.Header["X-Inject"] = []string{"a\r\nX-Evil: 1"}
				return req
			},
			mention: `invalid value for header field "X-Inject"`,
		},
		{
			name: "header value with NUL",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://h/", newTrackedBody(""), 0)
				req.Header["X-Nul"] = []string{"a\x00"}
				return req
			},
			mention: `invalid value for header field "X-Nul"`,
		},
		{
			// Regression: trailer names went into the "Trailer" header unchecked.
			name: "invalid trailer name",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://h/", newTrackedBody("x"), -1)
				req.Trailer = http.Header{"X-Ok\r\nX-Evil: 1": nil}
				return req
			},
			mention: "invalid trailer field name",
		},
		{
			name: "framing field as a trailer",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://h/", newTrackedBody("x"), -1)
				req.Trailer = http.Header{"content-length": nil}
				return req
			},
			mention: `forbidden trailer field "content-length"`,
		},
		{
			name: "invalid Host",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://h/", newTrackedBody(""), 0)
				req.Host = "a b"
				return req
			},
			mention: `invalid Host header "a b"`,
		},
		{
			name: "invalid method",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "GE T", "http://h/", newTrackedBody(""), 0)
			},
			mention: `invalid method "GE T"`,
		},
		{
			// Regression: a nil URL panicked.
			name: "no URL",
			build: func(*testing.T) *http.Request {
				return &http.Request{Method: "GET", Host: "h", Header: http.Header{}, Body: newTrackedBody("")}
			},
			mention: "no URL",
		},
		{
			name: "body read error",
			build: func(t *testing.T) *http.Request {
				body := &trackedBody{Reader: io.MultiReader(strings.NewReader("abc"), iotestErrReader{errors.New("client went away")})}
				return newClientRequest(t, "POST", "http://h/", body, 10)
			},
			mention: "client went away",
		},
		{
			name: "chunked body read error",
			build: func(t *testing.T) *http.Request {
				body := &trackedBody{Reader: io.MultiReader(strings.NewReader("abc"), iotestErrReader{errors.New("client went away")})}
				return newClientRequest(t, "POST", "http://h/", body, -1)
			},
			mention: "client went away",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.build(t)
			wire, err := writeRequestBytes(req)
			if err == nil {
				t.Fatalf("no error; wrote %q", wire)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
			if strings.Contains(wire, "X-Evil") {
				t.Errorf("injected header reached the wire: %q", wire)
			}
			if tb, ok := req.Body.(*trackedBody); ok && tb.closed.Load() != 1 {
				t.Errorf("body closed %d times after an error, want 1", tb.closed.Load())
			}
		})
	}
}

type iotestErrReader struct{ err error }

func (r iotestErrReader) Read([]byte) (int, error) { return 0, r.err }

// seenRequest is what a net/http server observed of one request.
type seenRequest struct {
	method, uri, host, rawPath, path, rawQuery string
	header, trailer                            http.Header
	contentLength                              int64
	transferEncoding                           []string
	body                                       string
	err                                        error
}

// startRecordingServer starts a net/http server on loopback that reports
// every request it reads on the returned channel.
func startRecordingServer(t *testing.T) (addr string, seen <-chan seenRequest) {
	t.Helper()
	ch := make(chan seenRequest, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		ch <- seenRequest{
			method: r.Method, uri: r.RequestURI, host: r.Host, path: r.URL.Path, rawPath: r.URL.RawPath, rawQuery: r.URL.RawQuery,
			header: r.Header.Clone(), trailer: r.Trailer.Clone(), contentLength: r.ContentLength,
			transferEncoding: r.TransferEncoding, body: string(b), err: err,
		}
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), ch
}

// dialLoopback opens a raw connection with a deadline generous enough for
// a loaded machine.
func dialLoopback(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestWriteRequestToNetHTTPServer(t *testing.T) {
	addr, seen := startRecordingServer(t)
	conn := dialLoopback(t, addr)
	bw := bufio.NewWriter(conn)
	br := bufio.NewReader(conn)

	tests := []struct {
		name  string
		build func(t *testing.T) *http.Request
		check func(t *testing.T, s seenRequest)
	}{
		{
			name: "GET without body",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://"+addr+"/get?a=1&b=%20", nil, 0)
				req.Header.Set("User-Agent", "hopwatch-test")
				return req
			},
			check: func(t *testing.T, s seenRequest) {
				if _, ok := s.header["Content-Length"]; ok || s.contentLength != 0 {
					t.Errorf("GET sent Content-Length (%v, %d)", s.header["Content-Length"], s.contentLength)
				}
				if s.uri != "/get?a=1&b=%20" || s.rawQuery != "a=1&b=%20" {
					t.Errorf("uri %q query %q", s.uri, s.rawQuery)
				}
				if s.header.Get("User-Agent") != "hopwatch-test" {
					t.Errorf("User-Agent %q", s.header.Get("User-Agent"))
				}
			},
		},
		{
			name:  "POST with nil body",
			build: func(t *testing.T) *http.Request { return newClientRequest(t, "POST", "http://"+addr+"/post", nil, 0) },
			check: func(t *testing.T, s seenRequest) {
				if got := s.header.Get("Content-Length"); got != "0" {
					t.Errorf("Content-Length %q, want 0", got)
				}
			},
		},
		{
			name: "Content-Length body",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "PUT", "http://"+addr+"/put", newTrackedBody(strings.Repeat("x", 100000)), 100000)
			},
			check: func(t *testing.T, s seenRequest) {
				if s.contentLength != 100000 || s.body != strings.Repeat("x", 100000) || s.err != nil {
					t.Errorf("content length %d, body %d bytes, err %v", s.contentLength, len(s.body), s.err)
				}
			},
		},
		{
			name: "chunked body with trailers",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "POST", "http://"+addr+"/chunked", newTrackedBody("streamed body"), -1)
				req.Trailer = http.Header{"Grpc-Status": {"0"}, "X-Checksum": {"c1", "c2"}}
				return req
			},
			check: func(t *testing.T, s seenRequest) {
				if s.body != "streamed body" || s.err != nil || s.contentLength != -1 || !reflect.DeepEqual(s.transferEncoding, []string{"chunked"}) {
					t.Errorf("body %q err %v length %d TE %v", s.body, s.err, s.contentLength, s.transferEncoding)
				}
				want := http.Header{"Grpc-Status": {"0"}, "X-Checksum": {"c1", "c2"}}
				if !reflect.DeepEqual(s.trailer, want) {
					t.Errorf("server saw trailers %v, want %v", s.trailer, want)
				}
			},
		},
		{
			name: "Host from req.Host",
			build: func(t *testing.T) *http.Request {
				req := newClientRequest(t, "GET", "http://"+addr+"/host", nil, 0)
				req.Host = "virtual.example"
				return req
			},
			check: func(t *testing.T, s seenRequest) {
				if s.host != "virtual.example" {
					t.Errorf("host %q", s.host)
				}
			},
		},
		{
			name: "escaped path",
			build: func(t *testing.T) *http.Request {
				return newClientRequest(t, "GET", "http://"+addr+"/files/a%2Fb%3Fc?x=%2F", nil, 0)
			},
			check: func(t *testing.T, s seenRequest) {
				if s.uri != "/files/a%2Fb%3Fc?x=%2F" || s.path != "/files/a/b?c" || s.rawPath != "/files/a%2Fb%3Fc" {
					t.Errorf("uri %q path %q rawPath %q", s.uri, s.path, s.rawPath)
				}
			},
		},
	}
	// All on one connection: each request's framing must leave the
	// connection ready for the next.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.build(t)
			if err := WriteRequest(bw, req); err != nil {
				t.Fatal(err)
			}
			if tb, ok := req.Body.(*trackedBody); ok && tb.closed.Load() != 1 {
				t.Errorf("body closed %d times, want 1", tb.closed.Load())
			}
			res, err := ReadResponse(br, req, 64<<10)
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(res.Body)
			if err != nil || string(b) != "ok" || res.StatusCode != 200 {
				t.Fatalf("response %d %q %v", res.StatusCode, b, err)
			}
			select {
			case s := <-seen:
				tt.check(t, s)
			case <-time.After(10 * time.Second):
				t.Fatal("server saw no request")
			}
		})
	}
}

// netHTTPUpstream is a net/http server whose responses the tests read
// through raw connections, so that they control every byte sent and see
// every byte received.
func netHTTPUpstream(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/cl", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, _ = io.WriteString(w, "hello")
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Announced")
		_, _ = io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "part2")
		w.Header().Set("X-Announced", "a")
		w.Header().Set(http.TrailerPrefix+"X-Unannounced", "u")
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, "bye")
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/304", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/head", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "1234")
	})
	mux.HandleFunc("/103", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		_, _ = io.WriteString(w, "final")
	})
	mux.HandleFunc("/stream10", func(w http.ResponseWriter, _ *http.Request) {
		// No length on an HTTP/1.0 response: net/http ends it by closing.
		_, _ = io.WriteString(w, "until ")
		w.(http.Flusher).Flush()
		_, _ = io.WriteString(w, "close")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

func TestReadResponseFromNetHTTPServer(t *testing.T) {
	addr := netHTTPUpstream(t)
	conn := dialLoopback(t, addr)
	br := bufio.NewReader(conn)
	send := func(t *testing.T, method, path string) *http.Request {
		t.Helper()
		if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: %s\r\n\r\n", method, path, addr); err != nil {
			t.Fatal(err)
		}
		return &http.Request{Method: method, URL: &url.URL{Path: path}}
	}
	read := func(t *testing.T, req *http.Request) (*http.Response, string) {
		t.Helper()
		res, err := ReadResponse(br, req, 64<<10)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("%s %s: body: %v", req.Method, req.URL.Path, err)
		}
		return res, string(b)
	}

	// One keep-alive connection carries all of these: a framing mistake
	// in any of them breaks the ones after it.
	t.Run("Content-Length", func(t *testing.T) {
		res, body := read(t, send(t, "GET", "/cl"))
		if res.StatusCode != 200 || res.ContentLength != 5 || body != "hello" || res.Close {
			t.Errorf("%d len %d body %q close %v", res.StatusCode, res.ContentLength, body, res.Close)
		}
	})
	t.Run("chunked with trailers", func(t *testing.T) {
		res, err := ReadResponse(br, send(t, "GET", "/chunked"), 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if res.ContentLength != -1 || !reflect.DeepEqual(res.TransferEncoding, []string{"chunked"}) {
			t.Errorf("len %d TE %v", res.ContentLength, res.TransferEncoding)
		}
		if _, ok := res.Header["Transfer-Encoding"]; ok {
			t.Error("Transfer-Encoding left in res.Header")
		}
		if !reflect.DeepEqual(res.Trailer, http.Header{"X-Announced": nil}) {
			t.Errorf("before the body: Trailer %v, want the announced key with no value", res.Trailer)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || string(b) != "part1,part2" {
			t.Fatalf("body %q %v", b, err)
		}
		want := http.Header{"X-Announced": {"a"}, "X-Unannounced": {"u"}}
		if !reflect.DeepEqual(res.Trailer, want) {
			t.Errorf("after EOF: Trailer %v, want %v", res.Trailer, want)
		}
	})
	t.Run("HEAD with Content-Length has no body", func(t *testing.T) {
		res, body := read(t, send(t, "HEAD", "/head"))
		if res.ContentLength != 1234 || body != "" || res.Body != http.NoBody {
			t.Errorf("len %d body %q", res.ContentLength, body)
		}
	})
	t.Run("204", func(t *testing.T) {
		res, body := read(t, send(t, "GET", "/204"))
		if res.StatusCode != 204 || res.ContentLength != 0 || body != "" || res.Body != http.NoBody {
			t.Errorf("%d len %d body %q", res.StatusCode, res.ContentLength, body)
		}
	})
	t.Run("304", func(t *testing.T) {
		res, body := read(t, send(t, "GET", "/304"))
		if res.StatusCode != 304 || res.ContentLength != 0 || body != "" || res.Header.Get("ETag") != `"v1"` {
			t.Errorf("%d len %d body %q etag %q", res.StatusCode, res.ContentLength, body, res.Header.Get("ETag"))
		}
	})
	t.Run("103 then 200", func(t *testing.T) {
		req := send(t, "GET", "/103")
		res, body := read(t, req)
		if res.StatusCode != 103 || body != "" || res.Header.Get("Link") == "" {
			t.Fatalf("first response %d %q, want a 103 with Link", res.StatusCode, body)
		}
		res, body = read(t, req)
		if res.StatusCode != 200 || body != "final" {
			t.Errorf("final response %d %q", res.StatusCode, body)
		}
	})
	t.Run("Connection: close", func(t *testing.T) {
		res, body := read(t, send(t, "GET", "/close"))
		if !res.Close || body != "bye" {
			t.Errorf("close %v body %q", res.Close, body)
		}
		if res.Header.Get("Connection") != "close" {
			t.Errorf("Connection header %q, want it kept for the router", res.Header.Get("Connection"))
		}
		// The server keeps its word.
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Errorf("after Connection: close, read %v, want EOF", err)
		}
	})
	t.Run("close-delimited HTTP/1.0 response", func(t *testing.T) {
		c := dialLoopback(t, addr)
		if _, err := io.WriteString(c, "GET /stream10 HTTP/1.0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		res, err := ReadResponse(bufio.NewReader(c), &http.Request{Method: "GET"}, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Close || res.ContentLength != -1 || res.ProtoMinor != 0 {
			t.Errorf("close %v len %d proto %s", res.Close, res.ContentLength, res.Proto)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || string(b) != "until close" {
			t.Errorf("body %q %v", b, err)
		}
	})
}

// readResponseString reads one hand-written response and its body.
func readResponseString(in string, method string) (*http.Response, string, error) {
	res, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), &http.Request{Method: method}, 4<<10)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

func TestReadResponseFraming(t *testing.T) {
	tests := []struct {
		name, method, in string
		status           int
		contentLength    int64
		body             string
		close            bool
		header           http.Header
		trailer          http.Header
	}{
		{
			name: "Content-Length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhelloEXTRA",
			status: 200, contentLength: 5, body: "hello",
			header: http.Header{"Content-Length": {"5"}, "Content-Type": {"text/plain"}},
		},
		{
			name: "Content-Length repeated identically", in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
			status: 200, contentLength: 2, body: "ok", header: http.Header{"Content-Length": {"2", "2"}},
		},
		{
			name: "Content-Length: 0", in: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
			status: 200, header: http.Header{"Content-Length": {"0"}},
		},
		{
			name:   "chunked, announced and unannounced trailers",
			in:     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\ngrpc-status: 0\r\nX-Late: 1\r\nX-Late: 2\r\n\r\n",
			status: 200, contentLength: -1, body: "Wikipedia",
			header:  http.Header{"Trailer": {"Grpc-Status"}},
			trailer: http.Header{"Grpc-Status": {"0"}, "X-Late": {"1", "2"}},
		},
		{
			name: "chunked, no trailers", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			status: 200, contentLength: -1, body: "abc", header: http.Header{},
		},
		{
			name: "Transfer-Encoding wins over Content-Length, which is removed",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
			// The connection is not reused after such a response.
			status: 200, contentLength: -1, body: "abc", close: true, header: http.Header{},
		},
		{
			name: "close-delimited", in: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
			status: 200, contentLength: -1, body: "until the end", close: true,
			header: http.Header{"Content-Type": {"text/plain"}},
		},
		{
			name: "HTTP/1.0 with Content-Length closes", in: "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
			status: 200, contentLength: 2, body: "ok", close: true, header: http.Header{"Content-Length": {"2"}},
		},
		{
			name: "HTTP/1.0 keep-alive", in: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
			status: 200, contentLength: 2, body: "ok", header: http.Header{"Content-Length": {"2"}, "Connection": {"keep-alive"}},
		},
		{
			name: "Connection: close kept in the header", in: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			status: 200, contentLength: 2, body: "ok", close: true, header: http.Header{"Content-Length": {"2"}, "Connection": {"close"}},
		},
		{
			name: "HEAD response with Content-Length", method: "HEAD", in: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
			status: 200, contentLength: 1234, header: http.Header{"Content-Length": {"1234"}},
		},
		{
			name: "HEAD response without length", method: "HEAD", in: "HTTP/1.1 200 OK\r\n\r\n",
			status: 200, contentLength: -1, header: http.Header{},
		},
		{
			name: "204 ignores Content-Length", in: "HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n",
			status: 204, header: http.Header{"Content-Length": {"10"}},
		},
		{
			name: "304", in: "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
			status: 304, header: http.Header{"Etag": {`"x"`}},
		},
		{
			name: "100 Continue", in: "HTTP/1.1 100 Continue\r\n\r\n",
			status: 100, header: http.Header{},
		},
		{
			name: "101 Switching Protocols has no body", in: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
			status: 101, header: http.Header{"Upgrade": {"websocket"}, "Connection": {"Upgrade"}},
		},
		{
			name: "status without reason phrase", in: "HTTP/1.1 299\r\nContent-Length: 0\r\n\r\n",
			status: 299, header: http.Header{"Content-Length": {"0"}},
		},
		{
			name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
			status: 200, contentLength: 2, body: "ok", header: http.Header{"Content-Length": {"2"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			res, body, err := readResponseString(tt.in, method)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.status || res.ContentLength != tt.contentLength || body != tt.body || res.Close != tt.close {
				t.Errorf("got %d len %d body %q close %v; want %d len %d body %q close %v",
					res.StatusCode, res.ContentLength, body, res.Close, tt.status, tt.contentLength, tt.body, tt.close)
			}
			if !reflect.DeepEqual(res.Header, tt.header) {
				t.Errorf("header %v, want %v", res.Header, tt.header)
			}
			if !reflect.DeepEqual(res.Trailer, tt.trailer) {
				t.Errorf("trailer %v, want %v", res.Trailer, tt.trailer)
			}
		})
	}
}

func TestReadResponseMalformed(t *testing.T) {
	tests := []struct{ name, in, mention string }{
		{"empty status line", "\r\nHTTP/1.1 200 OK\r\n\r\n", "malformed HTTP response"},
		{"no status code", "HTTP/1.1\r\n\r\n", `malformed HTTP response "HTTP/1.1"`},
		{"garbage", "hello world\r\n\r\n", `malformed HTTP version "hello"`},
		{"HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", `malformed HTTP version "HTTP/2.0"`},
		{"lowercase version", "http/1.1 200 OK\r\n\r\n", `malformed HTTP version "http/1.1"`},
		{"two-digit code", "HTTP/1.1 20 OK\r\n\r\n", `malformed HTTP status code "20"`},
		{"four-digit code", "HTTP/1.1 2000 OK\r\n\r\n", `malformed HTTP status code "2000"`},
		{"code below 100", "HTTP/1.1 099 Odd\r\n\r\n", `malformed HTTP status code "099"`},
		{"non-numeric code", "HTTP/1.1 2x0 OK\r\n\r\n", `malformed HTTP status code "2x0"`},
		{"signed code", "HTTP/1.1 +20 OK\r\n\r\n", `malformed HTTP status code "+20"`},
		{"header without colon", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", "malformed HTTP response: header line without a colon"},
		{"space before colon", "HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n", `malformed HTTP response: invalid header name "X-A "`},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n", "malformed HTTP response: obsolete line folding"},
		{"CTL in value", "HTTP/1.1 200 OK\r\nX-A: b\x01\r\n\r\n", `malformed HTTP response: invalid value of header "X-A"`},
		{"bad Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", `malformed HTTP response: invalid Content-Length "1x"`},
		{"negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", `malformed HTTP response: invalid Content-Length "-1"`},
		{"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "malformed HTTP response: conflicting Content-Length"},
		// Regression (found by FuzzReadResponse): a Content-Length went
		// unchecked next to Transfer-Encoding.
		{"Transfer-Encoding with a bad Content-Length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n", `malformed HTTP response: invalid Content-Length "x"`},
		{"1xx with Transfer-Encoding and an empty Content-Length", "HTTP/1.0 100 \nTransfer-Encoding: 0\nContent-Length:\n\n", `malformed HTTP response: invalid Content-Length ""`},
		{"Transfer-Encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", `malformed HTTP response: unsupported Transfer-Encoding "gzip"`},
		{"Transfer-Encoding twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "malformed HTTP response: unsupported Transfer-Encoding"},
		// Regression: Unicode folding read U+212A (Kelvin sign) as 'k'.
		{"Transfer-Encoding with a Kelvin sign", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chun\u212Aed\r\n\r\n", "malformed HTTP response: unsupported Transfer-Encoding"},
		// Regression: chunked framing was applied to HTTP/1.0 responses.
		{"Transfer-Encoding on HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "malformed HTTP response: Transfer-Encoding in an HTTP/1.0 response"},
		{"forbidden trailer announced", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", `malformed HTTP response: forbidden trailer field "Content-Length"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := readResponseString(tt.in, "GET")
			if err == nil {
				t.Fatalf("accepted: %d %v", res.StatusCode, res.Header)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestReadResponseHeadLimit(t *testing.T) {
	const limit = 128
	head := func(n int) string {
		base := "HTTP/1.1 200 OK\r\nX-Pad: "
		return base + strings.Repeat("p", n-len(base)-4) + "\r\n\r\n"
	}
	if _, err := ReadResponse(bufio.NewReader(strings.NewReader(head(limit))), nil, limit); err != nil {
		t.Errorf("head of exactly %d bytes: %v", limit, err)
	}
	_, err := ReadResponse(bufio.NewReader(strings.NewReader(head(limit+1))), nil, limit)
	if err == nil {
		t.Fatal("head one byte over the limit accepted")
	}
	if !strings.Contains(err.Error(), "exceed 128 bytes") || strings.Contains(err.Error(), "request") {
		t.Errorf("error %q: want it to say the response head exceeds 128 bytes", err)
	}
	// A trailer section is held to the same limit.
	in := "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: " + strings.Repeat("t", limit) + "\r\n\r\n"
	res, err := ReadResponse(bufio.NewReader(strings.NewReader(in)), nil, limit)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); err == nil {
		t.Error("trailers over the limit accepted")
	}
}

func TestReadResponseTruncated(t *testing.T) {
	tests := []struct{ name, in string }{
		{"nothing", ""},
		{"torn status line", "HTTP/1.1 200"},
		{"torn headers", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"},
		{"Content-Length body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"},
		{"chunk data", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nhello"},
		{"chunk size line", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"},
		{"no last chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0"},
		{"no end of trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"},
		{"torn trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-A: b\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readResponseString(tt.in, "GET")
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
	t.Run("trailer section ended by a bare LF", func(t *testing.T) {
		// Found by FuzzReadResponse: net/http refuses it, and so must we.
		for _, end := range []string{"0\r\n\n", "0\r\nX-T: 1\n\r\n"} {
			_, _, err := readResponseString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+end+"HTTP/1.1 200 OK\r\n\r\n", "GET")
			if err == nil || !strings.Contains(err.Error(), "malformed HTTP response trailers") {
				t.Errorf("%q: err = %v", end, err)
			}
		}
	})
	t.Run("sticky after the error", func(t *testing.T) {
		res, err := ReadResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhi")), nil, 4<<10)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(res.Body)
		if _, err := res.Body.Read(make([]byte, 1)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("second read: %v", err)
		}
	})
	t.Run("a read error in the head is not blamed on a request", func(t *testing.T) {
		boom := errors.New("connection reset")
		br := bufio.NewReader(io.MultiReader(strings.NewReader("HTTP/1.1 200 OK\r\n"), iotestErrReader{boom}))
		_, err := ReadResponse(br, nil, 4<<10)
		if !errors.Is(err, boom) || strings.Contains(err.Error(), "request") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestReadResponseBackToBack(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\nX-T: 2\r\n\r\n" +
		"HTTP/1.1 204 No Content\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n" + // answers a HEAD: no body follows
		"HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour" +
		"HTTP/1.1 200 OK\r\n\r\nfive until close"
	br := bufio.NewReaderSize(strings.NewReader(in), 16) // small: lines span refills
	wants := []struct {
		method string
		status int
		body   string
	}{
		{"GET", 200, "one"}, {"GET", 200, "two"}, {"GET", 204, ""}, {"HEAD", 200, ""},
		{"POST", 100, ""}, {"POST", 200, "four"}, {"GET", 200, "five until close"},
	}
	for i, w := range wants {
		res, err := ReadResponse(br, &http.Request{Method: w.method}, 4<<10)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(res.Body)
		if err != nil || res.StatusCode != w.status || string(b) != w.body {
			t.Fatalf("response %d: %d %q %v; want %d %q", i, res.StatusCode, b, err, w.status, w.body)
		}
		if i == 1 && res.Trailer.Get("X-T") != "2" {
			t.Errorf("response %d: trailer %v", i, res.Trailer)
		}
	}
	if _, err := ReadResponse(br, nil, 4<<10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after the last response: %v, want io.ErrUnexpectedEOF", err)
	}
}
