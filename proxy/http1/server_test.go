package http1

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// echoHandler answers with the method, path and body it got.
func echoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Content-Length", strconv.FormatInt(r.ContentLength, 10))
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, b)
	})
}

// TestServerKeepAlive sends several requests through net/http's client
// and, separately, on one raw connection: every response is right and all
// of them travel on one connection.
func TestServerKeepAlive(t *testing.T) {
	ls := startLoopServer(t, echoHandler())
	client := newLoopClient(t)
	for i := range 5 {
		reused := false
		trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused }}
		method, body := http.MethodGet, ""
		if i%2 == 1 {
			method, body = http.MethodPost, "body-"+strconv.Itoa(i)
		}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, ls.url()+"/r"+strconv.Itoa(i), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatalf("request %d body: %v", i, err)
		}
		if want := fmt.Sprintf("%s /r%d %s", method, i, body); string(got) != want || res.StatusCode != 200 {
			t.Errorf("request %d: %d %q, want 200 %q", i, res.StatusCode, got, want)
		}
		if i > 0 && !reused {
			t.Errorf("request %d did not reuse the connection", i)
		}
	}
	if n := ls.accepts.Load(); n != 1 {
		t.Errorf("net/http client: %d connections accepted, want 1", n)
	}

	c := ls.dialWire(t)
	for i := range 3 {
		c.send("GET /raw" + strconv.Itoa(i) + " HTTP/1.1\r\nHost: x\r\n\r\n")
		r := c.read(http.MethodGet)
		if want := "GET /raw" + strconv.Itoa(i) + " "; r.status != 200 || r.body != want {
			t.Errorf("raw request %d: %d %q, want 200 %q", i, r.status, r.body, want)
		}
		if r.lines("Connection") != 0 {
			t.Errorf("raw request %d: keep-alive response has a Connection header:\n%s", i, r.head)
		}
	}
	if n := ls.accepts.Load(); n != 2 {
		t.Errorf("%d connections accepted, want 2", n)
	}
}

// TestServerPipelining writes several requests in one write: the
// responses come back complete and in order, bodies included.
func TestServerPipelining(t *testing.T) {
	ls := startLoopServer(t, echoHandler())
	c := ls.dialWire(t)
	c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n" +
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
		"GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /a ", "POST /b hello", "POST /c abc", "GET /d "} {
		if r := c.read(http.MethodGet); r.body != want {
			t.Errorf("got %q, want %q", r.body, want)
		}
	}
	if n := ls.accepts.Load(); n != 1 {
		t.Errorf("%d connections accepted, want 1", n)
	}
}

