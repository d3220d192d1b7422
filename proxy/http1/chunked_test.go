package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
)

// decodeChunked reads a whole chunked body from s with the server's buffer
// size, through reads of at most step bytes, and returns the data, the
// rest left unread after a clean end, and the error (nil at a clean end).
func decodeChunked(s string, step int) ([]byte, string, error) {
	br := bufio.NewReaderSize(strings.NewReader(s), bufferSize)
	cr := newChunkedReader(br)
	var out []byte
	p := make([]byte, step)
	for {
		n, err := cr.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF { //nolint:errorlint // the reader returns io.EOF itself
			rest, _ := io.ReadAll(br)
			return out, string(rest), nil
		}
		if err != nil {
			return out, "", err
		}
	}
}

func TestChunkedReaderAccepts(t *testing.T) {
	long := strings.Repeat("x", 5000)
	tests := []struct{ name, in, want, rest string }{
		{"one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", "\r\n"},
		{"several chunks", "3\r\nabc\r\n2\r\nde\r\n0\r\n", "abcde", ""},
		{"upper-case hex", "A\r\n0123456789\r\n0\r\n", "0123456789", ""},
		{"leading zeros", "0005\r\nhello\r\n0000\r\n", "hello", ""},
		{"sixteen hex digits", "0000000000000005\r\nhello\r\n0\r\n", "hello", ""},
		{"no chunks", "0\r\nX-T: 1\r\n\r\n", "", "X-T: 1\r\n\r\n"},
		{"extension", "5;name\r\nhello\r\n0;last\r\n", "hello", ""},
		{"extension with value", "5;a=b;c=d\r\nhello\r\n0\r\n", "hello", ""},
		{"quoted extension value", "5;a=\"x y;\\\"z\"\r\nhello\r\n0\r\n", "hello", ""},
		{"BWS inside extensions", "5; a = b\t;c\r\nhello\r\n0\r\n", "hello", ""},
		{"large chunk", strconv.FormatInt(int64(len(long)), 16) + "\r\n" + long + "\r\n0\r\n", long, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 3, 32 << 10} {
				got, rest, err := decodeChunked(tt.in, step)
				if err != nil {
					t.Fatalf("reads of %d: %v", step, err)
				}
				if string(got) != tt.want || rest != tt.rest {
					t.Errorf("reads of %d: data %q, rest %q; want %q, %q", step, got, rest, tt.want, tt.rest)
				}
			}
		})
	}
}

func TestChunkedReaderRefuses(t *testing.T) {
	tests := []struct{ name, in, reason string }{
		{"letters", "zz\r\nxx\r\n0\r\n\r\n", `invalid chunk size "zz"`},
		{"empty size", "\r\nxx\r\n", `invalid chunk size ""`},
		{"0x prefix", "0x5\r\nhello\r\n", `invalid chunk size "0x5"`},
		{"sign", "+5\r\nhello\r\n", `invalid chunk size "+5"`},
		{"leading space", " 5\r\nhello\r\n", `invalid chunk size " 5"`},
		{"trailing space", "5 \r\nhello\r\n", `whitespace after chunk size "5 "`},
		{"trailing tab", "5\t\r\nhello\r\n", "whitespace after chunk size"},
		{"space before extension", "5 ;a\r\nhello\r\n", "whitespace after chunk size"},
		{"trailing space after extension", "5;a \r\nhello\r\n", "whitespace at the end of chunk size line"},
		{"overflow", "ffffffffffffffffff\r\nxx\r\n", "has more than 16 hex digits"},
		{"above int64", "ffffffffffffffff\r\nxx\r\n", `chunk size "ffffffffffffffff" too large`},
		{"bare LF after size", "5\nhello\r\n0\r\n\r\n", "chunk size line ends with a bare LF"},
		{"bare LF after last chunk", "0\n\r\n", "chunk size line ends with a bare LF"},
		{"bare CR in size line", "5\r;a\r\nhello\r\n", "bare CR in chunk size line"},
		{"data not followed by CRLF", "3\r\nabcXY0\r\n\r\n", `chunk data not followed by CRLF but "XY"`},
		{"bare LF after data", "3\r\nabc\n0\r\n\r\n", `chunk data not followed by CRLF but "\n0"`},
		{"bare CR after data", "3\r\nabc\rX0\r\n\r\n", `chunk data not followed by CRLF but "\rX"`},
		{"data longer than size", "3\r\nabcd\r\n0\r\n", `chunk data not followed by CRLF but "d\r"`},
		{"extension without name", "5;\r\nhello\r\n", `invalid chunk extension name ""`},
		{"extension without value", "5;a=\r\nhello\r\n", `invalid chunk extension value ""`},
		{"extension name not a token", "5;a@b\r\nhello\r\n", `invalid chunk extension "@b"`},
		{"unterminated quoted value", "5;a=\"xy\r\nhello\r\n", `invalid chunk extension value "\"xy"`},
		{"control byte in quoted value", "5;a=\"x\x01\"\r\nhello\r\n", "invalid chunk extension value"},
		{"line too long", "5;a=" + strings.Repeat("b", 5000) + "\r\nhello\r\n", "chunk size line longer than 4096 bytes"},
		{"too much overhead", strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\nx\r\n", 200), "too much non-data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decodeChunked(tt.in, 32<<10)
			var be *BodyError
			if !errors.As(err, &be) || !errors.Is(err, ErrMalformedBody) {
				t.Fatalf("err = %v, want a *BodyError", err)
			}
			if !strings.Contains(be.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", be.Reason, tt.reason)
			}
		})
	}
	// A body cut short is not malformed: the client's connection ended.
	for _, in := range []string{"", "5", "5\r\nhel", "5\r\nhello", "5\r\nhello\r", "5;a=\"x"} {
		if _, _, err := decodeChunked(in, 32<<10); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: err = %v, want io.ErrUnexpectedEOF", in, err)
		}
	}
}

