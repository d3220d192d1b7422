package http1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// The fuzz targets compare hopwatch's codec with net/http's on the same
// bytes. The codec is meant to be net/http's reading of a message, made
// stricter where net/http is lenient in ways a proxy cannot afford
// (Envoy's rules). So when both accept a message they must agree on every
// field, and when only one accepts, it must be net/http, except for the
// differences listed here, each on purpose:
//
// Requests (FuzzParseHead):
//   - Up to maxLeadingEmptyLines empty lines before the request line are
//     skipped (RFC 9112 §2.2); http.ReadRequest skips none. The target
//     strips them before handing the bytes to net/http.
//   - "Expect: 100-continue" is consumed (the server answers it) and so
//     removed from req.Header; net/http keeps it.
//   - Repeated identical Content-Length values stay repeated in req.Header;
//     net/http folds them into one.
//   - With chunked framing, the "Trailer" header stays in req.Header (the
//     router forwards it); net/http deletes it. Announced trailer names
//     that are not tokens are dropped; net/http keeps them, with no value.
//   - net/http adds "Cache-Control: no-cache" to an HTTP/1.0-style
//     "Pragma: no-cache"; the codec does not invent headers.
//   - http.ReadRequest leaves Host in req.Header; the codec removes it (as
//     net/http's server does).
//
// Responses (FuzzReadResponse):
//   - The Connection header is kept (the router removes it and what it
//     names); net/http deletes "Connection: close".
//   - Transfer-Encoding is left in the header of a response that has no
//     body (HEAD, 1xx, 204, 304) and not checked there; net/http deletes
//     it always and refuses a non-chunked one even where no body follows.
//     For the same reason a forbidden trailer announced on such a response
//     is not refused.
//   - A response with both Transfer-Encoding and Content-Length is read as
//     chunked, as by net/http, but marked Close.
//   - Repeated identical Content-Length values and the "Trailer" header
//     stay in res.Header, as for requests.
//   - Trailers may be as large as the head limit; net/http refuses more
//     than its reader's buffer ("suspiciously long trailer").
//
// Everything else the codec refuses and net/http accepts is strictness:
// obsolete line folding, a space before a colon, a CR before CRLF, TE with
// CL in a request, TE on HTTP/1.0, HTTP versions other than 1.x, status
// codes below 100, invalid Host values, bytes above 0x7e in a target, long
// Content-Length values.

// fuzzMaxInput bounds what the targets read: memory stays small however
// the fuzzer grows its inputs.
const fuzzMaxInput = 64 << 10

var parseHeadSeeds = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET /index.html?q=1&r=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
	"GET /a%2Fb/c%20d HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET http://origin.example:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
	"CONNECT upstream.example:443 HTTP/1.1\r\nHost: upstream.example:443\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
	"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	"POST /rpc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status, x y\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
	"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A: b\r\n folded\r\n\r\n",
	"GET / HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n",
	"\r\n\r\nGET /lf HTTP/1.1\nHost: h\nx-forwarded-for: 1\nX-Forwarded-For: 2\n\n",
	"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\nConnection: \u212Aeep-alive\r\n\r\n",
	"GET /a\rb HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\nX-B: c\x00\r\n\r\n",
	"GET mailto:x HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET http://caf%C3%A9/ HTTP/1.1\r\nHost: h\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\u00a0\r\n\r\n",
	"POST /t HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3;ext\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
}

// FuzzParseHead compares readHead+parseHead with http.ReadRequest, and
// checks that a request the codec accepts survives WriteRequest and a
// second parse unchanged (what the proxy reads is what it forwards).
func FuzzParseHead(f *testing.F) {
	for _, s := range parseHeadSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > fuzzMaxInput {
			return
		}
		br := bufio.NewReader(bytes.NewReader(data))
		ours, p, oerr := parseFromReader(br, 16<<10)
		if oerr != nil {
			var re *requestError
			var torn errTornHead
			if !errors.As(oerr, &re) && !errors.As(oerr, &torn) && !errors.Is(oerr, io.EOF) {
				t.Fatalf("error of an unexpected kind %T: %v", oerr, oerr)
			}
		}
		theirs, terr := http.ReadRequest(bufio.NewReader(bytes.NewReader(skipEmptyLines(data))))
		switch {
		case oerr != nil:
			return // stricter than net/http, or both refuse
		case terr != nil:
			t.Fatalf("accepted what net/http refuses (%v):\n%q", terr, data)
		}
		compareRequests(t, data, ours, theirs, p)
		checkRoundTrip(t, data, ours)
		compareRequestBodies(t, data, br, ours, theirs, p)
	})
}

