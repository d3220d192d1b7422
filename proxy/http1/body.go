package http1

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"sync"
)

// maxDiscard is how much of an unread request body the server reads and
// drops after a response so that the connection can be reused (net/http's
// figure); a larger remainder closes the connection instead.
const maxDiscard = 256 << 10

// requestBody is a request's body as the handler sees it: Content-Length or
// chunked framing over the connection's reader. It may be read from another
// goroutine than the handler's (the router streams it upstream), and a
// reader abandoned by a timed-out attempt may still call Read after the
// handler returned: the mutex keeps every such read off the connection once
// the server has moved on (Read then returns http.ErrBodyReadAfterClose).
type requestBody struct {
	mu sync.Mutex
	c  *conn
	br *bufio.Reader
	// remaining is the Content-Length still to read; chunked bodies use cr.
	remaining int64
	cr        io.Reader
	req       *http.Request
	// sendContinue: the client sent "Expect: 100-continue" and is waiting
	// for the interim response before it sends the body.
	sendContinue bool
	// err is sticky: io.EOF once the body ended, or why it failed.
	err    error
	closed bool
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.sendContinue {
		b.sendContinue = false
		if err := b.c.writeContinue(); err != nil {
			b.err = err
			return 0, err
		}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.readLocked(p)
	if err != nil {
		b.err = err
		if err == io.EOF { //nolint:errorlint // readLocked returns io.EOF itself
			b.c.bodyEnded()
		}
	}
	return n, err
}

func (b *requestBody) readLocked(p []byte) (int, error) {
	if b.cr == nil {
		return readFixed(b.br, p, &b.remaining)
	}
	n, err := b.cr.Read(p)
	if errors.Is(err, io.EOF) {
		if terr := b.readTrailer(); terr != nil {
			return n, terr
		}
		return n, io.EOF
	}
	return n, err
}

// readFixed reads from a body of known length with *remaining bytes left.
// It returns io.EOF with the last bytes, and io.ErrUnexpectedEOF when the
// connection ends first.
func readFixed(br *bufio.Reader, p []byte, remaining *int64) (int, error) {
	if *remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > *remaining {
		p = p[:*remaining]
	}
	n, err := br.Read(p)
	*remaining -= int64(n)
	switch {
	case *remaining == 0:
		return n, io.EOF
	case errors.Is(err, io.EOF):
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

// readTrailer reads the trailer section that ends a chunked body into
// req.Trailer.
func (b *requestBody) readTrailer() error {
	buf, err := readTrailerSection(b.br, b.c.srv.maxHeaderBytes())
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if len(buf) <= 2 {
		return nil // no trailers: just the final CRLF
	}
	t, err := parseHeaderLines(string(buf), b.req.Trailer)
	if err != nil {
		return err
	}
	b.req.Trailer = t
	return nil
}

// finish ends the body when the handler has returned. It reports whether
// the connection can carry another request: the body was read to its end,
// or what was left (at most maxDiscard) could be read and dropped.
func (b *requestBody) finish() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.err == io.EOF //nolint:errorlint // sticky sentinel
	}
	b.closed = true
	if b.err != nil {
		return b.err == io.EOF //nolint:errorlint // sticky sentinel
	}
	if b.sendContinue {
		// The client is still waiting to be told to send its body: the
		// connection's next bytes may be that body or a new request.
		return false
	}
	if b.cr == nil && b.remaining > maxDiscard {
		return false
	}
	buf := make([]byte, 4096)
	var read int64
	for read <= maxDiscard {
		n, err := b.readLocked(buf)
		read += int64(n)
		if err == io.EOF { //nolint:errorlint // readLocked returns io.EOF itself
			b.err = io.EOF
			return true
		}
		if err != nil {
			b.err = err
			return false
		}
	}
	return false
}

// tooLargeToDiscard reports whether, as things stand, finish would close
// the connection rather than drain the rest of a Content-Length body. A
// body being read at this moment (its lock is held, maybe by a read
// blocked on the client) is taken to be read on: waiting for the lock
// could deadlock a full-duplex handler.
func (b *requestBody) tooLargeToDiscard() bool {
	if !b.mu.TryLock() {
		return false
	}
	defer b.mu.Unlock()
	return b.err == nil && !b.closed && b.cr == nil && b.remaining > maxDiscard
}

func (b *requestBody) Close() error {
	// The server ends the body itself after the handler returns (finish);
	// a handler closing it early only stops further reads.
	return nil
}
