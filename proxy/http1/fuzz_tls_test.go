package http1

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// FuzzServeConnTLS proves that the TLS listener's HTTP/1 path is the
// plaintext path: the same byte stream, served by Server.ServeConn once
// over a plain in-memory connection and once over a *tls.Conn on the same
// kind of connection, must reach the handler as the same requests (method,
// target, headers, body bytes, body error, trailers) and produce the same
// response bytes. It also checks that the handler sees exactly the
// requests the codec's own parser finds when it reads the stream request
// by request and stops at the first error or the last request of the
// connection: no hidden request comes out of a stream whose framing is
// broken or ambiguous, on either path.
//
// One timing-dependent difference is allowed, because it is on purpose: on
// TLS, a request that runs longer than peerCloseWatchDelay starts the
// peer-close watcher, which reads through the TLS layer and, if the client
// has already ended its side (here it always has), cancels the request
// and ends the connection after its response. The plaintext run has no
// watcher (the in-memory connection has no socket to peek at). When that
// happens the TLS run must be a prefix of the plaintext one, ending with
// the request whose context was cancelled.
func FuzzServeConnTLS(f *testing.F) {
	for _, s := range parseHeadSeeds {
		f.Add([]byte(s))
	}
	// The other targets' corpora: whole requests as they are, chunked
	// bodies behind a chunked request head and before a hidden request.
	for _, b := range readCorpus(f, "FuzzParseHead") {
		f.Add(b)
	}
	for _, b := range readCorpus(f, "FuzzChunkedBody") {
		f.Add([]byte("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + string(b) + "GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"))
	}
	cert := fuzzCertificate(f)
	serverConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13, CurvePreferences: []tls.CurveID{tls.X25519}}
	// Resumed sessions skip the certificate's signature and its check:
	// most handshakes after the first cost one key exchange.
	clientConf := &tls.Config{
		InsecureSkipVerify: true, //nolint:gosec // a certificate made by the test, in memory
		MinVersion:         tls.VersionTLS13,
		CurvePreferences:   []tls.CurveID{tls.X25519},
		ClientSessionCache: tls.NewLRUClientSessionCache(1),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		plain := serveRecorded(t, data, nil, nil)
		overTLS := serveRecorded(t, data, serverConf, clientConf)
		for i, r := range overTLS.reqs {
			if !r.tls {
				t.Fatalf("request %d over TLS has no TLS state", i)
			}
		}
		tlsReqs, tlsOut, plainOut := overTLS.reqs, overTLS.out, plain.out
		if n := len(tlsReqs); n > 0 && tlsReqs[n-1].cancelled && n <= len(plain.reqs) {
			// The peer-close watcher ended the TLS connection early (see
			// above): compare what both runs did up to there.
			plain.reqs = plain.reqs[:n]
			if !bytes.HasPrefix(plainOut, tlsOut) {
				t.Fatalf("TLS ended early, and its responses are not a prefix of the plaintext ones:\ntls   %q\nplain %q\ninput %q", tlsOut, plainOut, data)
			}
			plainOut = tlsOut
		}
		if got, want := formatRecords(tlsReqs), formatRecords(plain.reqs); got != want {
			t.Fatalf("the handler saw different requests over TLS:\ntls   %s\nplain %s\ninput %q", got, want, data)
		}
		if !bytes.Equal(tlsOut, plainOut) {
			t.Fatalf("different response bytes over TLS:\ntls   %q\nplain %q\ninput %q", tlsOut, plainOut, data)
		}

		// The handler saw exactly the requests the parser finds, in
		// order, up to the stream's first error or its last request: no
		// more (a hidden request), no fewer (a request lost).
		parsed := parseStream(data)
		if len(plain.reqs) != len(parsed) {
			t.Fatalf("the handler saw %d requests, the parser finds %d:\nhandler %s\nparser  %s\ninput %q",
				len(plain.reqs), len(parsed), formatRecords(plain.reqs), formatRecords(parsed), data)
		}
		for i, r := range plain.reqs {
			r.cancelled, r.tls = false, false
			if got, want := r.String(), parsed[i].String(); got != want {
				t.Fatalf("request %d: the handler saw %s, the parser reads %s\ninput %q", i, got, want, data)
			}
		}
	})
}

