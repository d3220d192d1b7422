package connmgr

import (
	"io"
	"net/http"
	"sync/atomic"

	"github.com/hopwatch/hopwatch/proxy/streaminfo"
)

// responseWriter records the status and byte count of a response for the
// access log and stats. It exposes the underlying writer through Unwrap so
// that http.ResponseController still reaches Flush, Hijack and
// EnableFullDuplex.
type responseWriter struct {
	http.ResponseWriter
	info   *streaminfo.Info
	status int
}

func (w *responseWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 || code == http.StatusSwitchingProtocols {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.info.BytesSent += int64(n)
	return n, err
}

// Flush implements http.Flusher; the router flushes streaming responses.
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController find the server's writer.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// countingBody counts request body bytes as the upstream reads them. The
// count is atomic: an upstream writer that failed or was abandoned may
// still be inside Read when the connection manager reads n for the
// access log.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
