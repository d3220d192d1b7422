package http1

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// checkTrailerNames refuses trailer names that are invalid or that may
// not be trailers (framing fields).
func checkTrailerNames(trailer http.Header) error {
	for k := range trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("http1: invalid trailer field name %q", k)
		}
		switch http.CanonicalHeaderKey(k) {
		case "Transfer-Encoding", "Trailer", "Content-Length":
			return fmt.Errorf("http1: forbidden trailer field %q", k)
		}
	}
	return nil
}

// writeHeaderFields writes h's fields in map order, except those written
// from the request's own fields, refusing a name or value that would
// split the head.
func writeHeaderFields(bw *bufio.Writer, h http.Header) error {
	for k, vv := range h {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // written from the request's own fields
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("http1: invalid header field name %q", k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("http1: invalid value for header field %q", k)
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	return nil
}

// WriteRequest writes req to bw as an HTTP/1.1 request, body and trailers
// included, and flushes it: the upstream half of the codec, in place of
// net/http's Request.Write. The differences are a proxy's: header fields
// are written in map order without sorting, no User-Agent is invented for a
// request that has none, and a chunked body is flushed chunk by chunk so
// that a streamed body reaches the upstream as it arrives.
//
// The body is closed once written, as Request.Write does.
func WriteRequest(bw *bufio.Writer, req *http.Request) (err error) {
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	if body != nil {
		defer func() {
			if cerr := body.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
	}
	if req.URL == nil {
		return errors.New("http1: request has no URL")
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("http1: invalid Host header %q", host)
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet // as for net/http's client
	}
	if !validMethod(method) {
		return fmt.Errorf("http1: invalid method %q", method)
	}
	// Checked before anything is written: the names go in the "Trailer"
	// header, where a bad one would split the head.
	if err := checkTrailerNames(req.Trailer); err != nil {
		return err
	}

	_, _ = bw.WriteString(method)
	_ = bw.WriteByte(' ')
	writeRequestURI(bw, req)
	_, _ = bw.WriteString(" HTTP/1.1\r\nHost: ")
	_, _ = bw.WriteString(host)
	_, _ = bw.WriteString("\r\n")
	if err := writeHeaderFields(bw, req.Header); err != nil {
		return err
	}
	chunked := body != nil && (req.ContentLength <= 0 || len(req.Trailer) > 0)
	switch {
	case chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			_, _ = bw.WriteString("Trailer: ")
			first := true
			for k := range req.Trailer {
				if !first {
					_, _ = bw.WriteString(", ")
				}
				first = false
				_, _ = bw.WriteString(k)
			}
			_, _ = bw.WriteString("\r\n")
		}
	case body != nil:
		_, _ = bw.WriteString("Content-Length: ")
		var num [20]byte
		_, _ = bw.Write(strconv.AppendInt(num[:0], req.ContentLength, 10))
		_, _ = bw.WriteString("\r\n")
	case methodSendsLength(method):
		// An empty body is still announced for methods that usually
		// carry one, as net/http does, so that servers do not wait.
		_, _ = bw.WriteString("Content-Length: 0\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		return err
	}
	switch {
	case body == nil:
	case chunked:
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := writeChunked(bw, body, req.Trailer); err != nil {
			return err
		}
	default:
		n, err := copyBuffered(bw, io.LimitReader(body, req.ContentLength))
		if err != nil {
			return err
		}
		if n != req.ContentLength {
			return fmt.Errorf("http1: ContentLength=%d with Body length %d", req.ContentLength, n)
		}
	}
	return bw.Flush()
}

func methodSendsLength(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// writeRequestURI writes the origin-form target of req (the authority for
// CONNECT), without building it as a string first.
func writeRequestURI(bw *bufio.Writer, req *http.Request) {
	u := req.URL
	if req.Method == http.MethodConnect && u.Path == "" {
		_, _ = bw.WriteString(u.Host)
		return
	}
	if u.Opaque != "" {
		_, _ = bw.WriteString(u.RequestURI())
		return
	}
	p := u.EscapedPath()
	if p == "" {
		p = "/"
	}
	_, _ = bw.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		_ = bw.WriteByte('?')
		_, _ = bw.WriteString(u.RawQuery)
	}
}

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBuffered copies src to bw through a pooled buffer.
func copyBuffered(bw *bufio.Writer, src io.Reader) (int64, error) {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	var total int64
	for {
		n, rerr := src.Read(*bufp)
		if n > 0 {
			if _, err := bw.Write((*bufp)[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		if errors.Is(rerr, io.EOF) {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// writeChunked writes body as chunks, flushing after each, then the last
// chunk and the trailers.
func writeChunked(bw *bufio.Writer, body io.Reader, trailer http.Header) error {
	bufp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bufp)
	for {
		n, rerr := body.Read(*bufp)
		if n > 0 {
			var hexLen [16]byte
			_, _ = bw.Write(strconv.AppendUint(hexLen[:0], uint64(n), 16))
			_, _ = bw.WriteString("\r\n")
			_, _ = bw.Write((*bufp)[:n])
			_, _ = bw.WriteString("\r\n")
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	_, _ = bw.WriteString("0\r\n")
	for k, vv := range trailer {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				continue
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// ReadResponse reads one response head from br and returns the response
// with a body reader over br: the upstream half of the codec, in place of
// net/http's ReadResponse. req is the request it answers (a HEAD request's
// response has no body). maxHeaderBytes bounds the status line and headers.
//
// Unlike net/http it leaves the Connection header in place (the router
// removes it and every header it names, as hop-by-hop), and it refuses
// obsolete line folding. res.Body must be read to io.EOF before br carries
// the next response.
func ReadResponse(br *bufio.Reader, req *http.Request, maxHeaderBytes int) (*http.Response, error) {
	bufp := headBufPool.Get().(*[]byte)
	buf, err := readLines(br, (*bufp)[:0], maxHeaderBytes, false)
	head := string(buf)
	*bufp = buf[:0]
	headBufPool.Put(bufp)
	if err != nil {
		if errors.Is(err, errHeadTooLarge) {
			return nil, fmt.Errorf("http1: response status line and headers exceed %d bytes", maxHeaderBytes)
		}
		var re *requestError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("malformed HTTP response: %s", re.reason)
		}
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		var torn errTornHead
		if errors.As(err, &torn) {
			err = torn.err // "reading request head" would mislead here
		}
		return nil, err
	}
	line, rest := nextLine(head)
	proto, status, ok := strings.Cut(line, " ")
	if !ok {
		return nil, fmt.Errorf("malformed HTTP response %q", clip(line))
	}
	res := &http.Response{Proto: proto, Request: req}
	if res.ProtoMajor, res.ProtoMinor, ok = http.ParseHTTPVersion(proto); !ok || res.ProtoMajor != 1 {
		return nil, fmt.Errorf("malformed HTTP version %q", clip(proto))
	}
	res.Status = strings.TrimLeft(status, " ")
	code, _, _ := strings.Cut(res.Status, " ")
	if len(code) != 3 {
		return nil, fmt.Errorf("malformed HTTP status code %q", clip(code))
	}
	if res.StatusCode, err = strconv.Atoi(code); err != nil || res.StatusCode < 100 {
		return nil, fmt.Errorf("malformed HTTP status code %q", clip(code))
	}
	if res.Header, err = parseHeaderLines(rest, nil); err != nil {
		var re *requestError
		if errors.As(err, &re) {
			return nil, fmt.Errorf("malformed HTTP response: %s", re.reason)
		}
		return nil, err
	}
	if err := setResponseFraming(res, br, maxHeaderBytes); err != nil {
		return nil, err
	}
	return res, nil
}

var headBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// setResponseFraming sets the response's body, length and Close by RFC 9112
// §6.3.
func setResponseFraming(res *http.Response, br *bufio.Reader, maxHeaderBytes int) error {
	h := res.Header
	res.Close = shouldClose(res.ProtoMajor, res.ProtoMinor, h)
	te, hasTE := h["Transfer-Encoding"]
	cl, hasCL := h["Content-Length"]
	noBody := res.StatusCode < 200 || res.StatusCode == http.StatusNoContent || res.StatusCode == http.StatusNotModified
	isHead := res.Request != nil && res.Request.Method == http.MethodHead
	var length int64 = -1
	if hasCL {
		// Checked even where Transfer-Encoding overrides it, as net/http
		// does: a garbage length is a sign of a confused or hostile peer.
		n, err := parseContentLength(cl[0])
		if err != nil {
			return fmt.Errorf("malformed HTTP response: invalid Content-Length %q", clip(cl[0]))
		}
		for _, v := range cl[1:] {
			if trimOWS(v) != trimOWS(cl[0]) {
				return fmt.Errorf("malformed HTTP response: conflicting Content-Length values %q", clip(strings.Join(cl, ", ")))
			}
		}
		if !hasTE {
			length = n
		}
	}
	switch {
	case isHead:
		res.ContentLength = length
		res.Body = http.NoBody
		return nil
	case noBody:
		res.ContentLength = 0
		res.Body = http.NoBody
		return nil
	case hasTE:
		if !res.ProtoAtLeast(1, 1) {
			// RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding
			// has faulty framing; guessing would desynchronise the pool.
			return fmt.Errorf("malformed HTTP response: Transfer-Encoding in an HTTP/1.0 response")
		}
		if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			return fmt.Errorf("malformed HTTP response: unsupported Transfer-Encoding %q", clip(strings.Join(te, ", ")))
		}
		// Transfer-Encoding overrides Content-Length (RFC 9112 §6.3); a
		// response with both may be a splitting attempt, so the
		// connection is not reused after it.
		if hasCL {
			delete(h, "Content-Length")
			res.Close = true
		}
		delete(h, "Transfer-Encoding")
		res.TransferEncoding = chunkedEncoding
		res.ContentLength = -1
		if tr, ok := h["Trailer"]; ok {
			t, err := announcedTrailers(tr)
			if err != nil {
				return fmt.Errorf("malformed HTTP response: %w", err)
			}
			res.Trailer = t
		}
		res.Body = &responseBody{br: br, cr: newChunkedReader(br), res: res, maxHeaderBytes: maxHeaderBytes}
	case length == 0:
		res.ContentLength = 0
		res.Body = http.NoBody
	case length > 0:
		res.ContentLength = length
		res.Body = &responseBody{br: br, remaining: length}
	default:
		// No length: the body ends when the upstream closes.
		res.ContentLength = -1
		res.Close = true
		res.Body = &responseBody{br: br, untilClose: true}
	}
	return nil
}

// responseBody reads a response body framed by Content-Length, chunked
// encoding or the connection's end.
type responseBody struct {
	br             *bufio.Reader
	remaining      int64
	cr             io.Reader
	untilClose     bool
	res            *http.Response
	maxHeaderBytes int
	err            error
}

func (b *responseBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.read(p)
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *responseBody) read(p []byte) (int, error) {
	switch {
	case b.untilClose:
		return b.br.Read(p)
	case b.cr != nil:
		n, err := b.cr.Read(p)
		if errors.Is(err, io.EOF) {
			if terr := b.readTrailer(); terr != nil {
				return n, terr
			}
			return n, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return n, io.ErrUnexpectedEOF
		}
		return n, err
	}
	return readFixed(b.br, p, &b.remaining)
}

func (b *responseBody) readTrailer() error {
	buf, err := readTrailerSection(b.br, b.maxHeaderBytes)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		var re *requestError
		if errors.As(err, &re) {
			return fmt.Errorf("malformed HTTP response trailers: %s", re.reason)
		}
		return err
	}
	if len(buf) <= 2 {
		return nil
	}
	t, err := parseHeaderLines(string(buf), b.res.Trailer)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			return fmt.Errorf("malformed HTTP response trailers: %s", re.reason)
		}
		return err
	}
	b.res.Trailer = t
	return nil
}

// Close does nothing: the connection's owner decides, from whether the
// body was read to io.EOF, if the connection can be reused.
func (b *responseBody) Close() error { return nil }