// servedRequest is what the handler saw of one request.
type servedRequest struct {
	method, target, host, proto string
	header, trailer             http.Header
	contentLength               int64
	transferEncoding            []string
	close                       bool
	body                        []byte
	bodyErr                     string
	// tls and cancelled are not part of String: tls differs between the
	// runs by design, cancelled is the watcher's doing (see the target).
	tls, cancelled bool
}

func (r servedRequest) String() string {
	return fmt.Sprintf("{%s %q host=%q %s header=%v cl=%d te=%q close=%t body=%q err=%q trailer=%v}",
		r.method, r.target, r.host, r.proto, r.header, r.contentLength, r.transferEncoding, r.close, r.body, r.bodyErr, r.trailer)
}

func formatRecords(rs []servedRequest) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// fixedDate keeps the response bytes independent of the clock.
const fixedDate = "Thu, 01 Jan 2026 00:00:00 GMT"

type recordedRun struct {
	reqs []servedRequest
	out  []byte
}

// serveRecorded serves data with ServeConn over an in-memory connection,
// wrapped in TLS when serverConf is not nil, with a handler that records
// every request, reads its whole body and answers "ok". The client sends
// data in one write and then ends its side; it reads until the server
// closes.
func serveRecorded(t *testing.T, data []byte, serverConf, clientConf *tls.Config) recordedRun {
	t.Helper()
	var mu sync.Mutex
	var run recordedRun
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		rec := servedRequest{
			method: r.Method, target: r.RequestURI, host: r.Host, proto: r.Proto,
			header: r.Header.Clone(), trailer: r.Trailer.Clone(),
			contentLength: r.ContentLength, transferEncoding: r.TransferEncoding, close: r.Close,
			body: body, tls: r.TLS != nil,
		}
		if err != nil {
			rec.bodyErr = err.Error()
		}
		w.Header().Set("Date", fixedDate)
		w.Header().Set("Content-Length", "2")
		_, _ = io.WriteString(w, "ok")
		rec.cancelled = r.Context().Err() != nil
		mu.Lock()
		run.reqs = append(run.reqs, rec)
		mu.Unlock()
	})}
	cc, sc := memPipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if serverConf != nil {
			srv.ServeConn(tls.Server(sc, serverConf), nil)
		} else {
			srv.ServeConn(sc, nil)
		}
	}()
	var out []byte
	var err error
	if clientConf == nil {
		_, _ = cc.Write(data)
		_ = cc.CloseWrite()
		out, err = io.ReadAll(cc)
	} else {
		tc := tls.Client(cc, clientConf)
		if err = tc.Handshake(); err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		_, _ = tc.Write(data)
		_ = tc.CloseWrite()
		out, err = io.ReadAll(tc)
	}
	if err != nil {
		t.Fatalf("reading the responses: %v", err)
	}
	_ = cc.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("ServeConn did not return within 10s of the client's end\ninput %q", data)
	}
	mu.Lock()
	defer mu.Unlock()
	run.out = out
	return run
}

// parseStream reads data as the codec's parser does, request after
// request, each with its whole body, and stops after the first head that
// does not parse, the first body that fails, or a request that ends the
// connection: what is left is not a request the server may serve.
func parseStream(data []byte) []servedRequest {
	br := bufio.NewReader(bytes.NewReader(data))
	var out []servedRequest
	for {
		if _, err := br.Peek(1); err != nil {
			return out
		}
		req, p, err := parseFromReader(br, defaultMaxHeaderBytes)
		if err != nil {
			return out
		}
		rec := servedRequest{
			method: req.Method, target: req.RequestURI, host: req.Host, proto: req.Proto,
			header: req.Header, contentLength: req.ContentLength, transferEncoding: req.TransferEncoding, close: req.Close,
			body: []byte{},
		}
		var berr error
		if p.chunked || req.ContentLength > 0 {
			rb := &requestBody{c: &conn{srv: &Server{}}, br: br, remaining: req.ContentLength, req: req}
			if p.chunked {
				rb.cr = newChunkedReader(br)
			}
			rec.body, berr = io.ReadAll(rb)
		}
		rec.trailer = req.Trailer.Clone()
		if berr != nil {
			rec.bodyErr = berr.Error()
		}
		out = append(out, rec)
		if berr != nil || req.Close {
			return out
		}
	}
}