// TestServerRequestBodies covers Content-Length and chunked request bodies,
// and chunked trailers, from a raw client and from net/http's.
func TestServerRequestBodies(t *testing.T) {
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, announced := r.Trailer["X-Sum"]
		before := r.Trailer.Get("X-Sum")
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "cl=%d te=%v body=%s announced=%v before=%q after=%q",
			r.ContentLength, r.TransferEncoding, b, announced, before, r.Trailer.Get("X-Sum"))
	}))

	t.Run("raw", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
		if r, want := c.read("POST"), `cl=11 te=[] body=hello world announced=false before="" after=""`; r.body != want {
			t.Errorf("Content-Length body: got %q, want %q", r.body, want)
		}
		c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
			"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n")
		if r, want := c.read("POST"), `cl=-1 te=[chunked] body=hello world announced=true before="" after="42"`; r.body != want {
			t.Errorf("chunked body: got %q, want %q", r.body, want)
		}
		// A trailer that was not announced still arrives.
		c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-Sum: 7\r\n\r\n")
		if r, want := c.read("POST"), `cl=-1 te=[chunked] body=hi announced=false before="" after="7"`; r.body != want {
			t.Errorf("unannounced trailer: got %q, want %q", r.body, want)
		}
	})

	t.Run("net/http client", func(t *testing.T) {
		client := newLoopClient(t)
		res, err := client.Post(ls.url(), "text/plain", strings.NewReader("hello world"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := `cl=11 te=[] body=hello world announced=false before="" after=""`; string(b) != want {
			t.Errorf("Content-Length body: got %q, want %q", b, want)
		}

		pr, pw := io.Pipe()
		go func() {
			_, _ = io.WriteString(pw, "hello")
			_, _ = io.WriteString(pw, " world")
			_ = pw.Close()
		}()
		req, err := http.NewRequest(http.MethodPost, ls.url(), pr)
		if err != nil {
			t.Fatal(err)
		}
		req.Trailer = http.Header{"X-Sum": {"42"}}
		res, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ = io.ReadAll(res.Body)
		res.Body.Close()
		if want := `cl=-1 te=[chunked] body=hello world announced=true before="" after="42"`; string(b) != want {
			t.Errorf("chunked body with trailer: got %q, want %q", b, want)
		}
	})
}

// TestServerUnreadBody: a body the handler leaves unread is read and
// dropped when it is small, so the connection carries the next request; a
// remainder over 256 KiB closes the connection instead.
func TestServerUnreadBody(t *testing.T) {
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n, _ := strconv.Atoi(r.URL.Query().Get("read")); n > 0 {
			if _, err := io.ReadFull(r.Body, make([]byte, n)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		_, _ = io.WriteString(w, "done "+r.URL.Path)
	}))
	chunked := func(n int) string {
		var b strings.Builder
		for n > 0 {
			k := min(n, 16<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", k, strings.Repeat("c", k))
			n -= k
		}
		return b.String() + "0\r\n\r\n"
	}
	cases := []struct {
		name       string
		head, body string
		reused     bool
		// announced: the response says Connection: close (a chunked
		// body's size is not known when the response starts).
		announced bool
	}{
		{"small content-length", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", "0123456789", true, false},
		{"small chunked", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(1000), true, false},
		{"partly read, rest under the limit", "POST /x?read=102400 HTTP/1.1\r\nHost: x\r\nContent-Length: 307200\r\n\r\n", strings.Repeat("p", 300<<10), true, false},
		{"large content-length", "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 307200\r\n\r\n", strings.Repeat("l", 300<<10), false, true},
		{"large chunked", "POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunked(300 << 10), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := ls.accepts.Load()
			c := ls.dialWire(t)
			c.send(tc.head)
			// The body goes from another goroutine: a server that stops
			// reading may leave the write blocked or failing.
			wrote := make(chan error, 1)
			go func() {
				_, err := io.WriteString(c.nc, tc.body)
				wrote <- err
			}()
			r := c.read("POST")
			if r.status != 200 || r.body != "done /x" {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			if got := r.header.Get("Connection") == "close"; got != tc.announced {
				t.Errorf("Connection: close announced %v, want %v\n%s", got, tc.announced, r.head)
			}
			if !tc.reused {
				c.expectClosed()
				return
			}
			// The next request must not overtake the rest of the body.
			if err := <-wrote; err != nil {
				t.Fatalf("writing the body: %v", err)
			}
			c.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			if r := c.read("GET"); r.body != "done /next" {
				t.Errorf("next request on the connection: got %q", r.body)
			}
			if n := ls.accepts.Load() - before; n != 1 {
				t.Errorf("%d connections accepted, want 1", n)
			}
		})
	}
}

// TestServerRefusedUploadGetsResponse: a client still uploading a body
// that the handler refused without reading must get the response, not a
// connection reset: the server closes its side first and drains what the
// client still sends for a while, instead of closing with unread bytes
// (which makes the kernel send RST).
func TestServerRefusedUploadGetsResponse(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(net.Conn) net.Conn
	}{
		{"TCPConn", nil},
		{"listener's wrapper", func(c net.Conn) net.Conn { return listenerConn{c} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ls := startWrappedLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "no such route", http.StatusNotFound)
			}), tc.wrap)
			client := newLoopClient(t)
			body := strings.Repeat("u", 1<<20)
			for i := range 10 {
				res, err := client.Post(ls.url()+"/upload", "application/octet-stream", strings.NewReader(body))
				if err != nil {
					t.Fatalf("upload %d: %v", i, err)
				}
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusNotFound || string(b) != "no such route\n" || !res.Close {
					t.Errorf("upload %d: %d %q, Connection: close %v", i, res.StatusCode, b, res.Close)
				}
			}
		})
	}
}

// TestServerAbandonedBodyReader: a body reader that outlives its handler
// (as a timed-out upstream attempt's may) gets
// http.ErrBodyReadAfterClose and takes no bytes of the next request.
func TestServerAbandonedBodyReader(t *testing.T) {
	late := make(chan error, 1)
	release := make(chan struct{})
	nextStarted := make(chan struct{}, 1)
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/abandon":
			body := r.Body
			go func() {
				<-release
				_, err := body.Read(make([]byte, 64))
				late <- err
			}()
			_, _ = io.WriteString(w, "ok /abandon")
		case "/next":
			// The server reads the next request only after it has ended
			// the previous body: from here on, the late reader is late.
			nextStarted <- struct{}{}
			b, _ := io.ReadAll(r.Body)
			_, _ = io.WriteString(w, "ok /next "+string(b))
		}
	}))
	c := ls.dialWire(t)
	c.send("POST /abandon HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
	if r := c.read("POST"); r.body != "ok /abandon" {
		t.Fatalf("got %q", r.body)
	}
	c.send("POST /next HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
	<-nextStarted
	close(release)
	if err := <-late; !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("late Read: %v, want http.ErrBodyReadAfterClose", err)
	}
	c.send("world")
	if r := c.read("POST"); r.body != "ok /next world" {
		t.Errorf("next request: %q, want its whole body", r.body)
	}
}

