package http1

import (
	"bufio"
	"net"
	"sync"
	"time"
)

// bufferReleaseDelay is how long a connection waits for its next request
// with its read and write buffers before it gives them back to the
// server's pools. A busy keep-alive connection, whose next request comes
// sooner, keeps them and pays nothing; an idle one holds neither, as
// nginx's keep-alive state holds none.
const bufferReleaseDelay = 100 * time.Millisecond

// bufferPools hold the read and write buffers that connections waiting for
// their next request gave back, for the next connection that needs them.
type bufferPools struct {
	readers, writers sync.Pool
}

// reader returns a read buffer over r.
func (p *bufferPools) reader(r *connReader) *bufio.Reader {
	if br, ok := p.readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufferSize)
}

// writer returns a write buffer over nc.
func (p *bufferPools) writer(nc net.Conn) *bufio.Writer {
	if bw, ok := p.writers.Get().(*bufio.Writer); ok {
		bw.Reset(nc)
		return bw
	}
	return bufio.NewWriterSize(nc, bufferSize)
}

// connReader is what a connection's pooled read buffer reads from: the
// byte that ended the connection's idle wait, if there is one, then the
// connection. It lives in the conn, so that taking a buffer allocates
// nothing.
type connReader struct {
	nc         net.Conn
	pending    [1]byte
	hasPending bool
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasPending && len(p) > 0 {
		// Only the byte: reading on could block past the point where the
		// caller sets the request's read-header deadline.
		p[0] = r.pending[0]
		r.hasPending = false
		return 1, nil
	}
	return r.nc.Read(p)
}

// waitForRequest waits until deadline (zero: no limit) for the first byte
// of the connection's next request. For bufferReleaseDelay it waits with
// its buffers; then it gives them back, reads the first byte into c.src
// and takes buffers again only when that byte came. deadlineMoved reports
// that the read deadline is no longer deadline.
//
// A connection ending in the wait leaves c.br and c.bw nil: nothing reads
// or writes through them after that.
func (c *conn) waitForRequest(deadline time.Time) (deadlineMoved bool, err error) {
	if deadline.IsZero() || time.Until(deadline) > bufferReleaseDelay {
		_ = c.nc.SetReadDeadline(time.Now().Add(bufferReleaseDelay))
		if _, err := c.br.Peek(1); err == nil || !isTimeout(err) {
			return true, err
		}
	}
	_ = c.nc.SetReadDeadline(deadline)
	if !c.releaseBuffers() {
		_, err := c.br.Peek(1)
		return false, err
	}
	for {
		n, err := c.nc.Read(c.src.pending[:])
		if n == 1 {
			c.src.hasPending = true
			c.takeBuffers()
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// releaseBuffers gives the connection's read and write buffers back to the
// server's pools, and reports whether it could: only when neither holds a
// byte (a pipelined request stays where it is). It drops the peer-close
// timer too.
func (c *conn) releaseBuffers() bool {
	if c.br.Buffered() != 0 || c.bw.Buffered() != 0 {
		return false
	}
	if c.br.Size() == bufferSize {
		c.br.Reset(nil)
		c.srv.bufs.readers.Put(c.br)
	}
	if c.bw.Size() == bufferSize {
		c.bw.Reset(nil)
		c.srv.bufs.writers.Put(c.bw)
	}
	c.br, c.bw = nil, nil
	if cap(c.head) > bufferSize {
		c.head = nil // one large head does not stay with the connection
	}
	// The peer-close timer was stopped at the end of the last request;
	// the next request makes another rather than every idle connection
	// keeping one.
	c.watch.timer = nil
	return true
}

// takeBuffers gives the connection read and write buffers from the
// server's pools.
func (c *conn) takeBuffers() {
	c.br = c.srv.bufs.reader(&c.src)
	c.bw = c.srv.bufs.writer(c.nc)
}