// parseFromReader is parseRawRequest on a reader the caller keeps, for the
// body that follows the head.
func parseFromReader(br *bufio.Reader, limit int) (*http.Request, parsedRequest, error) {
	head, err := readHead(br, nil, limit)
	if err != nil {
		return nil, parsedRequest{}, err
	}
	req := new(http.Request)
	p, err := parseHead(string(head), req)
	return req, p, err
}

// compareRequestBodies reads the body with the server's own reader (as
// ServeConn sets it up) and with net/http's: same bytes, same trailers.
func compareRequestBodies(t *testing.T, data []byte, br *bufio.Reader, ours, theirs *http.Request, p parsedRequest) {
	t.Helper()
	var obody []byte
	var oerr error
	if p.chunked || ours.ContentLength > 0 {
		rb := &requestBody{c: &conn{srv: &Server{}}, br: br, remaining: ours.ContentLength, req: ours}
		if p.chunked {
			rb.cr = newChunkedReader(br)
		}
		obody, oerr = io.ReadAll(io.LimitReader(rb, 1<<20))
	}
	tbody, terr := io.ReadAll(io.LimitReader(theirs.Body, 1<<20))
	var re *requestError
	switch {
	case oerr == nil && terr == nil:
		if !bytes.Equal(obody, tbody) {
			t.Errorf("body: ours %q, net/http %q\ninput %q", obody, tbody, data)
		}
		if o, th := withValues(ours.Trailer), withValues(theirs.Trailer); !reflect.DeepEqual(o, th) {
			t.Errorf("trailers: ours %v, net/http %v\ninput %q", o, th, data)
		}
	case oerr == nil:
		if !strings.Contains(terr.Error(), "suspiciously long trailer") {
			t.Errorf("read a body net/http refuses (%v):\n%q", terr, data)
		}
	case terr == nil:
		// Stricter trailer lines (CRLF only, no obs-fold, no space
		// before a colon) and the chunk lines FuzzChunkedBody lists are
		// the things ours may refuse.
		if !errors.As(oerr, &re) && !chunkedStricterOnPurpose(oerr) {
			t.Errorf("refused a body net/http reads (%v):\n%q", oerr, data)
		}
	default:
		var be *BodyError
		if errors.As(oerr, &be) && bytes.HasPrefix(tbody, obody) {
			break // refused at a chunk line net/http read past
		}
		if !bytes.Equal(obody, tbody) {
			t.Errorf("bodies before the error differ: %q vs %q\ninput %q", obody, tbody, data)
		}
	}
}

// skipEmptyLines drops the empty lines the codec skips before a request
// line, so that net/http sees the same request.
func skipEmptyLines(b []byte) []byte {
	for range maxLeadingEmptyLines {
		switch {
		case bytes.HasPrefix(b, []byte("\r\n")):
			b = b[2:]
		case bytes.HasPrefix(b, []byte("\n")):
			b = b[1:]
		default:
			return b
		}
	}
	return b
}

// sameAsNetHTTP returns the differential check of the fuzz targets: it
// reports a field on which our parse of data and net/http's disagree.
func sameAsNetHTTP(t *testing.T, data []byte) func(field string, ours, theirs any) {
	return func(field string, ours, theirs any) {
		t.Helper()
		if !reflect.DeepEqual(ours, theirs) {
			t.Errorf("%s: ours %#v, net/http %#v\ninput %q", field, ours, theirs, data)
		}
	}
}