// TestServerExpectContinue: "100 Continue" is sent when the handler first
// reads the body, not before; a handler that answers without reading gets
// no interim response, and the connection closes after the response, which
// says so.
func TestServerExpectContinue(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "too big", http.StatusRequestEntityTooLarge)
			return
		}
		if r.Header.Get("Expect") != "" {
			t.Errorf("handler sees Expect %q", r.Header.Get("Expect"))
		}
		entered <- struct{}{}
		<-release
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		_, _ = w.Write(append([]byte("got "), b...))
	}))

	t.Run("sent when the body is read", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		<-entered
		// The server writes before it calls the handler if it writes at
		// all, so a premature "100 Continue" is already here.
		c.expectSilence(100 * time.Millisecond)
		close(release)
		if r := c.read("POST"); r.statusLine != "HTTP/1.1 100 Continue" || r.head != "" {
			t.Fatalf("want a bare 100 Continue, got %q\n%s", r.statusLine, r.head)
		}
		c.send("hello")
		if r := c.read("POST"); r.status != 200 || r.body != "got hello" || r.lines("Connection") != 0 {
			t.Errorf("final response: %d %q\n%s", r.status, r.body, r.head)
		}
		// Kept alive: the body was read.
		c.send("POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
		if r := c.read("POST"); r.status != http.StatusRequestEntityTooLarge {
			t.Errorf("next request: %d", r.status)
		}
	})

	t.Run("not sent when the body is not read", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("POST /refuse HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		r := c.read("POST")
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("got %q, want the final 413 and no 100 Continue", r.statusLine)
		}
		if r.header.Get("Connection") != "close" {
			t.Errorf("the response does not announce that the connection closes:\n%s", r.head)
		}
		c.expectClosed()
	})
}

