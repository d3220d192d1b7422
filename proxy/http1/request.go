package http1

import (
	"bufio"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// requestError is a request the server refuses before any handler sees it:
// the status it answers with and why, for the response body and the log.
type requestError struct {
	status int
	reason string
}

func (e *requestError) Error() string {
	return strconv.Itoa(e.status) + " " + http.StatusText(e.status) + ": " + e.reason
}

func badRequest(reason string) *requestError {
	return &requestError{status: http.StatusBadRequest, reason: reason}
}

// errHeadTooLarge is returned while reading a request head longer than the
// configured limit; the server answers 431.
var errHeadTooLarge = &requestError{status: http.StatusRequestHeaderFieldsTooLarge, reason: "request line and headers exceed max_request_headers_kb"}

// maxLeadingEmptyLines is how many empty lines may precede a request line
// (RFC 9112 §2.2: a server SHOULD ignore at least one).
const maxLeadingEmptyLines = 4

// readHead reads one request head (request line and header lines, up to and
// including the empty line) into buf, which it returns grown as needed. It
// returns io.EOF untouched when the connection closed before any byte of a
// request, so that the caller can tell a clean close from a torn request.
func readHead(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	return readLines(br, buf, limit, true)
}

// readLines reads lines into buf up to and including an empty line. A
// request head skips empty lines before its request line; a trailer
// section ends at its first empty line.
func readLines(br *bufio.Reader, buf []byte, limit int, skipLeadingEmpty bool) ([]byte, error) {
	buf = buf[:0]
	lineStart := 0
	empties := 0
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > limit {
			return buf, errHeadTooLarge
		}
		buf = append(buf, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a line longer than the reader's buffer: keep going
		}
		if err != nil {
			if len(buf) == 0 {
				return buf, err
			}
			return buf, errTornHead{err}
		}
		line := buf[lineStart:]
		if len(line) == 1 || len(line) == 2 && line[0] == '\r' {
			if lineStart == 0 && skipLeadingEmpty {
				// Empty lines before the request line are skipped.
				if empties++; empties > maxLeadingEmptyLines {
					return buf, badRequest("too many empty lines before the request line")
				}
				buf = buf[:0]
				continue
			}
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// readTrailerSection reads the trailer section that ends a chunked body,
// up to and including its final empty line. Unlike a head, it must use
// CRLF throughout: the chunked framing admits no bare LF (RFC 9112 errata
// 7633, as Go's chunked reader enforces for chunk lines), and a parser
// that ended a body at "0\r\n\n" would read as its next message what a
// stricter peer took for trailer bytes.
func readTrailerSection(br *bufio.Reader, limit int) ([]byte, error) {
	buf, err := readLines(br, nil, limit, false)
	if err != nil {
		return buf, err
	}
	for i, c := range buf {
		if c == '\n' && (i == 0 || buf[i-1] != '\r') {
			return buf, badRequest("chunked trailer section line ends with a bare LF")
		}
	}
	return buf, nil
}

// errTornHead is a connection that failed in the middle of a request head.
type errTornHead struct{ err error }

func (e errTornHead) Error() string { return "reading request head: " + e.err.Error() }
func (e errTornHead) Unwrap() error { return e.err }

// parsedRequest is what parseHead learns about a request beyond the
// http.Request fields it fills in.
type parsedRequest struct {
	expectContinue bool
	chunked        bool
}

// parseHead parses a complete request head (as readHead returns it, copied
// into one string so that every header key and value is a substring of it
// and parsing allocates little) into req. It applies HTTP/1.1's framing
// rules strictly, as Envoy's codec does: a request with both
// Transfer-Encoding and Content-Length, a Transfer-Encoding other than
// chunked, conflicting Content-Lengths, obsolete line folding, invalid
// header names or values, and a missing or repeated Host are all refused.
func parseHead(head string, req *http.Request) (parsedRequest, error) {
	var p parsedRequest
	line, rest := nextLine(head)
	if strings.IndexByte(line, '\r') >= 0 {
		return p, badRequest("bare CR in the request line")
	}
	method, afterMethod, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(afterMethod, " ")
	if !ok1 || !ok2 {
		return p, badRequest("malformed request line " + strconv.Quote(clip(line)))
	}
	if !validMethod(method) {
		return p, badRequest("invalid method " + strconv.Quote(clip(method)))
	}
	if target == "" || !validTarget(target) {
		return p, badRequest("invalid request target " + strconv.Quote(clip(target)))
	}
	switch proto {
	case "HTTP/1.1":
		req.ProtoMajor, req.ProtoMinor = 1, 1
	case "HTTP/1.0":
		req.ProtoMajor, req.ProtoMinor = 1, 0
	default:
		major, minor, ok := http.ParseHTTPVersion(proto)
		if !ok {
			return p, badRequest("malformed HTTP version " + strconv.Quote(clip(proto)))
		}
		if major != 1 {
			return p, &requestError{status: http.StatusHTTPVersionNotSupported, reason: "HTTP version " + strconv.Quote(clip(proto)) + " is not supported on an HTTP/1 connection"}
		}
		// HTTP/1.x with x > 1 is served as HTTP/1.1 (RFC 9110 §6.2).
		req.ProtoMajor, req.ProtoMinor = major, minor
	}
	req.Method = method
	req.Proto = proto
	req.RequestURI = target

	h, err := parseHeaderLines(rest, nil)
	if err != nil {
		return p, err
	}
	req.Header = h

	if err := setURLAndHost(req, h, target); err != nil {
		return p, err
	}
	if err := setFraming(req, h, &p); err != nil {
		return p, err
	}
	req.Close = shouldClose(req.ProtoMajor, req.ProtoMinor, h)
	if ex, ok := h["Expect"]; ok {
		if len(ex) != 1 || !asciiEqualFold(ex[0], "100-continue") {
			return p, &requestError{status: http.StatusExpectationFailed, reason: "unsupported Expect " + strconv.Quote(clip(strings.Join(ex, ", ")))}
		}
		// Only a request that will send a body waits for 100 Continue.
		p.expectContinue = req.ProtoAtLeast(1, 1) && req.ContentLength != 0
		delete(h, "Expect")
	}
	return p, nil
}

// parseHeaderLines parses header lines ending with an empty line into a
// header map. into, when not nil, is filled instead of a new map (trailers
// merge into the map announced at the request's start).
func parseHeaderLines(block string, into http.Header) (http.Header, error) {
	n := strings.Count(block, "\n")
	h := into
	if h == nil {
		h = make(http.Header, n)
	}
	// One backing array for every header's first value, as net/textproto
	// does: a key seen once costs no allocation of its own.
	vals := make([]string, n)
	for {
		var line string
		line, block = nextLine(block)
		if line == "" {
			return h, nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, badRequest("obsolete line folding in header line " + strconv.Quote(clip(line)))
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, badRequest("header line without a colon: " + strconv.Quote(clip(line)))
		}
		if !validFieldName(name) {
			return nil, badRequest("invalid header name " + strconv.Quote(clip(name)))
		}
		value = strings.Trim(value, " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, badRequest("invalid value of header " + strconv.Quote(clip(name)))
		}
		key := canonicalKey(name)
		if old, ok := h[key]; ok {
			h[key] = append(old, value)
			continue
		}
		vals[0] = value
		h[key] = vals[:1:1]
		vals = vals[1:]
	}
}

// nextLine splits off the first line of s, without its CRLF or LF.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

// setURLAndHost parses the request target and sets req.URL and req.Host as
// net/http does: the Host header is removed from req.Header, and an
// absolute-form target's authority wins over it.
func setURLAndHost(req *http.Request, h http.Header, target string) error {
	switch {
	case req.Method == http.MethodConnect && target[0] != '/':
		// authority-form: CONNECT host:port, and nothing else: userinfo,
		// a path or a query would be read one way here and another way
		// by net/url (which net/http parses "http://"+target with).
		if u, err := url.ParseRequestURI("http://" + target); err != nil || u.Host != target || !httpguts.ValidHostHeader(target) {
			return badRequest("invalid CONNECT authority " + strconv.Quote(clip(target)))
		}
		req.URL = &url.URL{Host: target}
	case target[0] == '/' && strings.IndexByte(target, '%') < 0:
		// origin-form without escapes, by far the most common: no parser.
		path, query, hasQuery := strings.Cut(target, "?")
		req.URL = &url.URL{Path: path, RawQuery: query, ForceQuery: hasQuery && query == ""}
		// As net/url's setPath: keep the path as received when the
		// default encoding would differ ("/a!b" would be forwarded as
		// "/a%21b"). EscapedPath does not allocate when it does not.
		if req.URL.EscapedPath() != path {
			req.URL.RawPath = path
		}
	case target == "*":
		if req.Method != http.MethodOptions {
			return badRequest("request target \"*\" is only allowed with OPTIONS")
		}
		req.URL = &url.URL{Path: "*"}
	default:
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return badRequest("invalid request target " + strconv.Quote(clip(target)))
		}
		// An absolute-form target must have an authority ("mailto:x" has
		// none and cannot be forwarded in origin-form), and that authority
		// must be one a Host header could carry: net/url decodes escapes
		// in it ("http://caf%C3%A9/"), which would reach routing and the
		// upstream's Host header as raw non-ASCII bytes.
		if u.Opaque != "" || !httpguts.ValidHostHeader(u.Host) {
			return badRequest("invalid request target " + strconv.Quote(clip(target)))
		}
		req.URL = u
	}
	hosts, hasHost := h["Host"]
	switch {
	case len(hosts) > 1:
		return badRequest("more than one Host header")
	case !hasHost && req.ProtoAtLeast(1, 1) && req.URL.Host == "":
		return badRequest("missing required Host header")
	}
	if hasHost && !httpguts.ValidHostHeader(hosts[0]) {
		return badRequest("malformed Host header " + strconv.Quote(clip(hosts[0])))
	}
	req.Host = req.URL.Host
	if req.Host == "" && hasHost {
		req.Host = hosts[0]
	}
	delete(h, "Host")
	return nil
}

// setFraming decides how the request body is delimited.
func setFraming(req *http.Request, h http.Header, p *parsedRequest) error {
	te, hasTE := h["Transfer-Encoding"]
	cl, hasCL := h["Content-Length"]
	if hasTE {
		if hasCL {
			// Request smuggling: Envoy refuses this unless told otherwise.
			return badRequest("both Transfer-Encoding and Content-Length")
		}
		if !req.ProtoAtLeast(1, 1) {
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		}
		if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
			return &requestError{status: http.StatusNotImplemented, reason: "unsupported Transfer-Encoding " + strconv.Quote(clip(strings.Join(te, ", ")))}
		}
		delete(h, "Transfer-Encoding")
		req.TransferEncoding = chunkedEncoding
		req.ContentLength = -1
		p.chunked = true
		if tr, ok := h["Trailer"]; ok {
			t, err := announcedTrailers(tr)
			if err != nil {
				return badRequest(err.Error())
			}
			req.Trailer = t
		}
		return nil
	}
	if !hasCL {
		req.ContentLength = 0
		return nil
	}
	n, err := parseContentLength(cl[0])
	if err != nil {
		return err
	}
	for _, v := range cl[1:] {
		// Repeats are allowed only when they agree (RFC 9110 §8.6).
		if trimOWS(v) != trimOWS(cl[0]) {
			return badRequest("conflicting Content-Length values " + strconv.Quote(clip(strings.Join(cl, ", "))))
		}
	}
	req.ContentLength = n
	return nil
}

var chunkedEncoding = []string{"chunked"}

// trimOWS trims HTTP's optional whitespace (SP and HTAB) and nothing else:
// strings.TrimSpace would also drop U+00A0 and U+0085, which are obs-text
// here and make a Content-Length like "5\u00a0" acceptable.
func trimOWS(s string) string { return strings.Trim(s, " \t") }

func parseContentLength(v string) (int64, error) {
	v = trimOWS(v)
	if v == "" || len(v) > 18 {
		return 0, badRequest("invalid Content-Length " + strconv.Quote(clip(v)))
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, badRequest("invalid Content-Length " + strconv.Quote(clip(v)))
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// announcedTrailers returns a map holding the trailer names a message
// announced, so that the values can be filled in once the body ends. A
// framing field announced as a trailer is refused, as net/http does: it
// can only be an attempt to reframe the message after the fact.
func announcedTrailers(announce []string) (http.Header, error) {
	t := make(http.Header)
	for _, v := range announce {
		for name := range strings.SplitSeq(v, ",") {
			name = trimOWS(name)
			if name == "" || !validFieldName(name) {
				continue
			}
			key := http.CanonicalHeaderKey(name)
			switch key {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, errors.New("forbidden trailer field " + strconv.Quote(key) + " announced")
			}
			t[key] = nil
		}
	}
	return t, nil
}

// shouldClose reports whether the client asked for the connection to be
// closed after this request: HTTP/1.1 closes on "Connection: close", and
// HTTP/1.0 unless the client asked for keep-alive.
func shouldClose(major, minor int, h http.Header) bool {
	conn := h["Connection"]
	if major == 1 && minor == 0 {
		// "close" wins over "keep-alive" when a client sends both.
		return hasToken(conn, "close") || !hasToken(conn, "keep-alive")
	}
	return hasToken(conn, "close")
}

// hasToken reports whether a comma-separated header holds token. The
// comparison is ASCII-only, as every other HTTP parser's is: Unicode case
// folding would read "\u212Aeep-alive" (Kelvin sign) as "keep-alive".
func hasToken(values []string, token string) bool {
	return httpguts.HeaderValuesContainsToken(values, token)
}

// asciiEqualFold is strings.EqualFold restricted to ASCII letters: a
// framing header must not match through Unicode folding ("chun\u212Aed").
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		a, b := s[i], t[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}

// canonicalKey returns name in canonical form, without allocating when it
// already is (the common case: clients send "Host", "User-Agent").
func canonicalKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return http.CanonicalHeaderKey(name)
		}
		upper = c == '-'
	}
	return name
}

// validMethod reports whether m is an RFC 9110 token.
func validMethod(m string) bool {
	return m != "" && validFieldName(m)
}

// validFieldName reports whether s is an RFC 9110 token, the grammar of
// both methods and header names.
func validFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !httpguts.IsTokenRune(rune(s[i])) {
			return false
		}
	}
	return true
}

// validTarget reports whether a request target holds only visible ASCII:
// no spaces, no controls, no bytes above 0x7e.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// clip bounds a client-supplied string quoted in an error message.
func clip(s string) string {
	const maxQuoted = 64
	if len(s) > maxQuoted {
		return s[:maxQuoted] + "…"
	}
	return s
}
