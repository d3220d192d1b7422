package http1

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// response is the http.ResponseWriter of one request. Nothing reaches the
// connection until the first Write, Flush or the end of the handler, so
// that a handler that writes no body gets "Content-Length: 0" and a small
// response leaves in one write(2) together with its headers.
//
// Framing follows the handler's headers: a Content-Length it set is used
// (and enforced); otherwise an HTTP/1.1 response is chunked and an HTTP/1.0
// one ends when the connection closes. Trailers, announced in "Trailer" or
// set with http.TrailerPrefix, go after the last chunk.
type response struct {
	c      *conn
	req    *http.Request
	body   *requestBody // nil when the request has none
	header http.Header
	status int
	// headerSent: the status line and headers are in the write buffer.
	headerSent bool
	hijacked   bool
	// contentLength is the declared length, or -1.
	contentLength int64
	written       int64
	chunked       bool
	// bodyAllowed is false for 1xx, 204 and 304; isHead discards the body
	// of a HEAD response while keeping its framing headers.
	bodyAllowed bool
	isHead      bool
	// closeAfter: the connection cannot carry another request after this
	// response (the client or handler asked, or the framing requires it).
	closeAfter bool
	// guardContinue: the request expects 100-continue, so the body reader
	// may write the interim response from another goroutine; the first
	// write of the response synchronises with it (conn.writeContinue).
	guardContinue bool
	err           error
}

// Header implements http.ResponseWriter.
func (w *response) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter. 1xx responses other than 101
// are written at once; the final status is written with the first body
// byte or at the end of the handler.
func (w *response) WriteHeader(code int) {
	if w.hijacked || w.headerSent || w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.status = code
}

func (w *response) writeInformational(code int) {
	// The server sends 100 Continue itself, when the body is first read;
	// an HTTP/1.0 client gets no 1xx at all (RFC 9110 §15.2).
	if code == http.StatusContinue || !w.req.ProtoAtLeast(1, 1) || w.err != nil {
		return
	}
	// Not beginWrite: a 1xx does not start the final response, so the
	// body reader may still send "100 Continue", from another goroutine.
	w.c.contMu.Lock()
	defer w.c.contMu.Unlock()
	bw := w.c.bw
	writeStatusLine(bw, true, code)
	for k, vv := range w.header {
		writeHeaderField(bw, k, vv)
	}
	_, _ = bw.WriteString("\r\n")
	w.setErr(bw.Flush())
}

// beginWrite is called before the response first touches the connection.
// It reports false when the connection already failed.
func (w *response) beginWrite() bool {
	if w.guardContinue {
		w.guardContinue = false
		if !w.c.responseStarted() {
			// The client may still be waiting to send its body, so the
			// connection ends after this response (requestBody.finish):
			// say so (RFC 9110 §10.1.1).
			w.closeAfter = true
		}
	}
	return w.err == nil
}