// TestServerResponseFraming checks, on the wire, how responses are framed
// and what headers the server adds.
func TestServerResponseFraming(t *testing.T) {
	type result struct {
		writeErr error
	}
	cases := []struct {
		name    string
		request string
		method  string
		handler func(w http.ResponseWriter, r *http.Request, res *result)
		// check inspects the response; closed: the server closes the
		// connection after it (otherwise a second request is served on it).
		check   func(t *testing.T, r *wireResp, res *result)
		closed  bool
		readErr bool
	}{
		{
			name:    "bodyless handler gets Content-Length: 0",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) { w.Header().Set("X-A", "b") },
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.status != 200 || r.lines("Content-Length") != 1 || r.header.Get("Content-Length") != "0" || r.lines("Transfer-Encoding") != 0 {
					t.Errorf("want 200 with Content-Length: 0 only:\n%s", r.head)
				}
			},
		},
		{
			name: "handler's Content-Length",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				w.Header().Set("Content-Length", "5")
				_, _ = w.Write([]byte("he"))
				w.(http.Flusher).Flush()
				_, _ = w.Write([]byte("llo"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.header.Get("Content-Length") != "5" || r.chunked || r.body != "hello" {
					t.Errorf("want Content-Length: 5 and body hello, got %q\n%s", r.body, r.head)
				}
			},
		},
		{
			name: "streamed response is chunked",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				_, _ = w.Write([]byte("one,"))
				w.(http.Flusher).Flush()
				_, _ = w.Write([]byte("two"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if !r.chunked || r.lines("Content-Length") != 0 || r.body != "one,two" || r.trailerRaw != "" {
					t.Errorf("want a chunked body one,two, got %q\n%s", r.body, r.head)
				}
			},
		},
		{
			name:    "HTTP/1.0 streamed response is close-delimited",
			request: "GET / HTTP/1.0\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				_, _ = w.Write([]byte("one,"))
				w.(http.Flusher).Flush()
				_, _ = w.Write([]byte("two"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.statusLine != "HTTP/1.0 200 OK" || r.chunked || r.lines("Content-Length") != 0 || r.header.Get("Connection") != "close" || r.body != "one,two" {
					t.Errorf("want an HTTP/1.0 close-delimited body, got %q %q\n%s", r.statusLine, r.body, r.head)
				}
			},
			closed: true,
		},
		{
			name:    "HTTP/1.0 keep-alive streamed response is close-delimited",
			request: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				_, _ = w.Write([]byte("one"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.chunked || r.header.Get("Connection") != "close" || r.body != "one" {
					t.Errorf("want a close-delimited body, got %q\n%s", r.body, r.head)
				}
			},
			closed: true,
		},
		{
			name: "trailers announced in Trailer",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				w.Header().Set("Trailer", "X-Checksum, X-Count")
				_, _ = w.Write([]byte("data"))
				w.Header().Set("X-Checksum", "abc")
				w.Header().Set("X-Count", "1")
				w.Header().Set("X-Unannounced", "no")
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if !r.chunked || r.body != "data" {
					t.Fatalf("want a chunked body, got %q\n%s", r.body, r.head)
				}
				if r.header.Get("Trailer") != "X-Checksum, X-Count" || r.lines("X-Checksum") != 0 {
					t.Errorf("head:\n%s", r.head)
				}
				if r.trailerRaw != "X-Checksum: abc\r\nX-Count: 1\r\n" {
					t.Errorf("trailers %q", r.trailerRaw)
				}
			},
		},
		{
			name: "trailers with TrailerPrefix",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				_, _ = w.Write([]byte("data"))
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if !r.chunked || r.body != "data" || r.trailerRaw != "Grpc-Status: 0\r\n" {
					t.Errorf("got body %q trailers %q\n%s", r.body, r.trailerRaw, r.head)
				}
			},
		},
		{
			name: "trailers of an empty body",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if !r.chunked || r.body != "" || r.trailerRaw != "Grpc-Status: 0\r\n" {
					t.Errorf("got body %q trailers %q\n%s", r.body, r.trailerRaw, r.head)
				}
			},
		},
		{
			name:    "HEAD keeps Content-Length and sends no body",
			request: "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
			method:  http.MethodHead,
			handler: func(w http.ResponseWriter, r *http.Request, res *result) {
				w.Header().Set("Content-Length", "11")
				_, res.writeErr = w.Write([]byte("hello world"))
			},
			check: func(t *testing.T, r *wireResp, res *result) {
				if r.header.Get("Content-Length") != "11" || r.lines("Transfer-Encoding") != 0 || res.writeErr != nil {
					t.Errorf("write error %v\n%s", res.writeErr, r.head)
				}
			},
		},
		{
			name: "204 has no body and no Content-Length",
			handler: func(w http.ResponseWriter, r *http.Request, res *result) {
				w.Header().Set("Content-Length", "3")
				w.WriteHeader(http.StatusNoContent)
				_, res.writeErr = w.Write([]byte("abc"))
			},
			check: func(t *testing.T, r *wireResp, res *result) {
				if r.status != 204 || r.lines("Content-Length") != 0 || r.lines("Transfer-Encoding") != 0 {
					t.Errorf("head:\n%s", r.head)
				}
				if !errors.Is(res.writeErr, http.ErrBodyNotAllowed) {
					t.Errorf("Write on a 204: %v, want http.ErrBodyNotAllowed", res.writeErr)
				}
			},
		},
		{
			name: "304 has no body",
			handler: func(w http.ResponseWriter, r *http.Request, res *result) {
				w.Header().Set("Etag", `"x"`)
				w.WriteHeader(http.StatusNotModified)
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.status != 304 || r.lines("Transfer-Encoding") != 0 || r.header.Get("Etag") != `"x"` {
					t.Errorf("head:\n%s", r.head)
				}
			},
		},
		{
			name: "writing more than Content-Length",
			handler: func(w http.ResponseWriter, r *http.Request, res *result) {
				w.Header().Set("Content-Length", "3")
				_, res.writeErr = w.Write([]byte("hello"))
				_, _ = w.Write([]byte("abc"))
			},
			check: func(t *testing.T, r *wireResp, res *result) {
				if !errors.Is(res.writeErr, http.ErrContentLength) {
					t.Errorf("Write past Content-Length: %v, want http.ErrContentLength", res.writeErr)
				}
				if r.body != "abc" {
					t.Errorf("body %q", r.body)
				}
			},
		},
		{
			name: "writing less than Content-Length closes the connection",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				w.Header().Set("Content-Length", "10")
				_, _ = w.Write([]byte("hello"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.body != "hello" {
					t.Errorf("body %q", r.body)
				}
			},
			readErr: true,
		},
		{
			name:    "Date header",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {},
			check: func(t *testing.T, r *wireResp, _ *result) {
				d, err := http.ParseTime(r.header.Get("Date"))
				if err != nil || r.lines("Date") != 1 {
					t.Fatalf("Date %q: %v", r.header.Get("Date"), err)
				}
				if diff := time.Since(d); diff < -time.Hour || diff > time.Hour {
					t.Errorf("Date %v is far from now", d)
				}
			},
		},
		{
			name: "CR and LF in a header value do not split the response",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				w.Header().Set("X-Evil", "a\r\nX-Injected: yes")
				w.Header()["X-Evil-Lf"] = []string{"b\nX-Injected: yes"}
				w.Header()["Bad\r\nName"] = []string{"v"}
				_, _ = w.Write([]byte("body"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.lines("X-Injected") != 0 || r.lines("X-Evil") != 1 || r.lines("X-Evil-Lf") != 1 || strings.Contains(r.head, "Bad") {
					t.Errorf("head:\n%s", r.head)
				}
				if r.body != "body" {
					t.Errorf("body %q", r.body)
				}
			},
		},
		{
			name: "handler's Connection: close",
			handler: func(w http.ResponseWriter, r *http.Request, _ *result) {
				w.Header().Set("Connection", "close")
				_, _ = w.Write([]byte("bye"))
			},
			check: func(t *testing.T, r *wireResp, _ *result) {
				if r.lines("Connection") != 1 || r.header.Get("Connection") != "close" || r.body != "bye" {
					t.Errorf("got %q\n%s", r.body, r.head)
				}
			},
			closed: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			results := make(chan *result, 2)
			ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/next" {
					_, _ = io.WriteString(w, "next")
					return
				}
				res := new(result)
				tc.handler(w, r, res)
				results <- res
			}))
			req, method := tc.request, tc.method
			if req == "" {
				req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
			}
			if method == "" {
				method = http.MethodGet
			}
			c := ls.dialWire(t)
			c.send(req)
			r, err := readWireResp(c.br, method)
			if tc.readErr {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("want the body cut short by the server closing, got %v", err)
				}
			} else if err != nil {
				t.Fatalf("reading the response: %v", err)
			}
			res := recvWithin(t, results, 5*time.Second, "handler did not finish")
			tc.check(t, r, res)
			switch {
			case tc.readErr:
			case tc.closed:
				c.expectClosed()
			default:
				c.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
				if r := c.read("GET"); r.body != "next" {
					t.Errorf("next response on the connection: %q", r.body)
				}
			}
		})
	}
}

