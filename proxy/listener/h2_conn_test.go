package listener

import (
	"bytes"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"

	"github.com/hopwatch/hopwatch/proxy/stats"
)

// countingConn counts the Reads that reach the connection.
type countingConn struct {
	net.Conn
	r     io.Reader
	reads int
}

func (c *countingConn) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// TestH2ConnReadsAhead reads 100 HEADERS frames the way x/net's framer
// does, header then payload, from a plaintext connection that holds them
// all at once: the bytes must come out unchanged and the connection must
// see one Read for them, not two per frame.
func TestH2ConnReadsAhead(t *testing.T) {
	var wire bytes.Buffer
	fr := http2.NewFramer(&wire, nil)
	const frames = 100
	for i := range frames {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{
			StreamID: uint32(2*i + 1), BlockFragment: []byte{0x82, 0x86, 0x84, 0x41, 0x01},
			EndStream: true, EndHeaders: true,
		}); err != nil {
			t.Fatal(err)
		}
	}
	want := bytes.Clone(wire.Bytes())
	cc := &countingConn{r: bytes.NewReader(want)}
	c := newH2Conn(cc, nil, []byte(http2.ClientPreface), stats.MustNewNullStore().HTTP2CodecStats())

	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		t.Fatalf("preface: %q, %v", preface, err)
	}
	rd := http2.NewFramer(nil, c)
	for i := range frames {
		f, err := rd.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got, want := f.Header().StreamID, uint32(2*i+1); got != want {
			t.Fatalf("frame %d: stream %d, want %d", i, got, want)
		}
	}
	if cc.reads != 1 {
		t.Errorf("%d frames took %d Reads from the connection, want 1", frames, cc.reads)
	}
}