// Write implements http.ResponseWriter.
func (w *response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyAllowed {
		return 0, http.ErrBodyNotAllowed
	}
	if w.isHead {
		return len(p), nil
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	if len(p) == 0 {
		return 0, nil
	}
	w.written += int64(len(p))
	bw := w.c.bw
	if w.chunked {
		var hexLen [16]byte
		_, _ = bw.Write(strconv.AppendUint(hexLen[:0], uint64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
		_, _ = bw.Write(p)
		_, err := bw.WriteString("\r\n")
		if err != nil {
			w.setErr(err)
			return 0, err
		}
		return len(p), nil
	}
	n, err := bw.Write(p)
	w.setErr(err)
	return n, err
}

// Flush implements http.Flusher.
func (w *response) Flush() {
	_ = w.FlushError()
}

// FlushError is what http.ResponseController.Flush calls.
func (w *response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if !w.headerSent {
		w.sendHeader(false)
	}
	if w.err != nil {
		return w.err
	}
	w.setErr(w.c.bw.Flush())
	return w.err
}

// EnableFullDuplex is what http.ResponseController.EnableFullDuplex calls.
// This server never stops the request body once the response starts, so
// there is nothing to enable.
func (w *response) EnableFullDuplex() error { return nil }

// Hijack implements http.Hijacker, for protocol upgrades: the caller owns
// the connection from here on, including what is buffered in either
// direction.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.headerSent {
		return nil, nil, errors.New("http1: Hijack after the response started")
	}
	w.beginWrite()
	w.hijacked = true
	w.c.hijack()
	return w.c.nc, bufio.NewReadWriter(w.c.br, w.c.bw), nil
}

// SetReadDeadline and SetWriteDeadline are what http.ResponseController
// calls.
func (w *response) SetReadDeadline(t time.Time) error  { return w.c.nc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

func (w *response) setErr(err error) {
	if err != nil && w.err == nil {
		w.err = err
	}
}

// sendHeader decides the framing and writes the status line and headers
// into the connection's write buffer. final means the handler has returned,
// so a response with no declared length is known to be empty.
func (w *response) sendHeader(final bool) {
	w.headerSent = true
	if !w.beginWrite() {
		return
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	h := w.header
	code := w.status
	is11 := w.req.ProtoAtLeast(1, 1)
	w.bodyAllowed = code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
	w.isHead = w.req.Method == http.MethodHead

	delete(h, "Transfer-Encoding") // framing is this writer's business
	w.contentLength = -1
	_, hasTrailers := h["Trailer"]
	if !hasTrailers {
		for k := range h {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				hasTrailers = true
				break
			}
		}
	}
	var framing string
	switch {
	case !w.bodyAllowed:
		if code == http.StatusNoContent || code < 200 {
			delete(h, "Content-Length")
		}
	case hasTrailers && is11 && !w.isHead:
		delete(h, "Content-Length")
		w.chunked = true
		framing = "Transfer-Encoding: chunked\r\n"
	default:
		if cl, ok := h["Content-Length"]; ok {
			n, err := parseContentLength(firstValue(cl))
			if err != nil {
				// A handler bug, not the client's: drop the bad header
				// and fall back to chunking or closing.
				delete(h, "Content-Length")
			} else {
				w.contentLength = n
				break
			}
		}
		switch {
		case w.isHead:
		case final:
			w.contentLength = 0
			framing = "Content-Length: 0\r\n"
		case is11:
			w.chunked = true
			framing = "Transfer-Encoding: chunked\r\n"
		default:
			w.closeAfter = true // HTTP/1.0: the body ends when the connection does
		}
	}

	if w.req.Close || hasToken(h["Connection"], "close") || !w.c.srv.keepAlivesEnabled() {
		w.closeAfter = true
	}
	if w.body != nil && !w.closeAfter && w.body.tooLargeToDiscard() {
		// Unless the handler reads it yet, the rest of the body is more
		// than the server drains, so it closes the connection after this
		// response: a client that is not told may send its next request
		// on it and lose it.
		w.closeAfter = true
	}
	bw := w.c.bw
	writeStatusLine(bw, is11, code)
	for k, vv := range h {
		switch {
		case k == "Connection", k == "Date":
			continue // written below, once
		case strings.HasPrefix(k, http.TrailerPrefix):
			continue
		}
		writeHeaderField(bw, k, vv)
	}
	if d, ok := h["Date"]; ok && len(d) > 0 {
		writeHeaderField(bw, "Date", d[:1])
	} else {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(httpDate())
		_, _ = bw.WriteString("\r\n")
	}
	_, _ = bw.WriteString(framing)
	switch {
	case w.closeAfter:
		_, _ = bw.WriteString("Connection: close\r\n")
	case !is11:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	_, err := bw.WriteString("\r\n")
	w.setErr(err)
}

// finish completes the response after the handler returned: headers if
// none were sent, the last chunk and trailers, and the final flush. It
// reports whether the response went out complete.
func (w *response) finish() bool {
	if w.hijacked {
		return false
	}
	if !w.headerSent {
		w.sendHeader(true)
	}
	if w.err != nil {
		return false
	}
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = bw.WriteString("\r\n")
	}
	if w.contentLength >= 0 && w.written < w.contentLength && w.bodyAllowed && !w.isHead {
		// The handler wrote less than it declared: the client must see
		// the connection close, not wait for bytes that never come.
		w.closeAfter = true
	}
	w.setErr(bw.Flush())
	complete := w.err == nil
	// The write buffer may go back to the server's pool once the
	// connection is idle: a write after the handler returned (which
	// http.ResponseWriter forbids) fails instead of reaching it.
	w.setErr(errWriteAfterHandler)
	return complete
}

// errWriteAfterHandler is what a response written to after its handler
// returned answers.
var errWriteAfterHandler = errors.New("http1: response written after its handler returned")

func (w *response) writeTrailers() {
	bw := w.c.bw
	for _, v := range w.header["Trailer"] {
		for name := range strings.SplitSeq(v, ",") {
			key := http.CanonicalHeaderKey(strings.TrimSpace(name))
			if vv, ok := w.header[key]; ok && validFieldName(key) {
				writeHeaderField(bw, key, vv)
			}
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && validFieldName(name) {
			writeHeaderField(bw, name, vv)
		}
	}
}

func firstValue(vv []string) string {
	if len(vv) == 0 {
		return ""
	}
	return vv[0]
}

// writeHeaderField writes one field line per value. A value holding CR or
// LF (which would split the response) has them replaced with spaces, as
// net/http does; an invalid name is skipped.
func writeHeaderField(bw *bufio.Writer, k string, vv []string) {
	if !validFieldName(k) {
		return
	}
	for _, v := range vv {
		_, _ = bw.WriteString(k)
		_, _ = bw.WriteString(": ")
		if strings.ContainsAny(v, "\r\n") {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		}
		_, _ = bw.WriteString(strings.TrimSpace(v))
		_, _ = bw.WriteString("\r\n")
	}
}

// statusLines caches "HTTP/1.1 <code> <text>\r\n" for the codes in use.
var statusLines [2][600]atomic.Pointer[string]

func writeStatusLine(bw *bufio.Writer, is11 bool, code int) {
	v := 0
	if is11 {
		v = 1
	}
	if code < len(statusLines[v]) {
		if s := statusLines[v][code].Load(); s != nil {
			_, _ = bw.WriteString(*s)
			return
		}
	}
	proto := "HTTP/1.0 "
	if is11 {
		proto = "HTTP/1.1 "
	}
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	s := proto + strconv.Itoa(code) + " " + text + "\r\n"
	if code < len(statusLines[v]) {
		statusLines[v][code].Store(&s)
	}
	_, _ = bw.WriteString(s)
}

// httpDate returns the current time in IMF-fixdate, formatted at most once
// per second for the whole process.
func httpDate() []byte {
	now := time.Now().Unix()
	if d := cachedDate.Load(); d != nil && d.unix == now {
		return d.text
	}
	d := &dateText{unix: now, text: time.Unix(now, 0).UTC().AppendFormat(nil, http.TimeFormat)}
	cachedDate.Store(d)
	return d.text
}

type dateText struct {
	unix int64
	text []byte
}

var cachedDate atomic.Pointer[dateText]
