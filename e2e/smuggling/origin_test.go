package smuggling

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hopwatch/hopwatch/e2e/e2etest"
)

// origin is a raw-socket HTTP/1.1 server behind the proxy under test. It
// parses what arrives itself, strictly, and records every request with
// the exact bytes of its head and everything wrong with its framing, so a
// test sees what a lenient backend would have been handed: a second
// request hidden in a body, both Content-Length and Transfer-Encoding, a
// chunked body that does not decode, bytes tunnelled after a 101.
//
// It answers each request it can parse with a 200 whose Content-Length
// body names the request ("origin GET /path\n"), so a client can tell its
// own answer from someone else's; with upgrade set it answers a request
// that carries Upgrade with 101 and records whatever follows as tunnelled.
type origin struct {
	address string
	upgrade bool

	mu        sync.Mutex
	reqs      []originReq
	anomalies []anomaly
	conns     int
}

// originReq is one request the origin parsed.
type originReq struct {
	conn     int
	probe    string // the p query parameter or X-Probe header
	method   string
	target   string
	head     []byte
	headers  [][2]string
	body     []byte
	problems []string // framing or syntax the origin should never see
}

// header returns the values of the header named name (case-insensitive).
func (r originReq) header(name string) []string {
	var out []string
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			out = append(out, h[1])
		}
	}
	return out
}

// anomaly is something wrong on an origin connection outside a request's
// head: unparseable bytes, tunnelled bytes, a bad chunked body. It belongs
// to the probe of the last request on that connection ("" if none).
type anomaly struct {
	probe, what string
}

func startOrigin(t testing.TB, upgrade bool) *origin {
	t.Helper()
	o := &origin{upgrade: upgrade}
	o.address = e2etest.Serve(t, func(c net.Conn) {
		o.mu.Lock()
		o.conns++
		id := o.conns
		o.mu.Unlock()
		o.serve(c, id)
	})
	return o
}

func (o *origin) addr() string { return o.address }

// forProbe returns the requests and anomalies that carry probe's ID.
func (o *origin) forProbe(probe string) ([]originReq, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var reqs []originReq
	var anoms []string
	for _, r := range o.reqs {
		if r.probe == probe {
			reqs = append(reqs, r)
		}
	}
	for _, a := range o.anomalies {
		if a.probe == probe {
			anoms = append(anoms, a.what)
		}
	}
	return reqs, anoms
}

// unattributed returns the anomalies and requests that carry no probe ID.
func (o *origin) unattributed() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, a := range o.anomalies {
		if a.probe == "" {
			out = append(out, a.what)
		}
	}
	for _, r := range o.reqs {
		if r.probe == "" {
			out = append(out, fmt.Sprintf("request without a probe ID: %q", r.head))
		}
	}
	return out
}

func (o *origin) anomaly(probe, format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.anomalies = append(o.anomalies, anomaly{probe: probe, what: fmt.Sprintf(format, args...)})
}

// serve reads requests from one connection until it closes, a request
// cannot be parsed, or an upgrade turns it into a tunnel.
func (o *origin) serve(c net.Conn, id int) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	last := ""
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		req, err := readOriginRequest(br)
		if errors.Is(err, io.EOF) && req == nil {
			return
		}
		if req == nil {
			o.anomaly(last, "origin connection %d: %v", id, err)
			return
		}
		req.conn = id
		last = req.probe
		o.mu.Lock()
		o.reqs = append(o.reqs, *req)
		o.mu.Unlock()
		if err != nil { // a body that did not decode or was cut short
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				o.anomaly(last, "origin connection %d: %v", id, err)
			}
			return
		}
		if o.upgrade && len(req.header("Upgrade")) > 0 {
			_, _ = io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+req.header("Upgrade")[0]+"\r\n\r\n")
			_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
			rest, _ := io.ReadAll(io.LimitReader(br, 64<<10))
			if len(rest) > 0 {
				o.anomaly(last, "%d bytes tunnelled to the origin after its 101: %q", len(rest), clip(rest, 120))
			}
			return
		}
		body := fmt.Sprintf("origin %s %s\n", req.method, req.target)
		resp := "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n"
		if req.method != "HEAD" {
			resp += body
		}
		if _, err := io.WriteString(c, resp); err != nil {
			return
		}
	}
}