func compareRequests(t *testing.T, data []byte, ours, theirs *http.Request, p parsedRequest) {
	t.Helper()
	eq := sameAsNetHTTP(t, data)
	eq("Method", ours.Method, theirs.Method)
	eq("RequestURI", ours.RequestURI, theirs.RequestURI)
	eq("URL.Scheme", ours.URL.Scheme, theirs.URL.Scheme)
	eq("URL.Host", ours.URL.Host, theirs.URL.Host)
	eq("URL.Path", ours.URL.Path, theirs.URL.Path)
	eq("URL.RawQuery", ours.URL.RawQuery, theirs.URL.RawQuery)
	eq("URL.ForceQuery", ours.URL.ForceQuery, theirs.URL.ForceQuery)
	eq("URL.EscapedPath", ours.URL.EscapedPath(), theirs.URL.EscapedPath())
	eq("Host", ours.Host, theirs.Host)
	eq("Proto", ours.Proto, theirs.Proto)
	eq("ProtoMajor.Minor", [2]int{ours.ProtoMajor, ours.ProtoMinor}, [2]int{theirs.ProtoMajor, theirs.ProtoMinor})
	eq("ContentLength", ours.ContentLength, theirs.ContentLength)
	eq("TransferEncoding", ours.TransferEncoding, theirs.TransferEncoding)
	eq("Close", ours.Close, theirs.Close)
	eq("Trailer", tokenKeys(ours.Trailer), tokenKeys(theirs.Trailer))

	oh := ours.Header.Clone()
	th := theirs.Header.Clone()
	delete(th, "Host")
	if cl := oh["Content-Length"]; len(cl) > 1 {
		oh["Content-Length"] = []string{trimOWS(cl[0])}
	}
	if p.chunked {
		delete(oh, "Trailer")
	}
	if _, ok := oh["Expect"]; !ok {
		delete(th, "Expect")
	}
	if _, ok := oh["Cache-Control"]; !ok {
		delete(th, "Cache-Control")
	}
	eq("Header", oh, th)
}