// TestServerResponseTrailersNetHTTP reads chunked trailers with net/http's
// client, as a real peer.
func TestServerResponseTrailersNetHTTP(t *testing.T) {
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		_, _ = w.Write([]byte("data"))
		w.Header().Set("X-Checksum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	res, err := newLoopClient(t).Get(ls.url())
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || string(b) != "data" {
		t.Fatalf("body %q: %v", b, err)
	}
	if res.Trailer.Get("X-Checksum") != "abc" || res.Trailer.Get("X-Late") != "late" {
		t.Errorf("trailers %v", res.Trailer)
	}
}

// TestServerEarlyHints: a 103 with its Link header goes out before the
// final response, to HTTP/1.1 clients only, and does not stop the server
// from sending "100 Continue" afterwards.
func TestServerEarlyHints(t *testing.T) {
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload; as=style")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		_, _ = w.Write(append([]byte("final "), b...))
	}))

	t.Run("raw", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		r := c.read("GET")
		if r.statusLine != "HTTP/1.1 103 Early Hints" || r.header.Get("Link") != "</style.css>; rel=preload; as=style" {
			t.Fatalf("first response %q\n%s", r.statusLine, r.head)
		}
		r = c.read("GET")
		if r.status != 200 || r.body != "final " || r.lines("Link") != 0 {
			t.Errorf("final response %q %q\n%s", r.statusLine, r.body, r.head)
		}
	})

	t.Run("then 100 Continue", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
		if r := c.read("POST"); r.status != http.StatusEarlyHints {
			t.Fatalf("first response %q", r.statusLine)
		}
		// The client waits for 100 Continue before it sends the body.
		if r := c.read("POST"); r.status != http.StatusContinue {
			t.Fatalf("second response %q, want 100 Continue", r.statusLine)
		}
		c.send("ok")
		if r := c.read("POST"); r.status != 200 || r.body != "final ok" {
			t.Errorf("final response %q %q", r.statusLine, r.body)
		}
	})

	t.Run("not to HTTP/1.0", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET / HTTP/1.0\r\n\r\n")
		if r := c.read("GET"); r.statusLine != "HTTP/1.0 200 OK" || r.body != "final " {
			t.Errorf("got %q %q, want the final response only", r.statusLine, r.body)
		}
	})

	t.Run("net/http client", func(t *testing.T) {
		var links []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			if code == http.StatusEarlyHints {
				links = append(links, h.Get("Link"))
			}
			return nil
		}}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, ls.url(), nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := newLoopClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "final " {
			t.Errorf("final response %d %q", res.StatusCode, b)
		}
		if len(links) != 1 || links[0] != "</style.css>; rel=preload; as=style" {
			t.Errorf("103 Link headers seen: %q", links)
		}
	})
}

// TestServerConnectionPersistence: HTTP/1.0 keeps a connection only when
// asked to, and an HTTP/1.1 "Connection: close" closes it.
func TestServerConnectionPersistence(t *testing.T) {
	// A body of unknown length ends an HTTP/1.0 response by closing the
	// connection (see TestServerResponseFraming), so this one declares it.
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		msg := r.Method + " " + r.URL.Path + " " + string(b)
		w.Header().Set("Content-Length", strconv.Itoa(len(msg)))
		_, _ = io.WriteString(w, msg)
	}))
	cases := []struct {
		name, request  string
		wantConnection string
		kept           bool
	}{
		{"HTTP/1.0", "GET /a HTTP/1.0\r\n\r\n", "close", false},
		{"HTTP/1.0 keep-alive", "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "keep-alive", true},
		{"HTTP/1.0 keep-alive POST", "POST /a HTTP/1.0\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\nhi", "keep-alive", true},
		{"HTTP/1.1", "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", "", true},
		{"HTTP/1.1 Connection: close", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", "close", false},
		{"HTTP/1.1 Connection: close among tokens", "GET /a HTTP/1.1\r\nHost: x\r\nConnection: te, Close\r\n\r\n", "close", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ls.dialWire(t)
			c.send(tc.request)
			r := c.read("GET")
			if r.status != 200 || !strings.HasPrefix(r.body, tc.request[:strings.IndexByte(tc.request, ' ')]+" /a") {
				t.Fatalf("got %d %q", r.status, r.body)
			}
			if r.header.Get("Connection") != tc.wantConnection || r.lines("Connection") > 1 {
				t.Errorf("Connection header %q, want %q\n%s", r.header.Get("Connection"), tc.wantConnection, r.head)
			}
			if !tc.kept {
				c.expectClosed()
				return
			}
			c.send(tc.request)
			if r := c.read("GET"); r.status != 200 {
				t.Errorf("second request: %d", r.status)
			}
		})
	}
}

