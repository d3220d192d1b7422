package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// requestBody decides how the request body can be sent upstream, once or
// several times. Envoy buffers a request body for retries up to
// per_request_buffer_limit_bytes; hopwatch does the same: a body that fits
// is read up front and replayed from memory on each attempt, a larger one
// is streamed once and the request is not retried.
type requestBody struct {
	// buffered holds the whole body when replayable is true.
	buffered []byte
	// stream is the body to send on the single attempt when not replayable.
	stream     io.ReadCloser
	streamLen  int64 // Content-Length of stream, -1 when unknown
	replayable bool
	// empty reports a request with no body at all.
	empty bool
	// client is the downstream body as read by every consumer (buffering,
	// the single streamed attempt, the shadow tee); nil when empty.
	client *clientBody
}

// clientBody is the downstream request body as the router reads it: it
// records the first read error other than io.EOF, so that a failed upstream
// exchange can be charged to the client that sent a malformed or truncated
// body, without guessing from error strings, whatever the downstream
// protocol and whichever transport read it.
type clientBody struct {
	rc  io.ReadCloser
	mu  sync.Mutex
	err error
}

// Read implements io.Reader.
func (b *clientBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF { //nolint:errorlint // io.EOF is returned unwrapped by contract
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

// Close implements io.Closer.
func (b *clientBody) Close() error { return b.rc.Close() }

// readErr returns the first error reading the downstream body, or nil.
func (b *clientBody) readErr() error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// failed returns the first error reading the request body, or nil.
func (b *requestBody) failed() error { return b.client.readErr() }

// clientGone reports whether a request body read failed because the client
// went away (its stream or connection reset, its context cancelled), which
// Envoy records as a downstream disconnect (DC), rather than because it sent
// a malformed or truncated body (a downstream protocol error, DPE).
func clientGone(down *http.Request, err error) bool {
	return down.Context().Err() != nil || errors.Is(err, context.Canceled) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, http.ErrBodyReadAfterClose)
}

// noRequestBody is every bodiless request's requestBody, shared: nothing
// writes to an empty one (a shadow tee wraps only a streamed body).
var noRequestBody = &requestBody{replayable: true, empty: true}

// newRequestBody prepares req's body. limit is the replay buffer size; a
// negative limit disables buffering (no retries with a body).
func newRequestBody(req *http.Request, limit int) (*requestBody, error) {
	// ContentLength 0 means no body for HTTP/1 (chunked bodies report -1)
	// and for HTTP/2 (END_STREAM on HEADERS or content-length: 0).
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return noRequestBody, nil
	}
	client := &clientBody{rc: req.Body}
	if limit <= 0 || req.ContentLength > int64(limit) {
		return &requestBody{stream: client, streamLen: req.ContentLength, client: client}, nil
	}
	// Read at most limit+1 bytes: if the body ends within the limit it is
	// replayable, otherwise what was read is stitched back in front of the
	// rest for a single streamed attempt.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(req.ContentLength, 512), int64(limit)+1)))
	n, err := io.CopyN(buf, client, int64(limit)+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n <= int64(limit) {
		return &requestBody{buffered: buf.Bytes(), replayable: true, empty: n == 0, client: client}, nil
	}
	return &requestBody{stream: struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf.Bytes()), client), client}, streamLen: req.ContentLength, client: client}, nil
}

// forAttempt returns the body and its length for one upstream attempt. The
// second result is false when the body was already consumed by an earlier
// attempt and cannot be replayed.
func (b *requestBody) forAttempt(attempt int) (io.ReadCloser, int64, bool) {
	switch {
	case b.empty:
		return http.NoBody, 0, true
	case b.replayable:
		return io.NopCloser(bytes.NewReader(b.buffered)), int64(len(b.buffered)), true
	case attempt == 1:
		return b.stream, b.streamLen, true
	default:
		return nil, 0, false
	}
}