// readCorpus returns the inputs of another target's seed corpus (files of
// one []byte value).
func readCorpus(f *testing.F, target string) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		_, line, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		q, ok := strings.CutPrefix(line, "[]byte(")
		q, ok2 := strings.CutSuffix(q, ")")
		s, err := strconv.Unquote(q)
		if !ok || !ok2 || err != nil {
			f.Fatalf("%s: not a corpus file of one []byte: %q", name, line)
		}
		out = append(out, []byte(s))
	}
	return out
}

// fuzzCertificate is the e2e suites' self-signed ECDSA P-256 certificate,
// made once per fuzz process: cheaper to sign with than httptest's RSA one.
func fuzzCertificate(f *testing.F) tls.Certificate {
	f.Helper()
	c := e2etest.SelfSignedCert(f, f.TempDir())
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		f.Fatal(err)
	}
	return cert
}

// memPipe is an in-memory, full-duplex connection with half-close (unlike
// net.Pipe, a side can end its writes and still read) and read deadlines
// (the server wakes its peer-close watcher with one). Writes never block.
func memPipe() (client, server *memConn) {
	a, b := newMemQueue(), newMemQueue()
	return &memConn{in: b, out: a, name: "client"}, &memConn{in: a, out: b, name: "server"}
}

// memQueue is one direction of a memPipe.
type memQueue struct {
	mu       sync.Mutex
	cond     *sync.Cond
	buf      []byte
	closed   bool
	deadline time.Time
	timer    *time.Timer
}

func newMemQueue() *memQueue {
	q := &memQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *memQueue) read(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case len(q.buf) > 0:
			n := copy(p, q.buf)
			q.buf = q.buf[n:]
			return n, nil
		case q.closed:
			return 0, io.EOF
		case !q.deadline.IsZero() && !time.Now().Before(q.deadline):
			return 0, os.ErrDeadlineExceeded
		}
		q.cond.Wait()
	}
}

func (q *memQueue) write(p []byte) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return 0, net.ErrClosed
	}
	q.buf = append(q.buf, p...)
	q.cond.Broadcast()
	return len(p), nil
}

func (q *memQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.cond.Broadcast()
	q.mu.Unlock()
}

func (q *memQueue) setDeadline(d time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deadline = d
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
	if wait := time.Until(d); !d.IsZero() && wait > 0 {
		q.timer = time.AfterFunc(wait, func() {
			q.mu.Lock()
			q.cond.Broadcast()
			q.mu.Unlock()
		})
	}
	q.cond.Broadcast()
}

// memConn is one end of a memPipe.
type memConn struct {
	in, out *memQueue
	name    string
}

func (c *memConn) Read(p []byte) (int, error)  { return c.in.read(p) }
func (c *memConn) Write(p []byte) (int, error) { return c.out.write(p) }

// CloseWrite ends this side's writes: the peer reads io.EOF after the
// bytes already written.
func (c *memConn) CloseWrite() error { c.out.close(); return nil }

func (c *memConn) Close() error {
	c.out.close()
	c.in.close()
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return memAddr(c.name) }
func (c *memConn) RemoteAddr() net.Addr { return memAddr(c.name + "-peer") }

func (c *memConn) SetDeadline(d time.Time) error { c.in.setDeadline(d); return nil }

func (c *memConn) SetReadDeadline(d time.Time) error { c.in.setDeadline(d); return nil }

// SetWriteDeadline does nothing: writes never block.
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }
