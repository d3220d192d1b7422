package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// Limits of the chunked decoder. A chunk-size line (size and extensions)
// is bounded as in net/http; so is the framing overhead a body may carry
// beyond its data, which keeps a client from sending megabytes of chunk
// extensions around a few bytes of data.
const (
	maxChunkLineBytes = 4096
	maxChunkSizeHex   = 16
	maxChunkOverhead  = 16 << 10
)

// ErrMalformedBody is wrapped by every *BodyError, for errors.Is.
var ErrMalformedBody = errors.New("malformed chunked body")

// BodyError is a message body whose chunked framing breaks RFC 9112 §7.1.
// Reason names what is wrong, quoting the offending bytes (for example
// `invalid chunk size "zz"`); Offset is where in the body's framing the
// chunk-size line or the chunk's end began.
type BodyError struct {
	Reason string
	Offset int64
}

// Error names the problem and where it is.
func (e *BodyError) Error() string {
	return ErrMalformedBody.Error() + ": " + e.Reason + " at byte " + strconv.FormatInt(e.Offset, 10)
}

// Unwrap lets errors.Is(err, ErrMalformedBody) match.
func (e *BodyError) Unwrap() error { return ErrMalformedBody }

// chunkedReader decodes a chunked message body strictly (RFC 9112 §7.1):
//
//	chunked-body = *chunk last-chunk trailer-section CRLF
//	chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
//	chunk-size   = 1*HEXDIG
//	chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// It returns io.EOF after the last chunk's line; the trailer section that
// follows is the caller's (readTrailerSection). Every line ends in CRLF:
// a bare LF or a CR anywhere else is refused (RFC 9112 errata 7633), as
// are a size with whitespace, a sign or "0x", more than 16 hex digits or a
// value above 2^63-1, whitespace between the size and its first
// extension (RFC 9112's BWS there, which net/http refuses), malformed
// extensions, and chunk data not followed by
// exactly CRLF. Extensions are checked and dropped. Decoding allocates
// nothing; only an error does.
type chunkedReader struct {
	br *bufio.Reader
	// n is what is left of the current chunk's data; crlf: the chunk's
	// data was read and its CRLF is next.
	n    int64
	crlf bool
	// excess is the framing overhead not yet paid for by data (net/http's
	// rule: 16 bytes per chunk and twice its data are free).
	excess int64
	// off is how many bytes of framing and data were consumed, for errors.
	off int64
	err error
}

func newChunkedReader(br *bufio.Reader) io.Reader { return &chunkedReader{br: br} }

// Read implements io.Reader. Like net/http's reader it returns the data it
// has rather than block on the next chunk's line or the CRLF after data.
func (cr *chunkedReader) Read(p []byte) (int, error) {
	n := 0
	for cr.err == nil {
		if cr.crlf {
			if n > 0 && cr.br.Buffered() < 2 {
				break
			}
			cr.endChunk()
			continue
		}
		if cr.n == 0 {
			if n > 0 && !lineBuffered(cr.br) {
				break
			}
			cr.beginChunk()
			continue
		}
		if len(p) == 0 {
			break
		}
		q := p
		if int64(len(q)) > cr.n {
			q = q[:cr.n]
		}
		m, err := cr.br.Read(q)
		n += m
		p = p[m:]
		cr.n -= int64(m)
		cr.off += int64(m)
		switch {
		case err == io.EOF: //nolint:errorlint // bufio returns io.EOF itself
			cr.err = io.ErrUnexpectedEOF
		case err != nil:
			cr.err = err
		case cr.n == 0:
			cr.crlf = true
		}
	}
	return n, cr.err
}

// lineBuffered reports whether a whole line is already in br.
func lineBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

func (cr *chunkedReader) fail(reason string) {
	cr.err = &BodyError{Reason: reason, Offset: cr.off}
}

// endChunk reads the CRLF that ends a chunk's data.
func (cr *chunkedReader) endChunk() {
	b, err := cr.br.Peek(2)
	switch {
	case len(b) > 0 && b[0] != '\r', len(b) > 1 && b[1] != '\n':
		cr.fail("chunk data not followed by CRLF but " + quoteSome(b))
	case err == io.EOF: //nolint:errorlint // bufio returns io.EOF itself
		cr.err = io.ErrUnexpectedEOF
	case err != nil:
		cr.err = err
	default:
		_, _ = cr.br.Discard(2)
		cr.off += 2
		cr.crlf = false
	}
}