// readOriginRequest parses one request strictly. It returns the request
// with its problems when the head parses; err is set when the body could
// not be read (io.ErrUnexpectedEOF when the sender stopped short).
func readOriginRequest(br *bufio.Reader) (*originReq, error) {
	var head bytes.Buffer
	var lines [][]byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if head.Len() == 0 && len(line) == 0 {
				// Closed (or reset, as HAProxy closes idle connections)
				// between requests: a clean end.
				return nil, io.EOF
			}
			return nil, fmt.Errorf("head cut short after %q: %w", clip(append(head.Bytes(), line...), 200), err)
		}
		head.Write(line)
		if head.Len() > 1<<20 {
			return nil, errors.New("head over 1 MiB")
		}
		if len(lines) == 0 && (string(line) == "\r\n" || string(line) == "\n") {
			continue // RFC 9112 §2.2: a recipient may skip empty lines before the request line
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			break
		}
		lines = append(lines, append([]byte(nil), line...))
	}
	r := &originReq{head: head.Bytes()}
	for i, l := range lines {
		if !bytes.HasSuffix(l, []byte("\r\n")) {
			r.problems = append(r.problems, fmt.Sprintf("bare LF ending line %q", clip(l, 80)))
			l = bytes.TrimSuffix(l, []byte("\n"))
		} else {
			l = l[:len(l)-2]
		}
		if bytes.IndexByte(l, '\r') >= 0 {
			r.problems = append(r.problems, fmt.Sprintf("bare CR in %q", clip(l, 80)))
		}
		if bytes.IndexByte(l, 0) >= 0 {
			r.problems = append(r.problems, fmt.Sprintf("NUL in %q", clip(l, 80)))
		}
		if i == 0 {
			parts := strings.Split(string(l), " ")
			if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
				return nil, fmt.Errorf("not an HTTP/1.x request line: %q", clip(l, 120))
			}
			r.method, r.target = parts[0], parts[1]
			continue
		}
		if l[0] == ' ' || l[0] == '\t' {
			r.problems = append(r.problems, fmt.Sprintf("obs-fold line %q", clip(l, 80)))
			continue
		}
		name, value, ok := bytes.Cut(l, []byte(":"))
		if !ok || len(name) == 0 || !isToken(name) {
			r.problems = append(r.problems, fmt.Sprintf("invalid header name in %q", clip(l, 80)))
			continue
		}
		r.headers = append(r.headers, [2]string{string(name), strings.Trim(string(value), " \t")})
	}
	if u, err := url.Parse(r.target); err == nil {
		r.probe = u.Query().Get("p")
	}
	if r.probe == "" {
		if v := r.header("X-Probe"); len(v) > 0 {
			r.probe = v[0]
		}
	}
	if v := r.header("X-Injected"); len(v) > 0 {
		r.problems = append(r.problems, fmt.Sprintf("an injected header line reached the origin: X-Injected: %q", v))
	}
	if strings.Contains(r.target, "smuggled") {
		r.problems = append(r.problems, "smuggled request "+r.method+" "+r.target+" reached the origin")
	}
	cls, tes := r.header("Content-Length"), r.header("Transfer-Encoding")
	if len(cls) > 0 && len(tes) > 0 {
		r.problems = append(r.problems, "both Content-Length and Transfer-Encoding")
	}
	if len(tes) > 1 || len(tes) == 1 && tes[0] != "chunked" {
		r.problems = append(r.problems, fmt.Sprintf("Transfer-Encoding %q", tes))
	}
	if len(cls) > 1 {
		r.problems = append(r.problems, fmt.Sprintf("Content-Length repeated: %q", cls))
	}
	switch {
	case len(tes) > 0:
		body, err := readChunked(br)
		r.body = body
		return r, err
	case len(cls) > 0:
		n, err := strconv.ParseUint(cls[0], 10, 31)
		if err != nil || strings.HasPrefix(cls[0], "+") {
			r.problems = append(r.problems, fmt.Sprintf("Content-Length %q", cls[0]))
			return r, fmt.Errorf("invalid Content-Length %q", cls[0])
		}
		r.body = make([]byte, n)
		_, err = io.ReadFull(br, r.body)
		if err != nil {
			return r, io.ErrUnexpectedEOF
		}
	}
	return r, nil
}

// readChunked decodes a chunked body exactly as RFC 9112 §7.1 writes it:
// hex sizes with no extensions, CRLF everywhere, no trailers expected
// but tolerated.
func readChunked(br *bufio.Reader) ([]byte, error) {
	var body []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return body, io.ErrUnexpectedEOF
		}
		if !bytes.HasSuffix(line, []byte("\r\n")) {
			return body, fmt.Errorf("chunk size line %q does not end in CRLF", clip(line, 40))
		}
		size, err := strconv.ParseUint(string(line[:len(line)-2]), 16, 32)
		if err != nil {
			return body, fmt.Errorf("chunk size line %q: %w", clip(line, 40), err)
		}
		if size == 0 {
			for { // trailers, then the final CRLF
				tl, err := br.ReadSlice('\n')
				if err != nil {
					return body, io.ErrUnexpectedEOF
				}
				if string(tl) == "\r\n" {
					return body, nil
				}
				if !bytes.HasSuffix(tl, []byte("\r\n")) {
					return body, fmt.Errorf("trailer line %q does not end in CRLF", clip(tl, 40))
				}
			}
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(br, chunk); err != nil {
			return body, io.ErrUnexpectedEOF
		}
		if !bytes.HasSuffix(chunk, []byte("\r\n")) {
			return body, fmt.Errorf("chunk of %d bytes not followed by CRLF", size)
		}
		body = append(body, chunk[:size]...)
	}
}

func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// canary is an origin that no route points at: a proxy that connects to
// it is an open proxy. It records the first bytes of every connection.
type canary struct {
	address string

	mu    sync.Mutex
	conns []string
}

func startCanary(t testing.TB) *canary {
	t.Helper()
	k := &canary{}
	k.address = e2etest.RawServer(t, func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		b, _ := io.ReadAll(io.LimitReader(c, 512))
		k.mu.Lock()
		k.conns = append(k.conns, string(b))
		k.mu.Unlock()
	})
	return k
}

func (k *canary) addr() string { return k.address }

// contacts returns the first bytes of every connection made to the canary.
func (k *canary) contacts() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]string(nil), k.conns...)
}