// TestChunkedReaderAllocs: decoding allocates nothing.
func TestChunkedReaderAllocs(t *testing.T) {
	body := benchChunkedBody()
	r := bytes.NewReader(body)
	br := bufio.NewReaderSize(r, bufferSize)
	cr := &chunkedReader{br: br}
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(20, func() {
		r.Reset(body)
		br.Reset(r)
		*cr = chunkedReader{br: br}
		for {
			if _, err := cr.Read(buf); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per body, want 0", allocs)
	}
}

// benchChunkedBody is 64 KiB of data in 1 KiB chunks, every fourth with an
// extension.
func benchChunkedBody() []byte {
	var b bytes.Buffer
	chunk := bytes.Repeat([]byte("x"), 1024)
	for i := range 64 {
		b.WriteString("400")
		if i%4 == 0 {
			b.WriteString(";ext=\"v\"")
		}
		b.WriteString("\r\n")
		b.Write(chunk)
		b.WriteString("\r\n")
	}
	b.WriteString("0\r\n")
	return b.Bytes()
}

// BenchmarkChunkedReader compares hopwatch's strict decoder with
// net/http's (httputil.NewChunkedReader) on the same body.
func BenchmarkChunkedReader(b *testing.B) {
	body := benchChunkedBody()
	for _, impl := range []struct {
		name string
		new  func(*bufio.Reader) io.Reader
	}{
		{"hopwatch", newChunkedReader},
		{"httputil", func(br *bufio.Reader) io.Reader { return httputil.NewChunkedReader(br) }},
	} {
		b.Run(impl.name, func(b *testing.B) {
			r := bytes.NewReader(body)
			br := bufio.NewReaderSize(r, bufferSize)
			buf := make([]byte, 32<<10)
			b.SetBytes(64 << 10)
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(body)
				br.Reset(r)
				cr := impl.new(br)
				for {
					if _, err := cr.Read(buf); err != nil {
						if err != io.EOF { //nolint:errorlint // the readers return io.EOF itself
							b.Fatal(err)
						}
						break
					}
				}
			}
		})
	}
}

// FuzzChunkedBody compares the decoder with net/http's chunked reader
// (httputil.NewChunkedReader) on the same bytes and buffer size. Whenever
// ours accepts a body, net/http must accept it too, with the same data,
// and stop at the same byte. Where net/http accepts and ours refuses, the
// refusal must be one of these, each stricter on purpose (RFC 9112 §7.1
// grammar, which net/http does not check):
//
//   - whitespace after the chunk size when no extension follows
//     ("5 \r\n"): net/http trims trailing whitespace (with an extension
//     after it, "5 ;a", both refuse, though RFC 9112 allows BWS there);
//   - whitespace at the end of the line after an extension ("5;a \r\n");
//   - a chunk extension that is not BWS ";" BWS token [BWS "=" BWS
//     (token / quoted-string)]: net/http drops everything after ";"
//     unchecked;
//   - a chunk size above 2^63-1 (net/http reads up to 2^64-1), which no
//     body could carry anyway.
//
// A body that both refuse may have given out less data with ours (it
// refuses a bad chunk line before net/http would have read past it), but
// never different data.
func FuzzChunkedBody(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3\r\nabc\r\n2;a=b\r\nde\r\n0;x=\"y z\"\r\nX-T: 1\r\n\r\n",
		"zz\r\nxx\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\nHost: a\r\n\r\n",
		"ffffffffffffffffff\r\nxx\r\n0\r\n\r\nGET /hidden HTTP/1.1\r\n\r\n",
		"0x5\r\nhello\r\n0\r\n\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"5\nhello\r\n0\r\n\r\n",
		"3\r\nabc\n0\r\n\r\n",
		"3\r\nabcXY0\r\n\r\n",
		"0\n\r\n",
		"5;\r\nhello\r\n0\r\n\r\n",
		"5\r;a\r\nhello\r\n0\r\n\r\n",
		"0000000000000000005\r\nhello\r\n0\r\n\r\n",
		"8000000000000000\r\nx\r\n",
		"-1\r\nx\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		tbr := bufio.NewReaderSize(bytes.NewReader(data), bufferSize)
		tdata, terr := io.ReadAll(httputil.NewChunkedReader(tbr))
		trest, _ := io.ReadAll(tbr)
		odata, orest, oerr := decodeChunked(string(data), 32<<10)
		if o1, r1, e1 := decodeChunked(string(data), 1); !bytes.Equal(o1, odata) || (e1 == nil) != (oerr == nil) || r1 != orest {
			t.Fatalf("one-byte reads differ: %q %v %q; whole reads %q %v %q\ninput %q", o1, e1, r1, odata, oerr, orest, data)
		}
		var be *BodyError
		switch {
		case oerr == nil && terr == nil:
			if !bytes.Equal(odata, tdata) || orest != string(trest) {
				t.Fatalf("data %q rest %q; net/http %q rest %q\ninput %q", odata, orest, tdata, trest, data)
			}
		case oerr == nil:
			t.Fatalf("accepted a body net/http refuses (%v): %q", terr, data)
		case terr == nil:
			if !errors.As(oerr, &be) || !stricterOnPurpose(be.Reason) {
				t.Fatalf("refused a body net/http reads, not for a listed reason: %v\ninput %q", oerr, data)
			}
		default:
			if !bytes.HasPrefix(tdata, odata) {
				t.Fatalf("data before the error %q is not a prefix of net/http's %q\ninput %q", odata, tdata, data)
			}
		}
	})
}

// stricterOnPurpose reports whether a refusal is one FuzzChunkedBody lists
// as stricter than net/http on purpose.
func stricterOnPurpose(reason string) bool {
	for _, r := range []string{
		"whitespace at the end of chunk size line",
		"whitespace after chunk size",
		"invalid chunk extension",
		" too large",
	} {
		if strings.Contains(reason, r) {
			return true
		}
	}
	return false
}