// beginChunk reads and checks a chunk-size line.
func (cr *chunkedReader) beginChunk() {
	line, err := cr.br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		cr.fail("chunk size line longer than " + strconv.Itoa(maxChunkLineBytes) + " bytes")
		return
	case err == io.EOF: //nolint:errorlint // bufio returns io.EOF itself
		cr.err = io.ErrUnexpectedEOF
		return
	case err != nil:
		cr.err = err
		return
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		cr.fail("chunk size line ends with a bare LF: " + quoteSome(line))
		return
	}
	s := line[:len(line)-2]
	if len(s) >= maxChunkLineBytes {
		cr.fail("chunk size line longer than " + strconv.Itoa(maxChunkLineBytes) + " bytes")
		return
	}
	if bytes.IndexByte(s, '\r') >= 0 {
		cr.fail("bare CR in chunk size line " + quoteSome(s))
		return
	}
	size, reason := parseChunkLine(s)
	if reason != "" {
		cr.fail(reason)
		return
	}
	cr.off += int64(len(line))
	// The overhead rule of net/http: the line and the CRLF after the data
	// cost their length; each chunk is allowed 16 bytes plus twice its data.
	cr.excess += int64(len(line))
	if size > (math.MaxInt64-16)/2 {
		cr.excess = 0
	} else {
		cr.excess = max(cr.excess-16-2*size, 0)
	}
	if cr.excess > maxChunkOverhead {
		cr.fail("chunk framing overhead above " + strconv.Itoa(maxChunkOverhead) + " bytes: too much non-data")
		return
	}
	if size == 0 {
		cr.err = io.EOF
		return
	}
	cr.n = size
}

// parseChunkLine parses a chunk-size line without its CRLF and returns the
// size, or why the line is malformed.
func parseChunkLine(s []byte) (int64, string) {
	i := 0
	var size uint64
	for ; i < len(s); i++ {
		d, ok := unhex(s[i])
		if !ok {
			break
		}
		if i == maxChunkSizeHex {
			return 0, "chunk size " + quoteSome(s) + " has more than " + strconv.Itoa(maxChunkSizeHex) + " hex digits"
		}
		size = size<<4 | uint64(d)
	}
	if i == 0 {
		return 0, "invalid chunk size " + quoteSome(s)
	}
	if size > math.MaxInt64 {
		return 0, "chunk size " + quoteSome(s[:i]) + " too large"
	}
	rest := s[i:]
	switch {
	case len(rest) == 0:
	case isBWS(rest[0]):
		// RFC 9112 allows BWS before ";", but net/http, and so many
		// upstreams, refuse it: a proxy must not read a size that
		// others read differently or not at all.
		return 0, "whitespace after chunk size " + quoteSome(s)
	case rest[0] != ';':
		return 0, "invalid chunk size " + quoteSome(s)
	}
	if reason := checkChunkExt(rest); reason != "" {
		return 0, reason
	}
	return int64(size), ""
}

// checkChunkExt checks what follows the chunk size:
// *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ).
func checkChunkExt(s []byte) string {
	for len(s) > 0 {
		t := trimBWS(s)
		if len(t) == 0 {
			return "whitespace at the end of chunk size line"
		}
		if t[0] != ';' {
			return "invalid chunk extension " + quoteSome(t)
		}
		t = trimBWS(t[1:])
		name := tokenLen(t)
		if name == 0 {
			return "invalid chunk extension name " + quoteSome(t)
		}
		t = t[name:]
		if v := trimBWS(t); len(v) > 0 && v[0] == '=' {
			v = trimBWS(v[1:])
			var n int
			if len(v) > 0 && v[0] == '"' {
				n = quotedStringLen(v)
			} else {
				n = tokenLen(v)
			}
			if n == 0 {
				return "invalid chunk extension value " + quoteSome(v)
			}
			t = v[n:]
		}
		s = t
	}
	return ""
}

func isBWS(c byte) bool { return c == ' ' || c == '\t' }

func trimBWS(s []byte) []byte {
	for len(s) > 0 && isBWS(s[0]) {
		s = s[1:]
	}
	return s
}

// tokenLen returns the length of the token (RFC 9110 tchar) s starts with.
func tokenLen(s []byte) int {
	i := 0
	for i < len(s) && httpguts.IsTokenRune(rune(s[i])) {
		i++
	}
	return i
}

// quotedStringLen returns the length of the quoted-string (RFC 9110
// §5.6.4) s starts with, or 0 when it is not one.
func quotedStringLen(s []byte) int {
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			i++
			if i == len(s) || !(s[i] == '\t' || s[i] >= 0x20 && s[i] != 0x7f) {
				return 0
			}
		case c == '\t' || c >= 0x20 && c != 0x7f:
		default:
			return 0
		}
	}
	return 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// quoteSome quotes at most 32 bytes of b for an error message.
func quoteSome(b []byte) string {
	if len(b) > 32 {
		return fmt.Sprintf("%q...", b[:32])
	}
	return strconv.Quote(string(b))
}
