package router

import (
	"bytes"
	"errors"
	"io"
	"net/http"
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
}

// newRequestBody prepares req's body. limit is the replay buffer size; a
// negative limit disables buffering (no retries with a body).
func newRequestBody(req *http.Request, limit int) (*requestBody, error) {
	// ContentLength 0 means no body for HTTP/1 (chunked bodies report -1)
	// and for HTTP/2 (END_STREAM on HEADERS or content-length: 0).
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return &requestBody{replayable: true, empty: true}, nil
	}
	if limit <= 0 || req.ContentLength > int64(limit) {
		return &requestBody{stream: req.Body, streamLen: req.ContentLength}, nil
	}
	// Read at most limit+1 bytes: if the body ends within the limit it is
	// replayable, otherwise what was read is stitched back in front of the
	// rest for a single streamed attempt.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(req.ContentLength, 512), int64(limit)+1)))
	n, err := io.CopyN(buf, req.Body, int64(limit)+1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if n <= int64(limit) {
		return &requestBody{buffered: buf.Bytes(), replayable: true, empty: n == 0}, nil
	}
	return &requestBody{stream: struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(buf.Bytes()), req.Body), req.Body}, streamLen: req.ContentLength}, nil
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