// tokenKeys is h without the names that are not tokens; nil when empty
// (an empty announcement gives net/http a nil map, the codec an empty one).
func tokenKeys(h http.Header) http.Header {
	if len(h) == 0 {
		return nil
	}
	out := maps.Clone(h)
	for k := range out {
		if !validFieldName(k) {
			delete(out, k)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// checkRoundTrip writes the parsed request as the proxy forwards it and
// parses it again: method, target, Host and headers must come back.
func checkRoundTrip(t *testing.T, data []byte, req *http.Request) {
	t.Helper()
	out := &http.Request{Method: req.Method, URL: req.URL, Host: req.Host, Header: req.Header}
	wire, err := writeRequestBytes(out)
	if err != nil {
		t.Fatalf("WriteRequest refuses a request parseHead accepted: %v\ninput %q", err, data)
	}
	back, _, err := parseRawRequest(wire, 64<<10)
	if err != nil {
		t.Fatalf("parseHead refuses what WriteRequest wrote: %v\ninput %q\nwrote %q", err, data, wire)
	}
	path := func(r *http.Request) string {
		if p := r.URL.EscapedPath(); p != "" || r.Method == http.MethodConnect {
			return p
		}
		return "/"
	}
	if back.Method != req.Method || path(back) != path(req) || back.URL.RawQuery != req.URL.RawQuery || back.URL.ForceQuery != req.URL.ForceQuery || back.Host != req.Host {
		t.Errorf("round trip changed the request: %s %s ? %s host %q -> %s %s ? %s host %q\nwrote %q",
			req.Method, path(req), req.URL.RawQuery, req.Host, back.Method, path(back), back.URL.RawQuery, back.Host, wire)
	}
	want := req.Header.Clone()
	for _, k := range []string{"Content-Length", "Transfer-Encoding", "Trailer"} {
		// Framing is written from the request's fields, not its header.
		delete(want, k)
		delete(back.Header, k)
	}
	if !reflect.DeepEqual(back.Header, want) {
		t.Errorf("round trip changed the header: %v -> %v\nwrote %q", want, back.Header, wire)
	}
}

var readResponseSeeds = []struct {
	in   string
	head bool
}{
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nGrpc-Status: 0\r\nX-Late: 1\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n3\r\nabc\r\n0\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close", false},
	{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", false},
	{"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", true},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true},
	{"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n", false},
	{"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", false},
	{"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\nshort", false},
	{"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n", false},
	{"HTTP/1.1 2x0 OK\r\n\r\n", false},
	{"HTTP/2.0 200 OK\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false},
	{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", false},
	{"HTTP/1.1 200\nContent-Length: 2\n\nok", false},
}

// FuzzReadResponse compares ReadResponse with http.ReadResponse, bodies
// and trailers included.
func FuzzReadResponse(f *testing.F) {
	for _, s := range readResponseSeeds {
		f.Add([]byte(s.in), s.head)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		if len(data) > fuzzMaxInput {
			return
		}
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		ours, oerr := ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: method}, 16<<10)
		theirs, terr := http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), &http.Request{Method: method})
		if oerr != nil {
			if !errors.Is(oerr, io.ErrUnexpectedEOF) && !strings.Contains(oerr.Error(), "malformed") && !strings.Contains(oerr.Error(), "exceed") {
				t.Fatalf("unexpected kind of error: %v", oerr)
			}
			return
		}
		noBody := head || ours.StatusCode < 200 || ours.StatusCode == 204 || ours.StatusCode == 304
		if terr != nil {
			if noBody && (strings.Contains(terr.Error(), "transfer encoding") || strings.Contains(terr.Error(), "bad trailer key")) {
				return // TE and Trailer are not checked where no body follows
			}
			t.Fatalf("accepted what net/http refuses (%v):\n%q", terr, data)
		}
		eq := sameAsNetHTTP(t, data)
		eq("StatusCode", ours.StatusCode, theirs.StatusCode)
		eq("Status", ours.Status, theirs.Status)
		eq("Proto", ours.Proto, theirs.Proto)
		_, oursTE := ours.Header["Transfer-Encoding"]
		if !(head && oursTE) {
			eq("ContentLength", ours.ContentLength, theirs.ContentLength)
		}
		if ours.Close != theirs.Close && !(ours.Close && ours.TransferEncoding != nil && headHasField(data, "content-length")) {
			eq("Close", ours.Close, theirs.Close)
		}
		if !noBody {
			eq("TransferEncoding", ours.TransferEncoding, theirs.TransferEncoding)
		}
		oh, th := ours.Header.Clone(), theirs.Header.Clone()
		if _, ok := th["Connection"]; !ok && hasToken(oh["Connection"], "close") {
			delete(oh, "Connection")
		}
		delete(oh, "Transfer-Encoding")
		delete(oh, "Trailer")
		delete(th, "Trailer")
		if cl := oh["Content-Length"]; len(cl) > 1 {
			oh["Content-Length"] = []string{trimOWS(cl[0])}
		}
		eq("Header", oh, th)

		obody, oberr := io.ReadAll(io.LimitReader(ours.Body, 1<<20))
		tbody, tberr := io.ReadAll(io.LimitReader(theirs.Body, 1<<20))
		switch {
		case oberr == nil && tberr == nil:
			eq("body", string(obody), string(tbody))
			eq("Trailer", withValues(ours.Trailer), withValues(theirs.Trailer))
		case oberr == nil:
			if !strings.Contains(tberr.Error(), "suspiciously long trailer") {
				t.Errorf("read a body net/http refuses (%v):\n%q", tberr, data)
			}
		case tberr == nil:
			if !strings.Contains(oberr.Error(), "malformed HTTP response trailers") && !chunkedStricterOnPurpose(oberr) {
				t.Errorf("refused a body net/http reads (%v):\n%q", oberr, data)
			}
		default:
			// Both refuse; the bytes before the error must still agree,
			// except that a refusal stricter on purpose may come before
			// net/http's (what ours delivered is then a prefix of theirs).
			if !bytes.Equal(obody, tbody) && !(chunkedStricterOnPurpose(oberr) && bytes.HasPrefix(tbody, obody)) {
				t.Errorf("bodies before the error differ: %q vs %q (ours: %v)\ninput %q", obody, tbody, oberr, data)
			}
		}
	})
}

// headHasField reports whether the head of a raw message has a field
// named name (lower case).
func headHasField(data []byte, name string) bool {
	for line := range strings.SplitSeq(string(data), "\n") {
		if line == "" || line == "\r" {
			return false // end of the head
		}
		if k, _, ok := strings.Cut(line, ":"); ok && strings.ToLower(k) == name {
			return true
		}
	}
	return false
}

// withValues is h without the announced names that got no value.
func withValues(h http.Header) http.Header {
	out := http.Header{}
	for k, v := range h {
		if v != nil {
			out[k] = v
		}
	}
	return out
}

// chunkedStricterOnPurpose reports whether err is a chunked-body refusal
// that FuzzChunkedBody lists as stricter than net/http on purpose.
func chunkedStricterOnPurpose(err error) bool {
	var be *BodyError
	return errors.As(err, &be) && stricterOnPurpose(be.Reason)
}