// TestServerRejects: requests refused before the handler get the
// documented status, a body naming the reason, and a closed connection;
// the Rejected callback is told.
func TestServerRejects(t *testing.T) {
	cases := []struct {
		name    string
		request string
		status  int
		reason  string
	}{
		{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", 400, "both Transfer-Encoding and Content-Length"},
		{"TE gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "unsupported Transfer-Encoding"},
		{"TE gzip, chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "unsupported Transfer-Encoding"},
		{"bad CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 12a\r\n\r\n", 400, "invalid Content-Length"},
		{"negative CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "invalid Content-Length"},
		{"two CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, "conflicting Content-Length"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n", 400, "obsolete line folding"},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400, "missing required Host"},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "more than one Host"},
		{"head too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 2048) + "\r\n\r\n", 431, "exceed"},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0"},
		{"Expect other", "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\na", 417, "unsupported Expect"},
		{"invalid header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400, "invalid header name"},
		{"too many empty lines", "\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "empty lines"},
		{"malformed request line", "GET /\r\nHost: x\r\n\r\n", 400, "malformed request line"},
	}
	var served atomic.Int64
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }),
		func(s *Server) { s.MaxHeaderBytes = 1024 })
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ls.dialWire(t)
			c.send(tc.request)
			r := c.read("GET")
			if r.status != tc.status || !strings.Contains(r.body, tc.reason) {
				t.Errorf("got %q %q, want %d naming %q", r.statusLine, r.body, tc.status, tc.reason)
			}
			if r.header.Get("Connection") != "close" {
				t.Errorf("no Connection: close\n%s", r.head)
			}
			c.expectClosed()
			ls.wantRejection(t, tc.status)
		})
	}
	if n := served.Load(); n != 0 {
		t.Errorf("the handler served %d refused requests", n)
	}
	// Leading empty lines within the limit are skipped.
	c := ls.dialWire(t)
	c.send("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.status != 200 {
		t.Errorf("request after two empty lines: %q", r.statusLine)
	}
}

// TestServerReadHeaderTimeout: a client that stalls inside a request head
// is disconnected, whether in its first request (where the timeout runs
// from the connection's start, even with no byte sent) or a later one.
func TestServerReadHeaderTimeout(t *testing.T) {
	ls := startLoopServer(t, echoHandler(), func(s *Server) {
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.IdleTimeout = time.Hour
	})
	t.Run("half a request line", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET /slow HT")
		c.expectClosed()
		ls.wantRejection(t, 0)
	})
	t.Run("nothing sent", func(t *testing.T) {
		c := ls.dialWire(t)
		c.expectClosed()
		select {
		case <-ls.idleClosed:
			t.Error("IdleClosed called for a connection that never sent a request")
		default:
		}
	})
	t.Run("second request", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
		if r := c.read("GET"); r.body != "GET /first " {
			t.Fatalf("first response %q", r.body)
		}
		c.send("GET /second HTTP/1.1\r\nHos")
		c.expectClosed()
		ls.wantRejection(t, 0)
	})
}

// TestServerIdleTimeout: a kept-alive connection with no next request is
// closed, and IdleClosed is told.
func TestServerIdleTimeout(t *testing.T) {
	ls := startLoopServer(t, echoHandler(), func(s *Server) { s.IdleTimeout = 200 * time.Millisecond })
	c := ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.status != 200 {
		t.Fatalf("got %q", r.statusLine)
	}
	c.expectClosed()
	select {
	case <-ls.idleClosed:
	case <-time.After(5 * time.Second):
		t.Error("IdleClosed not called")
	}
}

// TestServerPeerClose: a handler waiting on its request's context is
// released when the client closes the connection, with or without a body
// read first; a body not yet read is not mistaken for the client going.
func TestServerPeerClose(t *testing.T) {
	type outcome struct {
		cancelled bool
		body      string
		err       error
	}
	entered := make(chan struct{}, 1)
	outcomes := make(chan outcome, 1)
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var o outcome
		switch r.URL.Path {
		case "/slow-get":
			entered <- struct{}{}
			time.Sleep(100 * time.Millisecond) // the watcher's delay is 20 ms
			o.cancelled = r.Context().Err() != nil
			_, _ = io.WriteString(w, "slow")
		case "/late-read":
			entered <- struct{}{}
			time.Sleep(100 * time.Millisecond) // the watcher's delay is 20 ms
			b, err := io.ReadAll(r.Body)
			o.body, o.err = string(b), err
			o.cancelled = r.Context().Err() != nil
			_, _ = w.Write(b)
		default:
			b, err := io.ReadAll(r.Body)
			o.body, o.err = string(b), err
			entered <- struct{}{}
			select {
			case <-r.Context().Done():
				o.cancelled = true
			case <-time.After(10 * time.Second):
			}
		}
		outcomes <- o
	}))
	cases := []struct{ name, request, body string }{
		{"no body", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", ""},
		{"content-length body read", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "hello"},
		{"chunked body read", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "hello"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ls.dialWire(t)
			c.send(tc.request)
			<-entered
			_ = c.nc.Close()
			if o := recvWithin(t, outcomes, 15*time.Second, "handler never returned"); !o.cancelled || o.body != tc.body || o.err != nil {
				t.Errorf("cancelled=%v body=%q err=%v, want the context cancelled after body %q", o.cancelled, o.body, o.err, tc.body)
			}
		})
	}
	t.Run("pipelined request is not a close", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("GET /slow-get HTTP/1.1\r\nHost: x\r\n\r\n")
		<-entered
		// The next request reaches the socket while the first is served.
		c.send("GET /slow-get HTTP/1.1\r\nHost: x\r\n\r\n")
		if o := <-outcomes; o.cancelled {
			t.Error("first request's context cancelled by the pipelined request")
		}
		if r := c.read("GET"); r.body != "slow" {
			t.Errorf("first response %q", r.body)
		}
		<-entered
		if o := <-outcomes; o.cancelled {
			t.Error("second request's context cancelled")
		}
		if r := c.read("GET"); r.body != "slow" {
			t.Errorf("second response %q", r.body)
		}
	})
	t.Run("unread body is not stolen", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("POST /late-read HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n")
		<-entered
		// The body reaches the socket only after the head was parsed, so
		// it is not already in the server's read buffer.
		c.send("hello world")
		o := <-outcomes
		if o.cancelled || o.body != "hello world" || o.err != nil {
			t.Errorf("cancelled=%v body=%q err=%v", o.cancelled, o.body, o.err)
		}
		if r := c.read("POST"); r.body != "hello world" {
			t.Errorf("response %q", r.body)
		}
	})
}

// TestServerPeerCloseAfterIdle: on a kept-alive connection, the wait for
// the next request runs under IdleTimeout; that deadline must not end the
// watch for the client closing while the request is served.
func TestServerPeerCloseAfterIdle(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan bool, 1)
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/wait" {
			return
		}
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(10 * time.Second):
			cancelled <- false
		}
	}), func(s *Server) {
		// Long enough that the second request always arrives before it
		// on a loaded machine, short enough to pass during that request.
		s.IdleTimeout = time.Second
		s.ReadHeaderTimeout = 5 * time.Second
	})
	c := ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	c.read("GET")
	c.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	recvWithin(t, entered, 10*time.Second, "the second request never reached the handler")
	// The scenario itself: the client goes away only once the idle
	// deadline set before this request has passed.
	time.Sleep(1300 * time.Millisecond)
	_ = c.nc.Close()
	if !recvWithin(t, cancelled, 15*time.Second, "handler did not return") {
		t.Error("the request's context was not cancelled when the client closed")
	}
}

// TestServerHijack: a hijacking handler owns the connection, bytes the
// client sent along with the request included, and Shutdown does not wait
// for it.
func TestServerHijack(t *testing.T) {
	handlerDone := make(chan error, 1)
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			handlerDone <- err
			return
		}
		defer nc.Close()
		if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrHijacked) {
			t.Errorf("Write after Hijack: %v", err)
		}
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		if err := brw.Flush(); err != nil {
			handlerDone <- err
			return
		}
		for {
			line, err := brw.ReadString('\n')
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				handlerDone <- err
				return
			}
			_, _ = brw.WriteString("pong " + line)
			if err := brw.Flush(); err != nil {
				handlerDone <- err
				return
			}
		}
	}))
	c := ls.dialWire(t)
	c.send("GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping\n")
	r := c.read("GET")
	if r.status != 101 || r.header.Get("Upgrade") != "echo" {
		t.Fatalf("got %q\n%s", r.statusLine, r.head)
	}
	line, err := c.br.ReadString('\n')
	if err != nil || line != "pong ping\n" {
		t.Fatalf("got %q, %v", line, err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ls.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with only a hijacked connection: %v", err)
	}
	c.send("again\n")
	if line, err := c.br.ReadString('\n'); err != nil || line != "pong again\n" {
		t.Fatalf("after Shutdown: got %q, %v", line, err)
	}
	_ = c.nc.Close()
	if err := recvWithin(t, handlerDone, 10*time.Second, "handler did not return"); err != nil {
		t.Error(err)
	}
}

// TestServerShutdown: Shutdown closes idle connections at once and stops
// taking new ones, lets an active request finish (its response says the
// connection closes), and returns nil; with an expired context it returns
// the context's error while the request still runs.
func TestServerShutdown(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done "+r.URL.Path)
	}))
	idle := ls.dialWire(t)
	idle.send("GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := idle.read("GET"); r.body != "done /idle" {
		t.Fatalf("got %q", r.body)
	}
	active := ls.dialWire(t)
	active.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered

	expired, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ls.srv.Shutdown(expired); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown with a cancelled context while a request runs: %v", err)
	}
	idle.expectClosed()
	late := ls.dialWire(t)
	late.expectClosed()

	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errc <- ls.srv.Shutdown(ctx)
	}()
	close(release)
	r := active.read("GET")
	if r.body != "done /slow" || r.header.Get("Connection") != "close" {
		t.Errorf("active request's response %q\n%s", r.body, r.head)
	}
	active.expectClosed()
	if err := recvWithin(t, errc, 15*time.Second, "Shutdown did not return"); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestServerSetKeepAlivesEnabled: turning keep-alive off closes the
// running request's connection after a response that says so, and new
// connections too; turning it on restores keep-alive.
func TestServerSetKeepAlivesEnabled(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "ok")
	}))
	idle := ls.dialWire(t)
	idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.read("GET")
	c := ls.dialWire(t)
	c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-entered
	ls.srv.SetKeepAlivesEnabled(false)
	idle.expectClosed()
	close(release)
	if r := c.read("GET"); r.body != "ok" || r.header.Get("Connection") != "close" {
		t.Errorf("got %q\n%s", r.body, r.head)
	}
	c.expectClosed()

	c = ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.header.Get("Connection") != "close" {
		t.Errorf("new connection with keep-alive off:\n%s", r.head)
	}
	c.expectClosed()

	ls.srv.SetKeepAlivesEnabled(true)
	c = ls.dialWire(t)
	for range 2 {
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if r := c.read("GET"); r.lines("Connection") != 0 {
			t.Errorf("keep-alive back on:\n%s", r.head)
		}
	}
}

// TestServerPanics: a panicking handler costs its connection only, and a
// handler that aborts a started chunked response leaves the client with an
// incomplete body rather than a complete one.
func TestServerPanics(t *testing.T) {
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			_, _ = w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	}))

	c := ls.dialWire(t)
	c.send("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n")
	if r, err := readWireResp(c.br, "GET"); !errors.Is(err, io.EOF) {
		t.Errorf("after a panic: %+v, %v; want the connection closed with no response", r, err)
	}
	if !strings.Contains(ls.log.String(), "boom") {
		t.Errorf("panic not logged; log:\n%s", ls.log.String())
	}

	c = ls.dialWire(t)
	c.send("GET /abort HTTP/1.1\r\nHost: x\r\n\r\n")
	r, err := readWireResp(c.br, "GET")
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) || !r.chunked || r.body != "partial" {
		t.Errorf("aborted response: chunked=%v body=%q err=%v, want a cut chunked body", r.chunked, r.body, err)
	}
	if strings.Contains(ls.log.String(), "ErrAbortHandler") || strings.Count(ls.log.String(), "panic serving") != 1 {
		t.Errorf("http.ErrAbortHandler logged as a panic; log:\n%s", ls.log.String())
	}

	client := newLoopClient(t)
	res, err := client.Get(ls.url() + "/abort")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err == nil {
		t.Errorf("net/http client read a complete body %q from an aborted response", b)
	}

	c = ls.dialWire(t)
	c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if r := c.read("GET"); r.body != "ok" {
		t.Errorf("after the panics: %q", r.body)
	}
}

// TestServerFullDuplex: the handler reads a chunked request body in another
// goroutine while it writes and flushes the response, as the router does;
// each line is echoed before the client sends the next one.
func TestServerFullDuplex(t *testing.T) {
	ls := startLoopServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			t.Errorf("EnableFullDuplex: %v", err)
		}
		lines := make(chan string)
		readErr := make(chan error, 1)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(r.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
			readErr <- sc.Err()
		}()
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for line := range lines {
			_, _ = io.WriteString(w, "echo "+line+"\n")
			w.(http.Flusher).Flush()
		}
		if err := <-readErr; err != nil {
			t.Errorf("reading the body: %v", err)
		}
		_, _ = io.WriteString(w, "trailer="+r.Trailer.Get("X-End")+"\n")
	}))

	t.Run("raw", func(t *testing.T) {
		c := ls.dialWire(t)
		c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-End\r\n\r\n")
		line, err := readCRLFLine(c.br)
		if err != nil || line != "HTTP/1.1 200 OK" {
			t.Fatalf("status line %q: %v", line, err)
		}
		h := make(http.Header)
		if _, err := readFields(c.br, h); err != nil || h.Get("Transfer-Encoding") != "chunked" {
			t.Fatalf("head %v: %v", h, err)
		}
		for i := range 5 {
			msg := fmt.Sprintf("line %d\n", i)
			c.send(fmt.Sprintf("%x\r\n%s\r\n", len(msg), msg))
			want := "echo " + msg
			chunk := fmt.Sprintf("%x\r\n%s\r\n", len(want), want)
			got := make([]byte, len(chunk))
			if _, err := io.ReadFull(c.br, got); err != nil || string(got) != chunk {
				t.Fatalf("echo of %q: got %q, %v", msg, got, err)
			}
		}
		c.send("0\r\nX-End: yes\r\n\r\n")
		last := "trailer=yes\n"
		want := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(last), last)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(c.br, got); err != nil || string(got) != want {
			t.Fatalf("end of the response: got %q, %v", got, err)
		}
	})

	t.Run("net/http client", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		req, err := http.NewRequest(http.MethodPost, ls.url(), pr)
		if err != nil {
			t.Fatal(err)
		}
		res, err := newLoopClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		br := bufio.NewReader(res.Body)
		for i := range 5 {
			msg := fmt.Sprintf("message %d\n", i)
			if _, err := io.WriteString(pw, msg); err != nil {
				t.Fatal(err)
			}
			if got, err := br.ReadString('\n'); err != nil || got != "echo "+msg {
				t.Fatalf("got %q, %v", got, err)
			}
		}
		_ = pw.Close()
		rest, err := io.ReadAll(br)
		if err != nil || string(rest) != "trailer=\n" {
			t.Errorf("rest %q, %v", rest, err)
		}
	})
}
